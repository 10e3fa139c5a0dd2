"""The k-mer spectrum encoder: its input is exactly the log-tf-idf baseline, it starts at that
baseline's geometry, it trains, and it embeds whole sequences."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from phyloclr.embed import EmbedConfig, embed_fasta, embed_sequences
from phyloclr.errors import ConfigError
from phyloclr.families import build_families
from phyloclr.kmers import (
    SKETCH_SALT,
    centred_cosines,
    inverse_document_frequency,
    kmer_keys,
    log_tfidf,
    mix32,
    parse_spectrum,
    reduced_index,
    spectrum_counts,
    spectrum_matrix,
)
from phyloclr.models.alphabet import PROTEIN
from phyloclr.models.build import build_encoder
from phyloclr.models.encoders import EncoderSpec
from phyloclr.models.store import load_model
from phyloclr.train import PretrainConfig, pretrain
from phyloclr.train.config import ModelConfig, ObjectiveConfig, OptimConfig, RunConfig, ViewsConfig
from tests.conftest import ROOT

SEEDS = ROOT / "data" / "protein" / "seeds"


@pytest.fixture(scope="module")
def seeds():
    return build_families([SEEDS], use_cache=False)


def _seqs(seeds, n: int = 60) -> list[str]:
    return [r.seq for f in seeds.families for r in f.records][:n]


@pytest.mark.parametrize(
    ("spectrum", "buckets"),
    [("murphy10:4", 0), ("protein:3", 0), ("murphy10:2", 0), ("protein:4,murphy10:5", 0),
     ("protein:4,murphy10:5", 4096), ("murphy10:3", 64),
     ("murphy10:4,murphy10:11011,murphy10:1010011", 0), ("protein:101", 64)],
)  # fmt: skip
def test_features_are_the_log_tfidf_vectors(seeds, spectrum: str, buckets: int) -> None:
    """The encoder's sparse input is the scipy log-tf-idf of each spectrum (hashed or not),
    unit-normed per spectrum and scaled by 1/√S: a dense comparison of the bag sums."""
    seqs = [*_seqs(seeds), "MKV", "MKVLAXXAGIVLB"]  # too short, and unknown letters
    spec = EncoderSpec(name="kmer", dim=16, layers=1, spectrum=spectrum, buckets=buckets)
    enc = build_encoder(spec, PROTEIN.size)
    enc.fit_idf(seqs)
    got = _dense_rows(enc, PROTEIN.batch(seqs))
    mats = spectrum_matrix(seqs, spectrum, buckets)
    parts = [log_tfidf(m, inverse_document_frequency(m)).toarray() for m in mats]
    if buckets:
        want = sum(parts) / np.sqrt(len(parts))
    else:
        want = np.concatenate(parts, axis=1) / np.sqrt(len(parts))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_padding_does_not_change_an_embedding(seeds) -> None:
    seqs = _seqs(seeds, 8)
    enc = build_encoder(EncoderSpec(name="kmer", dim=32, layers=2, hidden=64), PROTEIN.size)
    enc.eval()
    together = enc(PROTEIN.batch(seqs))
    alone = torch.cat([enc(PROTEIN.batch([s])) for s in seqs])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_untrained_encoder_keeps_the_tfidf_geometry(seeds) -> None:
    """A random first layer is a Johnson-Lindenstrauss projection of the tf-idf vectors and the
    residual blocks start as the identity, so cosines start at the baseline's."""
    seqs = _seqs(seeds, 120)
    torch.manual_seed(0)
    enc = build_encoder(EncoderSpec(name="kmer", dim=1024, layers=3, hidden=64), PROTEIN.size)
    enc.fit_idf(seqs)
    enc.eval()
    with torch.no_grad():
        e = torch.nn.functional.normalize(enc(PROTEIN.batch(seqs)), dim=1).numpy()
    counts = spectrum_counts(seqs, 4)
    x = log_tfidf(counts, inverse_document_frequency(counts))
    ref = (x @ x.T).toarray()
    iu = np.triu_indices(len(seqs), 1)
    err = (e @ e.T)[iu] - ref[iu]
    # a random projection to D dimensions moves cosines by about 1/sqrt(D) = 0.031
    assert abs(err.mean()) < 0.01 and err.std() < 1.5 / np.sqrt(1024)
    assert np.abs(err).max() < 0.2


