"""A k-mer spectrum model with a pretrained residue CNN appended (``model.append_cnn``): the
CNN's weights are the source model's and stay frozen, the cosine is the stated mixture, the
model round-trips, and wrong sources are one-line config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from phyloclr.errors import ConfigError
from phyloclr.families import build_families
from phyloclr.models.alphabet import PROTEIN
from phyloclr.models.build import build_encoder
from phyloclr.models.encoders import DilatedCNN, EncoderSpec
from phyloclr.models.spectrum import KmerSpectrum
from phyloclr.models.store import load_model, save_model
from phyloclr.train import PretrainConfig, pretrain
from phyloclr.train.config import (
    ModelConfig,
    RunConfig,
    ViewsConfig,
    default_pretrain_config,
    load_pretrain_config,
)
from tests.conftest import ROOT

SEEDS = ROOT / "data" / "protein" / "seeds"
WORDS = "murphy10:1111,murphy10:11011"


def _source(path: Path) -> Path:
    """A small trained-looking CNN model file (random weights, saved as phyloclr saves)."""
    torch.manual_seed(3)
    cnn = DilatedCNN(EncoderSpec(name="cnn", dim=16, layers=2, max_len=64), PROTEIN.size)
    save_model(path, cnn, PROTEIN, "{}", 5, "tiny-cnn")
    return path


def _pretrain(out: Path, model: ModelConfig) -> Path:
    seeds = build_families([SEEDS], use_cache=True)
    cfg = PretrainConfig(
        model=model,
        views=ViewsConfig(crop_len=64),
        run=RunConfig(max_steps=4, batch_tokens=4096, checkpoint_every=2, threads=1),
    )
    pretrain(seeds, cfg, out)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("append")
    source = _source(root / "cnn.pt")
    model = ModelConfig(encoder="kmer", spectrum="murphy10:3", dim=32, layers=1,
                        projection_dim=0, sketch=WORDS, sketch_dim=128, sketch_weight=0.6,
                        append_cnn=str(source), append_cnn_weight=0.2)  # fmt: skip
    return _pretrain(root / "run", model), source


def _cos(x: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def test_appended_cnn_is_the_source_frozen_and_mixed_in(run: tuple[Path, Path]) -> None:
    out, source = run
    enc = load_model(out).encoder
    assert isinstance(enc, KmerSpectrum) and enc.cnn is not None
    assert enc.dim == 32 + 128 + 16
    src = load_model(source).encoder.state_dict()
    assert all(torch.equal(enc.cnn.state_dict()[k], v) for k, v in src.items())
    seqs = [r.seq for f in build_families([SEEDS], use_cache=True).families for r in f.records]
    tokens = PROTEIN.batch(seqs[:20])
    with torch.no_grad():
        emb = enc(tokens).numpy()
        cnn = enc.cnn(tokens).numpy()
        enc.cnn = None  # the same model without it: map and sketch
        inner = enc(tokens).numpy()
        enc.train()
        trained_on = enc(tokens)
    assert emb.shape == (20, 176) and inner.shape == (20, 160) and trained_on.shape == (20, 32)
    np.testing.assert_allclose(_cos(emb), 0.8 * _cos(inner) + 0.2 * _cos(cnn), atol=1e-5)
    fresh = build_encoder(load_model(out).encoder.spec, PROTEIN.size)
    fresh.load_state_dict(load_model(out).encoder.state_dict())  # round trip by spec
    from phyloclr.search import learned_columns

    assert learned_columns(load_model(out)) == slice(160, 176)  # the word prefilter mixes it in


def test_append_cnn_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"append_cnn needs model\.encoder 'kmer'"):
        ModelConfig(encoder="cnn", append_cnn="default")
    with pytest.raises(ConfigError, match="append_cnn_weight"):
        ModelConfig(encoder="kmer", append_cnn="default", append_cnn_weight=1.0)
    bad = ModelConfig(encoder="kmer", spectrum="murphy10:3", dim=16, layers=1, projection_dim=0,
                      append_cnn="sketch")  # fmt: skip
    with pytest.raises(ConfigError, match="not a mean-pooled residue CNN"):
        _pretrain(tmp_path / "bad", bad)


def test_cpu_small_appends_the_default_models_cnn() -> None:
    cfg = load_pretrain_config(ROOT / "configs" / "cpu-small.yaml")
    assert cfg.model.append_cnn == "default" and cfg.model.append_cnn_weight == 0.07
    assert default_pretrain_config() == cfg  # what pretrain trains without --config
