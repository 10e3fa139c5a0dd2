"""The count sketch less its corpus's top principal directions (``model.sketch_directions``):
the directions found, removed from every row, fitted after training, saved with the model and
fitted alike on a resumed run."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from phyloclr.embed import embed_sequences
from phyloclr.errors import ConfigError
from phyloclr.families import build_families
from phyloclr.models.alphabet import PROTEIN
from phyloclr.models.build import build_encoder
from phyloclr.models.directions import (
    fit_directions,
    principal_directions,
    remove_directions,
    sample_sequences,
)
from phyloclr.models.memory import detach_memory
from phyloclr.models.spectrum import KmerSpectrum
from phyloclr.models.store import load_model, save_model
from phyloclr.train import PretrainConfig, pretrain
from phyloclr.train.config import ModelConfig, RunConfig, ViewsConfig
from tests.conftest import ROOT

SEEDS = ROOT / "data" / "protein" / "seeds"


def test_the_top_directions_are_found() -> None:
    """Rows of isotropic noise plus strong components along two known directions: those two,
    largest first, unit and orthogonal, about the unit rows' mean."""
    rng = np.random.default_rng(0)
    d = 40
    basis, _ = np.linalg.qr(rng.normal(size=(d, 2)))
    rows = rng.normal(size=(3000, d)) + rng.normal(size=(3000, 2)) * [6.0, 4.0] @ basis.T
    rows += 2.0  # an offset: the directions are about the mean
    mean, top = principal_directions(rows, 2)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    np.testing.assert_allclose(mean, unit.mean(0))
    np.testing.assert_allclose(top @ top.T, np.eye(2), atol=1e-12)
    assert abs(top[0] @ (unit - mean).T @ (unit - mean) @ top[0]) > abs(
        top[1] @ (unit - mean).T @ (unit - mean) @ top[1]
    )
    # the planted plane, seen through the unit rows: the found pair spans nearly all of it
    assert np.linalg.svd(top @ basis, compute_uv=False).min() > 0.9
    with pytest.raises(ValueError, match="directions need more"):
        principal_directions(rows[:2], 2)


def test_removal_leaves_rows_orthogonal_to_the_directions() -> None:
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(7, 12)))
    mean = torch.from_numpy(rng.normal(size=12) * 0.1)
    top, _ = np.linalg.qr(rng.normal(size=(12, 3)))
    v = torch.from_numpy(top.T.copy())
    out = remove_directions(x, mean, v)
    u = torch.nn.functional.normalize(x, dim=1) - mean
    torch.testing.assert_close(out, u - u @ v.T @ v)
    assert float((out @ v.T).abs().max()) < 1e-12


def test_the_sample_does_not_depend_on_the_corpus_order() -> None:
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    rng = np.random.default_rng(3)
    seqs = ["".join(rng.choice(letters, 30)) for _ in range(60)]
    picked = sample_sequences(seqs, 10)
    shuffled = list(np.random.default_rng(2).permutation(seqs))
    assert sorted(sample_sequences(shuffled, 10)) == sorted(picked) and len(picked) == 10
    assert sample_sequences(seqs[:5], 10) == seqs[:5]


def _sketch_model(dim: int = 64) -> tuple[KmerSpectrum, list[str]]:
    spec = ModelConfig(encoder="kmer", spectrum="murphy10:11011,murphy10:1111", dim=dim,
                       layers=1, centre=True, map="sketch").encoder_spec(20, 64)  # fmt: skip
    enc = build_encoder(spec, PROTEIN.size)
    assert isinstance(enc, KmerSpectrum)
    seqs = [r.seq for f in build_families([SEEDS], use_cache=True).families for r in f.records]
    enc.fit_idf(seqs)
    enc.eval()
    return enc, seqs