def _dense_rows(enc, tokens: torch.Tensor) -> np.ndarray:
    """The encoder's sparse input rows (``features``) as a dense (B, table rows) array."""
    rows, offsets, w = enc.features(tokens)
    dense = np.zeros((len(offsets), enc.rows))
    bounds = [*offsets.tolist(), len(rows)]
    for i in range(len(offsets)):
        span = slice(bounds[i], bounds[i + 1])
        np.add.at(dense[i], rows[span].numpy(), w[span].numpy())
    return dense


def _cfg(steps: int) -> PretrainConfig:
    return PretrainConfig(
        model=ModelConfig(
            encoder="kmer", dim=64, layers=2, hidden=64, projection_dim=32, projection_hidden=64
        ),
        views=ViewsConfig(crop_len=512),
        run=RunConfig(max_steps=steps, batch_tokens=65536, checkpoint_every=5, threads=1),
    )


def test_spectrum_encoder_trains_saves_and_embeds_whole(seeds, tmp_path: Path) -> None:
    result = pretrain(seeds, _cfg(10), tmp_path / "run")
    assert result.steps == 10
    loaded = load_model(tmp_path / "run")
    assert loaded.encoder.spec.name == "kmer"
    # the idf of the training families was fitted and saved with the weights
    idf = loaded.encoder.idf.numpy()  # type: ignore[union-attr, operator]
    expected = inverse_document_frequency(
        spectrum_counts([r.seq for f in seeds.families for r in f.records], 4)
    )
    np.testing.assert_allclose(idf, expected, rtol=1e-6)
    # a sequence longer than any context is embedded whole: no windows
    long = "".join(_seqs(seeds, 40))
    assert len(long) > 5000
    emb, windowed = embed_sequences(loaded.encoder, loaded.alphabet, [long, long[:300]])
    assert windowed == 0 and emb.shape == (2, 64)
    with torch.no_grad():
        direct = loaded.encoder(PROTEIN.batch([long])).numpy()
    np.testing.assert_allclose(emb[0], direct[0], rtol=1e-4, atol=1e-5)


def test_centred_cosines_match_the_dense_centred_rows(seeds) -> None:
    """kmers.centred_cosines (the harness's centred rows) is the cosine of (row − mean)."""
    seqs = _seqs(seeds, 25)
    counts = spectrum_counts(seqs, 3)
    x = log_tfidf(counts, inverse_document_frequency(counts))
    mean = np.asarray(x.mean(0)).ravel()
    dense = x.toarray() - mean
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    np.testing.assert_allclose(centred_cosines(x, mean), dense @ dense.T, atol=1e-6)
    # against no mean at all it is the plain tf-idf cosine
    zero = np.zeros_like(mean)
    np.testing.assert_allclose(centred_cosines(x, zero), (x @ x.T).toarray(), atol=1e-6)


def test_centred_model_trains_with_geometry_saves_and_loads(seeds, tmp_path: Path) -> None:
    """A centred encoder trained with the geometry term keeps its corpus mean in the saved
    model, and the loaded model embeds as the trained one did."""
    base = _cfg(6)
    cfg = replace(
        base,
        model=replace(base.model, centre=True, layers=1, projection_dim=0),
        objective=ObjectiveConfig(geometry=10.0),
    )
    result = pretrain(seeds, cfg, tmp_path / "run")
    loaded = load_model(tmp_path / "run")
    corpus = [r.seq for f in seeds.families for r in f.records]
    fresh = build_encoder(loaded.encoder.spec, PROTEIN.size)
    fresh.fit_idf(corpus)
    np.testing.assert_allclose(loaded.encoder.mean.numpy(), fresh.mean.numpy(), rtol=1e-6)
    seqs = corpus[:5]
    with torch.no_grad():
        trained = result.model.encoder.eval()(PROTEIN.batch(seqs)).numpy()
        again = loaded.encoder(PROTEIN.batch(seqs)).numpy()
    np.testing.assert_allclose(again, trained, rtol=1e-5, atol=1e-6)


