"""A CNN with an appended k-mer sketch (model.encoder cnn with model.sketch): it trains the CNN
alone, fits the sketch on the corpus, mixes the two cosines as the weight says, embeds whole
sequences and round-trips through model.pt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from phyloclr.embed import embed_sequences
from phyloclr.families import build_families
from phyloclr.kmers import corpus_weights
from phyloclr.models.alphabet import PROTEIN
from phyloclr.models.build import build_encoder
from phyloclr.models.encoders import DilatedCNN, EncoderSpec
from phyloclr.models.hybrid import SketchedCNN
from phyloclr.models.store import load_model
from phyloclr.train import PretrainConfig, pretrain
from phyloclr.train.config import ModelConfig, RunConfig, ViewsConfig
from tests.conftest import ROOT

SEEDS = ROOT / "data" / "protein" / "seeds"
WORDS = "murphy10:1111,murphy10:11011"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    seeds = build_families([SEEDS], use_cache=False)
    model = ModelConfig(encoder="cnn", dim=32, layers=2, max_len=64, projection_dim=0,
                        sketch=WORDS, sketch_dim=256, sketch_weight=0.8)  # fmt: skip
    cfg = PretrainConfig(
        model=model,
        views=ViewsConfig(crop_len=64),
        run=RunConfig(max_steps=6, batch_tokens=4096, checkpoint_every=3, threads=1),
    )
    out = tmp_path_factory.mktemp("hybrid") / "run"
    pretrain(seeds, cfg, out)
    return out


def _seqs() -> list[str]:
    seeds = build_families([SEEDS], use_cache=True)
    return [r.seq for f in seeds.families for r in f.records][:25]


def _cos(x: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def test_sketched_cnn_mixes_the_cosines_and_trains_the_cnn_alone(run: Path) -> None:
    enc = load_model(run).encoder
    assert isinstance(enc, SketchedCNN) and not enc.windowed
    assert enc.dim == 32 + 256 and enc.residue_dim == 32
    assert torch.equal(enc.branch.spectrum_weight, torch.zeros(2))  # the sketch is not trained
    assert float(enc.branch.idf.max()) > 1.0  # fitted on the corpus, saved, loaded
    fresh = build_encoder(enc.spec, PROTEIN.size)
    fresh.load_state_dict(enc.state_dict())
    init = DilatedCNN(EncoderSpec(name="cnn", dim=32, layers=2, max_len=64), PROTEIN.size)
    assert not torch.equal(enc.blocks[0].conv.weight, init.blocks[0].conv.weight)
    seqs = _seqs()
    tokens = PROTEIN.batch(seqs)
    with torch.no_grad():
        emb = enc(tokens).numpy()
        own = DilatedCNN.forward(enc, tokens).numpy()  # the CNN alone
        other = enc.branch(tokens).numpy()
        enc.train()
        trained_on = enc(tokens)  # what the loss sees: the CNN alone
        enc.eval()
    assert own.shape == (25, 32) and emb.shape == (25, 288) and trained_on.shape == (25, 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(_cos(emb), 0.2 * _cos(own) + 0.8 * _cos(other), atol=1e-5)


def test_sketched_cnn_embeds_whole_sequences_with_cnn_wide_residues(run: Path) -> None:
    """Sequences longer than max_len are not windowed (the sketch counts the whole sequence);
    per-residue features are the CNN's."""
    enc = load_model(run).encoder
    long = "".join(_seqs())[:300]  # longer than max_len (64)
    residues: list[np.ndarray] = []
    got, windowed = embed_sequences(enc, PROTEIN, [long, "MKVLAAGIV"], residues=residues)
    assert windowed == 0 and got.shape == (2, 288)
    with torch.no_grad():
        whole = enc(PROTEIN.batch([long])).numpy()[0]
    np.testing.assert_allclose(got[0], whole, rtol=1e-4, atol=1e-6)
    assert [r.shape for r in residues] == [(300, 32), (9, 32)]


def test_sketch_needs_a_kmer_or_cnn_encoder() -> None:
    from phyloclr.errors import ConfigError

    ModelConfig(encoder="cnn", sketch=WORDS)  # allowed
    with pytest.raises(ConfigError, match=r"model\.sketch"):
        ModelConfig(encoder="transformer", sketch=WORDS)
    with pytest.raises(ValueError, match=r"spec\.sketch"):
        SketchedCNN(EncoderSpec(name="cnn", dim=8, layers=1), PROTEIN.size)


