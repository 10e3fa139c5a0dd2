"""The models that ship: the default (a residue CNN with spaced k-mer words appended) and the
sketch model load, `phyloclr embed` uses the default with no other argument and the sketch with
`--model sketch`, and (slow, opt-in) the README's commands reproduce both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from phyloclr.cli import app
from phyloclr.embed import bundled_model_path, default_model_path, embed_sequences
from phyloclr.io.hdf5 import read_embeddings
from phyloclr.metrics import embedding_retrieval
from phyloclr.models.hybrid import SketchedCNN
from phyloclr.models.spectrum import KmerSpectrum
from phyloclr.models.store import load_model
from tests.conftest import ROOT, write

#: the default model's words (benchmarks/word_selection.py's eight on go-function, session 59)
DEFAULT_WORDS = ",".join(
    "murphy10:" + w
    for w in ("11011", "101011", "1110001", "10011001", "110101", "1101001", "1000111", "10010011")
)


def test_default_model_ships_and_loads() -> None:
    """The default is the recipe's composition: its CNN's training and, appended, eight
    Murphy-10 spaced words with one column per k-mer (80,000: exact, no hashing), their idf and
    mean row fitted on the training corpus and every word at weight 1 (untrained), at the
    sketch weight it records, less the top principal directions fitted on the same corpus."""
    path = default_model_path()
    assert path.is_file() and path.stat().st_size < 20 * 2**20
    model = load_model(path)
    assert model.alphabet.name == "protein"
    assert isinstance(model.encoder, SketchedCNN)
    assert model.config["recipe"] == "benchmarks/gpu_transfer.py hybrid"
    assert model.config["cnn"]["cmd"] == "train" and model.config["sketch_weight"] == 0.95
    assert model.config["sketch"]["words"] == model.encoder.spec.sketch == DEFAULT_WORDS
    assert model.config["sketch"]["fit"].endswith("train300/clean.fasta")
    own = model.encoder.branch.state_dict()
    assert not own["spectrum_weight"].any()  # exp(0): every word at weight 1
    assert (own["idf"] > 0).all() and own["mean"].abs().sum() > 0
    assert not own["embed.weight"].any()  # the unused residue embedding (zeros)
    count = model.config["directions"]["count"]
    assert model.encoder.spec.sketch_pcs == count == own["directions"].shape[0] == 4
    assert model.config["directions"]["fit"].endswith("train300/clean.fasta")
    assert model.encoder.spec.sketch_dim == model.config["sketch"]["columns"] == 80000
    assert model.encoder.spec.sketch_exact and model.config["sketch"]["exact"]
    assert model.encoder.branch.rows == 80000
    sketch = load_model(bundled_model_path("sketch"))
    assert isinstance(sketch.encoder, KmerSpectrum) and sketch.config["views"]["mode"] == "phylo"
    assert sketch.encoder.dim == 4096


def test_embed_with_a_bundled_model_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fasta = write(tmp_path / "some.fasta", ">a\nMKVLAAGIVGLLAW\n>b\nMKVLGGIVGAQW\n")
    for name, dim in (("sketch", 4096), ("default", 80000 + 128)):
        out = tmp_path / f"{name}.h5"
        result = CliRunner().invoke(app, ["embed", str(fasta), "--out", str(out), "--model", name])
        assert result.exit_code == 0, result.output
        store = read_embeddings(out)
        assert store.embeddings.shape == (2, dim)
        sha = json.loads(store.attrs["model"])["weights_sha256"]
        assert sha == load_model(bundled_model_path(name)).weights_sha256
    # a path of that name wins over the bundled model
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sketch").mkdir()
    result = CliRunner().invoke(
        app, ["embed", str(fasta), "--out", str(tmp_path / "x.h5"), "--model", "sketch"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code != 0


def test_embed_with_no_model_argument(tmp_path: Path) -> None:
    fasta = write(tmp_path / "some.fasta", ">a/1-5 x\nMKVLAAGIVG\n>b\nMKVLGGIVGA\n")
    out = tmp_path / "x.h5"
    result = CliRunner().invoke(app, ["embed", str(fasta), "--out", str(out)])
    assert result.exit_code == 0, result.output
    store = read_embeddings(out)
    assert store.ids == ["a/1-5", "b"]
    assert (
        json.loads(store.attrs["model"])["weights_sha256"]
        == load_model(default_model_path()).weights_sha256
    )


def _devset_maps(model_path: Path, devsets: Path) -> list[float]:
    """mAP of the model on each development set (benchmarks/protein_devsets.py)."""
    from benchmarks.bench_protein import DevSet

    model = load_model(model_path)
    maps = []
    for name in ("go-function", "orthologs"):
        ds = DevSet(devsets / name)
        emb, _ = embed_sequences(model.encoder, model.alphabet, ds.seqs)
        maps.append(embedding_retrieval(emb, ds.labels)[0])
    return maps


def _devsets() -> Path:
    """The README's development sets and training corpus (PHYLOCLR_DEVSETS=DEVSETS, from
    benchmarks/protein_devsets.py, with DEVSETS/train300/clean.fasta from
    benchmarks/training_corpus.py --method mmseqs), or skip."""
    devsets = Path(os.environ.get("PHYLOCLR_DEVSETS", "/nonexistent"))
    if not (devsets / "train300" / "clean.fasta").is_file():
        pytest.skip("set PHYLOCLR_DEVSETS to the README's development sets and training corpus")
    return devsets


def _hybrid_command(cnn: Path, out: Path, devsets: Path) -> list[str]:
    """The README's last command, composing ``cnn`` into ``out`` with the shipped default
    model's sketch weight, words, width and directions (fitted on the training corpus)."""
    shipped = load_model(default_model_path()).config
    words = shipped["sketch"].get("words")
    return [
        sys.executable, "-m", "benchmarks.gpu_transfer", "hybrid", "--cnn", str(cnn),
        "--weight", str(shipped["sketch_weight"]),
        *(["--words", words] if words else []),
        *(["--exact"] if shipped["sketch"].get("exact")
          else ["--sketch-dim", str(shipped["sketch"]["columns"])]),
        "--directions", str(shipped["directions"]["count"]),
        "--fit", str(devsets / "train300" / "clean.fasta"), "--out", str(out),
    ]  # fmt: skip