def test_float16_model_file_is_half_and_embeds_alike(seeds, tmp_path: Path) -> None:
    """run.model_dtype float16 stores model.pt's parameters in half precision (the idf and
    mean buffers stay float32); the loaded model computes in float32, and the checkpoint that
    --resume reads stays float32."""
    base = _cfg(5)
    full = pretrain(seeds, base, tmp_path / "full")
    half_cfg = replace(base, run=replace(base.run, model_dtype="float16"))
    pretrain(seeds, half_cfg, tmp_path / "half")
    size = (tmp_path / "half" / "model.pt").stat().st_size
    assert size < 0.6 * (tmp_path / "full" / "model.pt").stat().st_size
    loaded = load_model(tmp_path / "half")
    assert loaded.encoder.bag.weight.dtype == torch.float32
    ckpt = torch.load(tmp_path / "half" / "checkpoint.pt", weights_only=False)
    assert ckpt["model"]["encoder.bag.weight"].dtype == torch.float32
    seqs = [r.seq for f in seeds.families for r in f.records][:6]
    with torch.no_grad():
        want = full.model.encoder.eval()(PROTEIN.batch(seqs)).numpy()
        got = loaded.encoder(PROTEIN.batch(seqs)).numpy()
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-3)


def test_kept_models_are_the_checkpoints(seeds, tmp_path: Path) -> None:
    """run.keep_models keeps the model of every checkpoint (for a curve over training); the
    last one is the final model."""
    base = _cfg(10)
    cfg = replace(base, run=replace(base.run, keep_models=True))
    result = pretrain(seeds, cfg, tmp_path / "run")
    kept = sorted((tmp_path / "run" / "models").glob("step-*.pt"))
    assert [p.name for p in kept] == ["step-0000005.pt", "step-0000010.pt"]
    assert load_model(kept[-1]).weights_sha256 == load_model(tmp_path / "run").weights_sha256
    assert load_model(kept[0]).weights_sha256 != load_model(kept[1]).weights_sha256
    assert result.steps == 10


def test_spectrum_encoder_resumes_exactly(seeds, tmp_path: Path) -> None:
    whole = pretrain(seeds, _cfg(6), tmp_path / "whole")
    pretrain(seeds, _cfg(3), tmp_path / "part")
    again = pretrain(seeds, _cfg(6), tmp_path / "part", resume=True)
    for (name, a), b in zip(whole.model.state_dict().items(), again.model.state_dict().values(),
                            strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, msg=name)


def test_per_residue_is_refused_for_a_spectrum_model(seeds, tmp_path: Path) -> None:
    pretrain(seeds, _cfg(1), tmp_path / "run")
    fa = tmp_path / "q.fasta"
    fa.write_text(">a\nMKVLAAGIVLLLAAPQWERTYHKL\n")
    with pytest.raises(ConfigError, match="per-residue"):
        embed_fasta(fa, tmp_path / "q.h5", tmp_path / "run", EmbedConfig(per_residue=True))
    assert not (tmp_path / "q.h5").exists()


def test_spaced_words_are_the_letters_under_the_pattern() -> None:
    """A spaced word reads the letters under the pattern's 1s, skips windows with an unknown
    letter, and a pattern of only 1s is the contiguous k-mer."""
    index, size = reduced_index("protein")
    seq = "MKVLAXGIVW"
    keys, pos = kmer_keys(seq, "1101", index, size)
    want = [
        (i, [seq[i], seq[i + 1], seq[i + 3]])
        for i in range(len(seq) - 3)
        if "X" not in (seq[i], seq[i + 1], seq[i + 3])
    ]
    assert pos.tolist() == [i for i, _ in want]
    code = {ch: int(index[ord(ch)]) for ch in "ACDEFGHIKLMNPQRSTVWY"}
    assert keys.tolist() == [
        sum(code[c] * size ** (2 - j) for j, c in enumerate(w)) for _, w in want
    ]
    for a, b in (("111", 3), ("1111", 4)):
        np.testing.assert_array_equal(
            kmer_keys(seq, a, index, size)[0], kmer_keys(seq, b, index, size)[0]
        )
    assert parse_spectrum("murphy10:4, protein:10011") == [("murphy10", 4), ("protein", "10011")]
    assert spectrum_counts([seq], "1101", "protein").shape == (1, 20**3)