def test_per_residue_output_keeps_the_cnn_width_through_shards(run: Path, tmp_path: Path) -> None:
    """`embed --per-residue` with a sketched CNN: pooled rows are CNN + sketch wide, residue
    rows the CNN's; sharded files merge to the same."""
    import h5py

    from phyloclr.embed import EmbedConfig, embed_fasta, merge_shards
    from tests.conftest import write

    seqs = _seqs()[:9]
    fasta = write(tmp_path / "in.fa", "".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    whole = tmp_path / "whole.h5"
    embed_fasta(fasta, whole, run, EmbedConfig(per_residue=True, part_size=4))
    shards = []
    for i in range(2):
        shards.append(tmp_path / f"s{i}.h5")
        cfg = EmbedConfig(per_residue=True, shard_index=i, shard_count=2, part_size=3)
        embed_fasta(fasta, shards[-1], run, cfg)
    merge_shards(shards, tmp_path / "merged.h5")
    with h5py.File(whole) as f, h5py.File(tmp_path / "merged.h5") as g:
        assert f["embeddings"].shape == (9, 288)
        assert f["residues"].shape == (sum(len(s) for s in seqs), 32)
        assert np.allclose(f["residues"][:], g["residues"][:], atol=1e-6)
        assert np.allclose(f["embeddings"][:], g["embeddings"][:], atol=1e-6)


def test_the_appended_sketch_loses_its_directions_and_keeps_them_in_the_file(
    run: Path, tmp_path: Path
) -> None:
    """``fit_directions`` on a CNN with a sketch fits the sketch's (as ``gpu_transfer hybrid
    --directions`` does for the default model): the mix is then the CNN's cosine and the
    sketch's less its top directions, and a saved model removes the same."""
    from phyloclr.models.directions import fit_directions
    from phyloclr.models.store import save_model

    enc = load_model(run).encoder
    assert isinstance(enc, SketchedCNN)
    seqs = _seqs()
    tokens = PROTEIN.batch(seqs)
    with torch.no_grad():
        own = DilatedCNN.forward(enc, tokens).numpy()
    fit_directions(enc, PROTEIN, [r.seq for f in build_families([SEEDS], use_cache=True).families
                                  for r in f.records], 2)  # fmt: skip
    assert enc.spec.sketch_pcs == enc.branch.spec.sketch_pcs == 2
    with torch.no_grad():
        emb = enc(tokens).numpy()
        other = enc.branch(tokens).numpy()
    top = enc.branch.directions.numpy()  # type: ignore[operator]
    assert np.abs(other @ top.T).max() < 1e-5
    np.testing.assert_allclose(_cos(emb), 0.2 * _cos(own) + 0.8 * _cos(other), atol=1e-5)
    save_model(tmp_path / "m.pt", enc, PROTEIN, "{}", 0, "m")
    back, _ = embed_sequences(load_model(tmp_path / "m.pt").encoder, PROTEIN, seqs)
    np.testing.assert_allclose(back, emb, atol=1e-6)


def test_the_recipes_hybrid_fits_the_directions_it_is_asked_for(tmp_path: Path) -> None:
    """``gpu_transfer hybrid --directions R --fit FASTA`` composes a CNN and a sketch model and
    removes R directions of the sketch fitted on FASTA's proteins; its config says so."""
    from benchmarks.gpu_transfer import hybrid

    seeds = build_families([SEEDS], use_cache=True)
    runs = {}
    for name, model in (
        ("cnn", ModelConfig(encoder="cnn", dim=16, layers=1, max_len=64, projection_dim=0)),
        ("sketch", ModelConfig(encoder="kmer", spectrum=WORDS, dim=128, layers=1, centre=True,
                               map="sketch", projection_dim=0)),
    ):  # fmt: skip
        cfg = PretrainConfig(model=model, views=ViewsConfig(crop_len=64),
                             run=RunConfig(max_steps=2, batch_tokens=4096, threads=1))  # fmt: skip
        runs[name] = tmp_path / name
        pretrain(seeds, cfg, runs[name])
    fasta = tmp_path / "fit.fasta"
    seqs = [r.seq for f in seeds.families for r in f.records]
    fasta.write_text("".join(f">p{i}\n{s}\n" for i, s in enumerate(seqs)))
    out = tmp_path / "hybrid.pt"
    hybrid(runs["cnn"] / "model.pt", runs["sketch"] / "model.pt", 0.9, out, 3, fasta)
    loaded = load_model(out)
    assert loaded.config["directions"] == {"count": 3, "fit": str(fasta), "sample": 20_000}
    enc = loaded.encoder
    assert isinstance(enc, SketchedCNN) and enc.branch.spec.sketch_pcs == 3
    sketch = load_model(runs["sketch"]).encoder
    assert torch.equal(enc.branch.idf, sketch.idf)  # the sketch model's own, directions added
    emb = enc.branch(PROTEIN.batch(seqs[:10])).detach().numpy()
    assert np.abs(emb @ enc.branch.directions.numpy().T).max() < 1e-5  # type: ignore[operator]

    # rebuilt from that hybrid (its CNN taken, its sketch dropped), the sketch counted wider
    wide = tmp_path / "wide.pt"
    hybrid(out, runs["sketch"] / "model.pt", 0.93, wide, 2, fasta, sketch_dim=512)
    again = load_model(wide)
    source = {"path": str(out), "weights_sha256": loaded.weights_sha256}
    assert again.config["cnn"]["from"] == source
    assert again.config["cnn"]["weights_sha256"] == loaded.config["cnn"]["weights_sha256"]
    assert again.config["sketch"]["columns"] == 512 and again.config["sketch_weight"] == 0.93
    w = again.encoder
    assert isinstance(w, SketchedCNN) and w.dim == 16 + 512 and w.branch.spec.sketch_pcs == 2
    before, after = enc.state_dict(), w.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if not k.startswith("branch."))
    assert torch.equal(w.branch.idf, sketch.idf) and torch.equal(w.branch.mean, sketch.mean)
    assert not w.branch.embed.weight.any()  # the unused residue embedding: zeros, not noise
    # the same words, fewer collisions: the wider sketch's cosines track the exact input's
    tokens = PROTEIN.batch(seqs[:40])
    exact = sketch.input_cosines(tokens).numpy()
    off = ~np.eye(40, dtype=bool)

    def error(branch: torch.nn.Module) -> float:
        x = branch._sketch(*branch.features(tokens)).detach().numpy()
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return float(np.abs(x @ x.T - exact)[off].mean())

    assert error(w.branch) < error(sketch)

    # words instead of a model's sketch: their idf and mean row fitted on the FASTA, untrained
    words = "murphy10:11011,murphy10:1110001"
    of_words = tmp_path / "words.pt"
    hybrid(out, None, 0.95, of_words, 2, fasta, exact=True, words=words)
    made = load_model(of_words)
    assert made.config["sketch"] == {"words": words, "fit": str(fasta), "columns": 20_000,
                                     "exact": True}  # fmt: skip
    v = made.encoder
    assert isinstance(v, SketchedCNN) and v.dim == 16 + 20_000 and v.branch.spec.sketch_exact
    assert v.spec.sketch == words and v.branch.spec.sketch_pcs == 2
    assert all(
        torch.equal(v.state_dict()[k], before[k]) for k in before if not k.startswith("branch.")
    )
    assert not v.branch.spectrum_weight.any() and not v.branch.embed.weight.any()
    idfs, means = corpus_weights(seqs, words)
    assert np.allclose(v.branch.idf.numpy(), np.concatenate(idfs))
    assert np.allclose(v.branch.mean.numpy(), np.concatenate(means) / np.sqrt(2), atol=1e-7)
    emb = v.branch(PROTEIN.batch(seqs[:10])).detach().numpy()
    assert np.abs(emb @ v.branch.directions.numpy().T).max() < 1e-5  # type: ignore[operator]
    for bad, why in (
        ({"words": words, "exact": True}, "needs --fit"),
        ({"words": words, "exact": True, "fit": fasta, "sketch_from": runs["sketch"] / "model.pt"},
         "two sources"),
        ({"words": "murphy10:11x11", "exact": True, "fit": fasta}, "--words: "),
        ({"words": words, "fit": fasta}, "--exact or --sketch-dim"),
    ):  # fmt: skip
        args = {"fit": None, "sketch_from": None, **bad}
        with pytest.raises(SystemExit, match=why):
            hybrid(out, args.pop("sketch_from"), 0.95, tmp_path / "bad.pt", 0, **args)