def test_a_fitted_sketch_removes_its_directions_and_keeps_them_in_its_file(
    tmp_path: Path,
) -> None:
    enc, seqs = _sketch_model()
    before, _ = embed_sequences(enc, PROTEIN, seqs)
    heard: list[tuple[int, int]] = []
    fit_directions(enc, PROTEIN, seqs, 3, lambda done, total: heard.append((done, total)))
    assert enc.spec.sketch_pcs == 3 and heard[-1] == (len(seqs), len(seqs))
    after, _ = embed_sequences(enc, PROTEIN, seqs)
    top = enc.directions.numpy()  # type: ignore[union-attr]
    assert np.abs(after @ top.T).max() < 1e-5  # nothing left along them
    mean, again = principal_directions(before, 3)  # the rows the fit saw
    np.testing.assert_allclose(np.abs(again @ top.T), np.eye(3), atol=1e-4)
    expected = remove_directions(torch.from_numpy(before), torch.from_numpy(mean),
                                 torch.from_numpy(again)).numpy()  # fmt: skip
    np.testing.assert_allclose(after, expected, atol=1e-5)
    save_model(tmp_path / "m.pt", enc, PROTEIN, "{}", 0, "m")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.encoder.spec.sketch_pcs == 3
    back, _ = embed_sequences(loaded.encoder, PROTEIN, seqs)
    np.testing.assert_array_equal(back, after)
    with pytest.raises(ValueError, match="already removes"):
        fit_directions(enc, PROTEIN, seqs, 3)


def test_an_encoder_without_a_sketch_is_refused() -> None:
    cnn = build_encoder(ModelConfig(encoder="cnn", dim=16, layers=1).encoder_spec(20, 64), 25)
    with pytest.raises(ValueError, match="holds no count sketch"):
        fit_directions(cnn, PROTEIN, ["MKV"], 1)
    with pytest.raises(ConfigError, match="sketch_directions needs one count sketch"):
        ModelConfig(encoder="kmer", sketch_directions=2)  # none
    with pytest.raises(ConfigError, match="sketch_directions needs one count sketch"):
        ModelConfig(encoder="kmer", map="sketch", sketch="murphy10:11011", sketch_directions=2)
    with pytest.raises(ConfigError, match="fewer than the sketch's columns"):
        ModelConfig(encoder="kmer", map="sketch", dim=4, layers=1, sketch_directions=4)


def _config() -> PretrainConfig:
    model = ModelConfig(encoder="kmer", spectrum="murphy10:3", dim=32, layers=1,
                        projection_dim=0, sketch="murphy10:11011", sketch_dim=64,
                        sketch_weight=0.5, sketch_directions=2, memory_neighbours=3)  # fmt: skip
    return PretrainConfig(
        model=model,
        views=ViewsConfig(crop_len=64),
        run=RunConfig(max_steps=3, batch_tokens=4096, checkpoint_every=2, threads=1),
    )


def test_pretraining_fits_the_appended_sketchs_directions(tmp_path: Path) -> None:
    stages: list[str] = []

    def heard(stage: str, done: int, total: int | None) -> None:
        if not stages or stages[-1] != stage:
            stages.append(stage)

    run = tmp_path / "run"
    pretrain(build_families([SEEDS], use_cache=True), _config(), run, progress=heard)
    assert stages == ["training", "sketch directions", "memory"]
    enc = load_model(run).encoder
    assert enc.spec.sketch_pcs == 2 and enc.branch.spec.sketch_pcs == 2  # type: ignore[union-attr]
    assert enc.memory is not None  # built after the directions: the memory holds the new rows
    seqs = [r.seq for f in build_families([SEEDS], use_cache=True).families for r in f.records]
    detach_memory(enc)
    emb, _ = embed_sequences(enc, PROTEIN, seqs[:20])
    sketch = emb[:, 32:] / math.sqrt(0.5)  # the branch's unit rows, less the directions
    top = enc.branch.directions.numpy()  # type: ignore[union-attr]
    assert np.abs(sketch @ top.T).max() < 1e-5
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "model.pt").unlink()  # killed after training: resumed, the same directions
    pretrain(build_families([SEEDS], use_cache=True), _config(), copy, resume=True)
    a, b = load_model(run).encoder.state_dict(), load_model(copy).encoder.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