def test_config_checks() -> None:
    with pytest.raises(ConfigError, match=r"model\.spectrum"):
        ModelConfig(encoder="kmer", spectrum="protein:9")
    with pytest.raises(ConfigError, match=r"model\.spectrum"):
        ModelConfig(encoder="kmer", spectrum="blosum:3")
    with pytest.raises(ConfigError, match="buckets"):
        ModelConfig(encoder="kmer", spectrum="protein:6")
    ModelConfig(encoder="kmer", spectrum="protein:6", buckets=1 << 16)
    for bad in ("murphy10:0110", "murphy10:1100", "murphy10:10", "murphy10:10000000000000001",
                "murphy10:1111111110", "murphy10:12101"):  # fmt: skip
        with pytest.raises(ConfigError, match=r"model\.spectrum"):
            ModelConfig(encoder="kmer", spectrum=bad)
    with pytest.raises(ConfigError, match="buckets"):  # 20 letters, 6 of them
        ModelConfig(encoder="kmer", spectrum="protein:1101111")
    ModelConfig(encoder="kmer", spectrum="murphy10:4,murphy10:110111")
    with pytest.raises(ConfigError, match="composition branch"):
        ModelConfig(encoder="kmer", kmer=3)


def test_singletons_skip_trains_on_evolutionary_pairs_only(seeds, tmp_path: Path) -> None:
    """views.singletons: skip leaves families of one out of training (no mutation views), while
    their sequences still count for the idf; 'mutation' trains on them with mutation views."""
    import csv
    import dataclasses

    from phyloclr.families.model import FamilySet

    lone = [
        dataclasses.replace(f, id=f"lone{i}", records=f.records[:1], distances=None)
        for i, f in enumerate(seeds.families[:6])
    ]
    fset = FamilySet(families=[*seeds.families, *lone])
    fallbacks = {}
    for mode in ("skip", "mutation"):
        base = _cfg(4)
        cfg = dataclasses.replace(base, views=dataclasses.replace(base.views, singletons=mode))
        result = pretrain(fset, cfg, tmp_path / mode)
        rows = list(csv.DictReader((tmp_path / mode / "metrics.csv").open()))
        fallbacks[mode] = sum(int(r["mutation_fallbacks"]) for r in rows)
        idf = result.model.encoder.idf.numpy()  # type: ignore[union-attr, operator]
        everything = [r.seq for f in fset.families for r in f.records]
        expected = inverse_document_frequency(spectrum_counts(everything, 4))
        np.testing.assert_allclose(idf, expected, rtol=1e-6)
    assert fallbacks["skip"] == 0 and fallbacks["mutation"] > 0


def test_input_cosines_are_the_tfidf_cosines(seeds) -> None:
    seqs = [*_seqs(seeds, 40), "MKV"]  # the last has no 4-mer: cosine 0 with everything
    enc = build_encoder(EncoderSpec(name="kmer", dim=16, layers=1), PROTEIN.size)
    enc.fit_idf(seqs)
    got = enc.input_cosines(PROTEIN.batch(seqs)).numpy()
    counts = spectrum_counts(seqs, 4)
    x = log_tfidf(counts, inverse_document_frequency(counts))
    np.testing.assert_allclose(got, (x @ x.T).toarray(), rtol=1e-5, atol=1e-6)
    sliced = enc.feature_cosines(enc.features(PROTEIN.batch(seqs)), budget=1000).numpy()
    np.testing.assert_allclose(sliced, got, rtol=1e-5, atol=1e-6)  # many slices, same Gram
    cnn = build_encoder(EncoderSpec(name="cnn", dim=16, layers=1), PROTEIN.size)
    with pytest.raises(ValueError, match="no input vectors"):
        cnn.input_cosines(PROTEIN.batch(seqs))