@pytest.mark.slow
def test_readme_command_reproduces_the_sketch_model(tmp_path: Path) -> None:
    devsets = _devsets()
    run = tmp_path / "sketch-model"
    cmd = [
        sys.executable, "-m", "phyloclr.cli", "pretrain", str(devsets / "train300" / "clean.fasta"),
        "--config", str(ROOT / "configs" / "sketch-model.yaml"), "--out", str(run),
        "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT)
    shipped = _devset_maps(bundled_model_path("sketch"), devsets)
    rebuilt = _devset_maps(run / "model.pt", devsets)
    assert np.allclose(shipped, rebuilt, atol=0.02), (shipped, rebuilt)


@pytest.mark.slow
def test_readme_command_composes_the_default_model(tmp_path: Path) -> None:
    """The README's last step, from the shipped model's own CNN: the shipped words counted
    into their columns, their idf, mean row and directions fitted on the training corpus, at the
    shipped weight, give the shipped weights to the bit (10–20 minutes on 2 CPU cores)."""
    devsets = _devsets()
    shipped = load_model(default_model_path())
    out = tmp_path / "default.pt"
    cmd = _hybrid_command(default_model_path(), out, devsets)
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": "src"})
    rebuilt = load_model(out)
    assert rebuilt.weights_sha256 == shipped.weights_sha256
    assert rebuilt.encoder.spec == shipped.encoder.spec and rebuilt.step == shipped.step
    assert rebuilt.config["cnn"]["from"]["weights_sha256"] == shipped.weights_sha256


@pytest.mark.slow
@pytest.mark.gpu
def test_readme_commands_reproduce_the_default_model(tmp_path: Path) -> None:
    """The CNN's training, by steps rather than GPU seconds, then the composition with the
    shipped words. It needs a CUDA device: the 1,949 steps took 52 s alone on an H200,
    and take about 20 s a step on 2 CPU cores (11 hours; measured in session 57)."""
    if not torch.cuda.is_available():
        pytest.skip("the CNN's training needs a CUDA device")
    devsets = _devsets()
    shipped_model = load_model(default_model_path())
    pack, run = tmp_path / "pack.npz", tmp_path / "cnn"
    gpu = [sys.executable, "-m", "benchmarks.gpu_transfer"]
    cnn = shipped_model.config["cnn"]
    for cmd in (
        [*gpu, "pack", "--train", str(devsets / "train300" / "clean.fasta"),
         "--sets", str(devsets), "--out", str(pack)],
        [*gpu, "train", "--pack", str(pack), "--out", str(run), "--crop", str(cnn["crop"]),
         "--eval-len", str(cnn["eval_len"]), "--seed", str(cnn["seed"]),
         "--max-steps", str(shipped_model.step), "--eval-every-s", "1e9"],
        _hybrid_command(run / "model.pt", tmp_path / "default.pt", devsets),
    ):  # fmt: skip
        subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": "src"})
    shipped = _devset_maps(default_model_path(), devsets)
    rebuilt = _devset_maps(tmp_path / "default.pt", devsets)
    assert np.allclose(shipped, rebuilt, atol=0.01), (shipped, rebuilt)


def test_sequences_without_a_word_share_no_sketch() -> None:
    """Sequences shorter than every word of the sketch, or of unknown letters, have no k-mer
    evidence: the sketch part is zeros (centring alone would give each the same row, cosine
    1), so two of them are as alike as their CNN columns say; the sketch model gives zeros."""
    seqs = ["MKV", "M", "XXXXXXXXXX", "BZJUO", "MKVLAAGIVGLLAWQ"]
    rows = {}
    for name in ("default", "sketch"):
        model = load_model(bundled_model_path(name))
        rows[name], _ = embed_sequences(model.encoder, model.alphabet, seqs)
    default, sketch = rows["default"], rows["sketch"]
    assert not sketch[:4].any() and np.linalg.norm(sketch[4]) > 0.9
    assert not default[:4, 128:].any() and np.linalg.norm(default[4, 128:]) > 0.9
    # the wordless rows are the CNN's columns alone, at its cosine weight's share of the norm
    assert np.allclose(np.linalg.norm(default[:4], axis=1), np.sqrt(0.05), atol=1e-5)
    unit = default / np.linalg.norm(default, axis=1, keepdims=True)
    cos = unit @ unit.T
    assert cos[0, 1] < 0.95 and cos[1, 2] < 0.5  # the CNN's cosines, not 1
