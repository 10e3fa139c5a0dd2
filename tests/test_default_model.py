"""The default model that ships: it loads, `phyloclr embed` uses it with no other argument, and
(slow, opt-in) the README's command reproduces it."""

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
    assert path.is_file() and path.stat().st_size < 10 * 2**20
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


def _heldout_map(model_path: Path, protein: Path) -> float:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_pretrain import held_out_set, split_families

    from phyloclr.families import build_families

    fset = build_families([protein / "trimal_eggnog", ROOT / "data" / "protein" / "seeds"])
    _, held = split_families(fset, 0.3)
    _, seqs, labels = held_out_set(fset, held, 30)
    model = load_model(model_path)
    emb, _ = embed_sequences(model.encoder, model.alphabet, seqs)
    return embedding_retrieval(emb, labels)[0]


@pytest.mark.slow
def test_readme_command_reproduces_the_default_model(protein: Path, tmp_path: Path) -> None:
    """Needs the training corpus: PHYLOCLR_TRAINING_CORPUS=training_clean.fasta, written by
    benchmarks/make_corpus.py and benchmarks/training_corpus.py as the README says."""
    corpus = os.environ.get("PHYLOCLR_TRAINING_CORPUS")
    if not corpus or not Path(corpus).is_file():
        pytest.skip("set PHYLOCLR_TRAINING_CORPUS to the README's training_clean.fasta")
    run = tmp_path / "default-model"
    cmd = [
        sys.executable, "-m", "phyloclr.cli", "pretrain", str(protein / "trimal_eggnog"),
        str(ROOT / "data" / "protein" / "seeds"), corpus,
        "--config", str(ROOT / "configs" / "default-model.yaml"),
        "--exclude-families", str(ROOT / "benchmarks" / "heldout_families.txt"), "--out", str(run),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT)
    shipped = _heldout_map(default_model_path(), protein)
    rebuilt = _heldout_map(run / "model.pt", protein)
    assert abs(shipped - rebuilt) < 0.03
    assert np.isfinite(rebuilt)