@pytest.mark.parametrize(
    ("spectrum", "buckets"), [("murphy10:4", 0), ("protein:4,murphy10:5", 0),
                              ("protein:4,murphy10:5", 4096)],
)  # fmt: skip
def test_centred_encoder_subtracts_the_corpus_mean_row(seeds, spectrum: str, buckets: int) -> None:
    """model.centre: the stored mean is the mean of the corpus's input rows, the embedding is
    the map of (row − mean), and the geometry term's cosines are those of the centred rows."""
    seqs = [*_seqs(seeds, 30), "MKV"]
    spec = EncoderSpec(
        name="kmer", dim=32, layers=1, spectrum=spectrum, buckets=buckets, centre=True
    )
    enc = build_encoder(spec, PROTEIN.size)
    enc.fit_idf(seqs)
    tokens = PROTEIN.batch(seqs)
    dense = _dense_rows(enc, tokens)
    mean = enc.mean.numpy()
    np.testing.assert_allclose(mean, dense.mean(0), rtol=1e-5, atol=1e-7)
    centred = dense - mean
    with torch.no_grad():
        emb = enc(tokens).numpy()
    np.testing.assert_allclose(emb, centred @ enc.bag.weight.detach().numpy(), rtol=1e-4, atol=1e-5)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    for budget in (1 << 24, 500):
        got = enc.feature_cosines(enc.features(tokens), budget=budget).numpy()
        np.testing.assert_allclose(got, unit @ unit.T, rtol=1e-4, atol=1e-5)
    assert abs(float(np.mean(unit @ unit.T))) < 0.1  # centred: no common direction left
    with pytest.raises(ConfigError, match="centre"):
        ModelConfig(encoder="cnn", centre=True)


def test_geometry_term_pulls_embedding_cosines_to_the_input(seeds, tmp_path: Path) -> None:
    """objective.geometry adds the squared gap between embedding and tf-idf cosines: with a
    large weight and no contrastive pull worth the name, training shrinks that gap, and it is
    refused for encoders without a tf-idf input."""
    seqs = _seqs(seeds, 120)
    counts = spectrum_counts([r.seq for f in seeds.families for r in f.records], 4)
    idf = inverse_document_frequency(counts)
    x = log_tfidf(spectrum_counts(seqs, 4), idf)
    ref = (x @ x.T).toarray()
    iu = np.triu_indices(len(seqs), 1)

    def gap(encoder) -> float:  # type: ignore[no-untyped-def]
        encoder.eval()
        with torch.no_grad():
            e = torch.nn.functional.normalize(encoder(PROTEIN.batch(seqs)), dim=1).numpy()
        return float((((e @ e.T) - ref)[iu] ** 2).mean())

    gaps = {}
    for weight in (0.0, 1000.0):
        base = _cfg(30)
        cfg = PretrainConfig(
            model=ModelConfig(encoder="kmer", dim=64, layers=1, projection_dim=32,
                              projection_hidden=64),
            views=base.views, run=base.run,
            objective=ObjectiveConfig(geometry=weight),
            optim=OptimConfig(lr=1e-2, warmup_steps=0),
        )  # fmt: skip
        gaps[weight] = gap(pretrain(seeds, cfg, tmp_path / f"g{weight}").model.encoder)
    assert gaps[1000.0] < 0.5 * gaps[0.0]
    # no projection head: the loss sees the embedding itself
    cfg = PretrainConfig(
        model=ModelConfig(encoder="kmer", dim=64, layers=1, projection_dim=0),
        views=base.views, run=replace(base.run, max_steps=3),
        objective=ObjectiveConfig(geometry=10.0),
    )  # fmt: skip
    net = pretrain(seeds, cfg, tmp_path / "nohead").model
    assert not any(p.numel() for p in net.head.parameters())  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="projection_dim"):
        ModelConfig(projection_dim=-1)
    with pytest.raises(ConfigError, match="geometry"):
        PretrainConfig(objective=ObjectiveConfig(geometry=1.0))
    with pytest.raises(ConfigError, match="geometry"):
        ObjectiveConfig(geometry=-1.0)


def test_mix32_is_the_same_hash_in_numpy_and_torch() -> None:
    ids = np.array([0, 1, 2, 9_999, 1_199_999, 2**31 + 5], dtype=np.int64)
    a = mix32(ids, SKETCH_SALT)
    b = mix32(torch.from_numpy(ids), SKETCH_SALT).numpy()
    np.testing.assert_array_equal(a, b)
    assert ((a >= 0) & (a < 2**32)).all() and len(set(a.tolist())) == len(ids)
    buckets = mix32(np.arange(100_000), SKETCH_SALT) % 64  # spread evenly over the columns
    assert np.bincount(buckets, minlength=64).min() > 1_400


