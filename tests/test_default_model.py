"""The default model that ships: it loads, `phyloclr embed` uses it with no other argument, and
(slow, opt-in) the README's commands reproduce it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from phyloclr.cli import app
from phyloclr.embed import default_model_path, embed_sequences
from phyloclr.io.hdf5 import read_embeddings
from phyloclr.metrics import embedding_retrieval
from phyloclr.models.store import load_model
from tests.conftest import ROOT, write


def test_default_model_ships_and_loads() -> None:
    path = default_model_path()
    assert path.is_file() and path.stat().st_size < 20 * 2**20
    model = load_model(path)
    assert model.alphabet.name == "protein"
    assert model.config["views"]["mode"] == "phylo"


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


@pytest.mark.slow
def test_readme_command_reproduces_the_default_model(tmp_path: Path) -> None:
    """Needs the README's training corpus and development sets: PHYLOCLR_DEVSETS=DEVSETS (from
    benchmarks/protein_devsets.py, with DEVSETS/train300/clean.fasta from
    benchmarks/training_corpus.py --method mmseqs)."""
    devsets = Path(os.environ.get("PHYLOCLR_DEVSETS", "/nonexistent"))
    corpus = devsets / "train300" / "clean.fasta"
    if not corpus.is_file():
        pytest.skip("set PHYLOCLR_DEVSETS to the README's development sets and training corpus")
    run = tmp_path / "default-model"
    cmd = [
        sys.executable, "-m", "phyloclr.cli", "pretrain", str(corpus),
        "--config", str(ROOT / "configs" / "default-model.yaml"), "--out", str(run),
        "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT)
    shipped = _devset_maps(default_model_path(), devsets)
    rebuilt = _devset_maps(run / "model.pt", devsets)
    assert np.allclose(shipped, rebuilt, atol=0.02), (shipped, rebuilt)