@pytest.mark.parametrize("centre", [False, True])
def test_sketch_is_a_signed_hash_projection_of_the_input_rows(seeds, centre: bool) -> None:
    """model.map sketch: the embedding is (row − mean) times a (V, D) matrix with one ±1 per
    row at a hashed column, each spectrum scaled by its learned weight; its cosines follow the
    input's (a random projection), and nothing of size V × D is stored."""
    seqs = [*_seqs(seeds, 40), "MKV"]
    spectrum = "murphy10:4,murphy10:11011"
    spec = EncoderSpec(name="kmer", dim=4096, layers=1, spectrum=spectrum, centre=centre,
                       map="sketch")  # fmt: skip
    enc = build_encoder(spec, PROTEIN.size)
    enc.fit_idf(seqs)
    with torch.no_grad():
        enc.spectrum_weight.copy_(torch.tensor([0.0, np.log(2.0)]))
    tokens = PROTEIN.batch(seqs)
    dense = _dense_rows(enc, tokens)
    if centre:
        dense = dense - enc.mean.numpy()
    every = np.arange(enc.rows)
    matrix = np.zeros((enc.rows, 4096))
    sign = 1.0 - 2.0 * (mix32(every, SKETCH_SALT + 1) & 1)
    matrix[every, mix32(every, SKETCH_SALT) % 4096] = sign * np.where(every < 10_000, 1.0, 2.0)
    with torch.no_grad():
        emb = enc(tokens).numpy()
    np.testing.assert_allclose(emb, dense @ matrix, rtol=1e-4, atol=1e-5)
    # one learned weight per spectrum (the base class's token table is unused here)
    assert sorted(n for n, _ in enc.named_parameters()) == ["embed.weight", "spectrum_weight"]
    dense, emb = dense[:-1], emb[:-1]  # "MKV" has no 4-mer
    unit = dense / np.linalg.norm(dense, axis=1, keepdims=True)
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    iu = np.triu_indices(len(seqs) - 1, 1)
    assert np.corrcoef((unit @ unit.T)[iu], (e @ e.T)[iu])[0, 1] > 0.8


def test_an_exact_sketch_is_the_input_row_itself(seeds) -> None:
    """spec.sketch_exact: one column per table row, no hashed sign: the embedding is the
    centred input row times its spectrum's weight, and its cosines are the input's exactly;
    a width other than the table's rows is refused."""
    seqs = [*_seqs(seeds, 30), "MKV"]
    spectrum = "murphy10:4,murphy10:11011"
    spec = EncoderSpec(name="kmer", dim=20_000, layers=1, spectrum=spectrum, centre=True,
                       map="sketch", sketch_exact=True)  # fmt: skip
    enc = build_encoder(spec, PROTEIN.size)
    enc.fit_idf(seqs)
    with torch.no_grad():
        enc.spectrum_weight.copy_(torch.tensor([0.0, np.log(2.0)]))
    tokens = PROTEIN.batch(seqs)
    dense = _dense_rows(enc, tokens) - enc.mean.numpy()
    dense[:, 10_000:] *= 2.0
    enc.eval()
    with torch.no_grad():
        emb = enc(tokens).numpy()
    np.testing.assert_allclose(emb[:-1], dense[:-1], rtol=1e-4, atol=1e-6)
    assert not emb[-1].any()  # "MKV" has no 4-mer: zeros in eval mode
    with pytest.raises(ValueError, match="one column per table row"):
        build_encoder(replace(spec, dim=4096), PROTEIN.size)


def test_sketched_encoder_trains_saves_and_loads(seeds, tmp_path: Path) -> None:
    model = replace(_cfg(6).model, map="sketch", layers=1, dim=256,
                    spectrum="murphy10:4,murphy10:1101", centre=True)  # fmt: skip
    cfg = replace(_cfg(6), model=model)
    pretrain(seeds, cfg, tmp_path / "run")
    loaded = load_model(tmp_path / "run")
    assert loaded.encoder.spec.map == "sketch" and loaded.encoder.bag is None
    assert not torch.equal(loaded.encoder.spectrum_weight, torch.zeros(2))  # it learned
    assert (tmp_path / "run" / "model.pt").stat().st_size < 200_000  # idf and mean, no table
    emb, _ = embed_sequences(loaded.encoder, loaded.alphabet, _seqs(seeds, 5))
    assert emb.shape == (5, 256)
    with pytest.raises(ConfigError, match="sketch"):
        ModelConfig(encoder="kmer", map="sketch", buckets=1024)
    with pytest.raises(ConfigError, match="sketch"):
        ModelConfig(encoder="cnn", map="sketch")


def test_appended_sketch_mixes_the_cosines_and_is_not_trained(seeds, tmp_path: Path) -> None:
    """model.sketch: embeddings are the trained map and a sketch of other spectra side by side,
    so their cosine is (1 − w) × the map's + w × the sketch's; training sees the map alone."""
    model = replace(_cfg(4).model, layers=1, sketch="murphy10:11011,murphy10:101011",
                    sketch_dim=512, sketch_weight=0.7)  # fmt: skip
    pretrain(seeds, replace(_cfg(4), model=model), tmp_path / "run")
    enc = load_model(tmp_path / "run").encoder
    assert enc.dim == 64 + 512 and enc.branch is not None
    assert torch.equal(enc.branch.spectrum_weight, torch.zeros(2))  # never trained
    seqs = _seqs(seeds, 30)
    tokens = PROTEIN.batch(seqs)
    with torch.no_grad():
        emb = enc(tokens).numpy()  # eval mode: the embedding users get
        enc.train()
        own = enc(tokens).numpy()  # the map alone, as the loss sees it
        enc.eval()
        other = enc.branch(tokens).numpy()
    assert emb.shape == (30, 576) and own.shape == (30, 64)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)

    def cos(x: np.ndarray) -> np.ndarray:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return x @ x.T

    np.testing.assert_allclose(cos(emb), 0.3 * cos(own) + 0.7 * cos(other), atol=1e-5)
    got, _ = embed_sequences(enc, PROTEIN, seqs)
    np.testing.assert_allclose(got, emb, rtol=1e-4, atol=1e-6)
    for bad in ({"sketch_weight": 1.0}, {"sketch_weight": 0.0}, {"sketch": "murphy10:0110"}):
        with pytest.raises(ConfigError, match=r"model\.sketch"):
            ModelConfig(encoder="kmer", **{"sketch": "murphy10:4", **bad})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"model\.sketch"):
        ModelConfig(encoder="transformer", sketch="murphy10:4")
    with pytest.raises(ConfigError, match="rows of idf and mean"):  # 20^6 rows
        ModelConfig(encoder="kmer", sketch="protein:6")


def test_homology_weights_favour_what_evolution_keeps() -> None:
    """Unsmoothed, a k-mer every homologous pair shares gets ln(1 / chance), one the homolog
    loses and one that every protein holds (chance explains it) get 0; smoothing pulls the
    share kept towards the mean."""
    from scipy import sparse

    from phyloclr.kmers import homology_weights

    n = 40
    rows = np.arange(n)
    kept = np.where(rows < 20, 1.0, 0.0)  # k-mer 0: in both members of pairs (0,1), (2,3), ...
    lost = np.where((rows < 20) & (rows % 2 == 0), 1.0, 0.0)  # k-mer 1: in a, never in b
    common = np.ones(n)  # k-mer 2: everywhere
    counts = sparse.csr_matrix(np.stack([kept, lost, common], 1).astype(np.float32))
    pairs = np.array([(i, i + 1) for i in range(0, 20, 2)])
    w = homology_weights(counts, pairs, prior=0.0)
    assert np.isclose(w[0], np.log(41 / 21)) and w[1] == 0.0 and w[2] == 0.0
    # smoothed towards the mean share kept (40 of 50 occurrences) with 20 pseudo-occurrences
    w = homology_weights(counts, pairs)
    assert np.isclose(w[0], np.log((20 + 20 * 0.8) / (20 + 20) / (21 / 41)), atol=1e-5)
    assert np.isclose(w[1], np.log((0 + 20 * 0.8) / (10 + 20) / (11 / 41)), atol=1e-5)


def test_fit_idf_with_pairs_uses_homology_weights(seeds) -> None:
    from phyloclr.kmers import homology_weights, member_pairs

    seqs = [r.seq for f in seeds.families for r in f.records]
    sizes = [f.size for f in seeds.families]
    starts = np.cumsum([0, *sizes])
    family_of = np.repeat(np.arange(len(sizes)), sizes)
    pairs = member_pairs(family_of, 0)
    assert len(pairs) == sum(min(10, s * (s - 1) // 2) for s in sizes)
    assert (family_of[pairs[:, 0]] == family_of[pairs[:, 1]]).all()
    assert (pairs[:, 0] != pairs[:, 1]).all() and pairs.max() < starts[-1]
    spec = EncoderSpec(name="kmer", dim=16, layers=1, spectrum="murphy10:3", centre=True)
    enc = build_encoder(spec, PROTEIN.size)
    enc.fit_idf(seqs, pairs)
    expect = homology_weights(spectrum_counts(seqs, 3, "murphy10"), pairs)
    assert np.allclose(enc.idf.numpy(), expect)
    x = log_tfidf(spectrum_counts(seqs, 3, "murphy10"), expect)
    assert np.allclose(enc.mean.numpy(), np.asarray(x.mean(0)).ravel(), atol=1e-6)
    with pytest.raises(ConfigError, match="kmer_weights"):
        ModelConfig(encoder="cnn", kmer_weights="homology")


@pytest.mark.parametrize(
    ("spectrum", "buckets"), [("murphy10:3,murphy10:1011", 0), ("protein:2", 64)]
)
def test_corpus_weights_a_chunk_at_a_time_are_the_whole_corpus_weights(
    seeds, spectrum: str, buckets: int, monkeypatch
) -> None:
    """``fit_idf``'s idf and mean row, counted a chunk of sequences at a time (bounded memory
    at a million proteins), are those of the whole corpus's spectra: to the bit with one chunk,
    the idf to the bit and the mean to float32 rounding with many (chunks of 7 and of 1, the
    last one short)."""
    from phyloclr.kmers import corpus_weights

    seqs = [r.seq for f in seeds.families for r in f.records]
    mats = spectrum_matrix(seqs, spectrum, buckets)
    idfs = [inverse_document_frequency(m) for m in mats]
    means = [np.asarray(log_tfidf(m, i).mean(0)).ravel() for m, i in zip(mats, idfs, strict=True)]
    one_idf, one_mean = corpus_weights(seqs, spectrum, buckets, chunk=len(seqs))
    for a, b in zip(one_idf + one_mean, idfs + means, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    for chunk in (7, 1):
        got_idf, got_mean = corpus_weights(seqs, spectrum, buckets, chunk=chunk)
        assert all(np.array_equal(a, b) for a, b in zip(got_idf, idfs, strict=True))
        for a, b in zip(got_mean, means, strict=True):
            assert np.allclose(a, b, rtol=1e-5, atol=1e-8) and (b != 0).sum() > 10
    assert corpus_weights(seqs, spectrum, buckets, centre=False, chunk=7)[1] == []
    # the encoder: the same buffers whatever the chunk
    spec = EncoderSpec(name="kmer", dim=16, layers=1, spectrum=spectrum, buckets=buckets,
                       centre=True)  # fmt: skip
    whole, chunked = build_encoder(spec, PROTEIN.size), build_encoder(spec, PROTEIN.size)
    whole.fit_idf(seqs)
    import phyloclr.kmers as kmers

    monkeypatch.setattr(kmers, "FIT_CHUNK", 7)
    chunked.fit_idf(seqs)
    assert torch.equal(whole.idf, chunked.idf)
    assert torch.allclose(whole.mean, chunked.mean, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("word", [3, "11011", "1101"])
@pytest.mark.parametrize("chunk", [1, 50, 1 << 21])
def test_spectrum_counts_match_counting_each_sequence_alone(word, chunk) -> None:
    """Counting many sequences at once (joined, in chunks) gives each one's own counts: no
    k-mer spans two sequences, letters outside the alphabet (and NUL, 0xFF, non-ASCII) break
    windows, empty and short sequences give empty rows, rows' columns are sorted."""
    from phyloclr.kmers import kmer_counts, reduced_index

    rng = np.random.default_rng(1)
    letters = list("ACDEFGHIKLMNPQRSTVWYXBZ*-acdé\0\xff")
    seqs = ["".join(rng.choice(letters, int(rng.integers(0, 30)))) for _ in range(400)]
    seqs += ["", "A", "AC", "ACDEFGHIK" * 20]
    for alphabet in ("murphy10", "protein"):
        index, size = reduced_index(alphabet)
        got = spectrum_counts(seqs, word, alphabet, chunk=chunk)
        want = np.stack([kmer_counts(s, word, index, size) for s in seqs])
        assert got.dtype == np.float32 and np.array_equal(got.toarray(), want)
        assert got.has_sorted_indices
