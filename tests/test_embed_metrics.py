"""Embedding core (windows for long sequences, order kept) and retrieval metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phyloclr.embed import _windows, embed_sequences
from phyloclr.metrics import (
    average_precision,
    embedding_retrieval,
    kmer_composition,
    retrieval_scores,
)
from phyloclr.models.alphabet import PROTEIN
from phyloclr.models.build import build_encoder
from phyloclr.models.encoders import EncoderSpec, KmerComposition


def test_retrieval_known_answer() -> None:
    labels = ["a", "a", "b", "b"]
    sim = np.array(
        [
            [1.0, 0.9, 0.1, 0.0],
            [0.9, 1.0, 0.95, 0.2],  # its first hit is wrong
            [0.1, 0.95, 1.0, 0.5],
            [0.0, 0.2, 0.5, 1.0],
        ]
    )
    m, nn1 = retrieval_scores(sim, labels)
    # queries 0 and 3: AP 1; query 1: 'a' at rank 2 → 1/2; query 2: 'b' at rank 2 → 1/2
    assert m == pytest.approx((1 + 0.5 + 0.5 + 1) / 4)
    assert nn1 == pytest.approx(0.5)


def test_retrieval_skips_singleton_labels_and_is_pessimistic_on_ties() -> None:
    m, nn1 = retrieval_scores(np.ones((3, 3)), ["a", "a", "b"])
    assert m == pytest.approx(0.5) and nn1 == 0.0


def test_average_precision_of_one_query() -> None:
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    assert average_precision(scores, np.array([True, False, False, True])) == (1 + 2 / 4) / 2
    # a tie: the irrelevant item ranks first
    assert average_precision(scores, np.array([False, True, False, False])) == 1 / 3
    assert np.isnan(average_precision(scores, np.zeros(4, dtype=bool)))
    # the per-query term of retrieval_scores' mAP
    rng = np.random.default_rng(0)
    sim, labels = rng.random((30, 30)), rng.integers(0, 4, 30)
    aps = []
    for q in range(30):
        keep = np.arange(30) != q
        aps.append(average_precision(sim[q, keep], (labels == labels[q])[keep]))
    assert np.isclose(np.mean(aps), retrieval_scores(sim, labels)[0])


def test_kmer_composition() -> None:
    comp = kmer_composition(["AAAC"], k=2, alphabet="AC")
    assert comp[0] == pytest.approx([2 / 3, 1 / 3, 0.0, 0.0])  # AA, AC, CA, CC
    m, _ = embedding_retrieval(
        kmer_composition(["AAAA", "AAAC", "CCCC", "CCCA"], 1, "AC"), list("xxyy")
    )
    assert m == 1.0


def test_windows_cover_everything() -> None:
    spans = _windows(2500, 1000, 100)
    assert spans[0][0] == 0 and spans[-1][1] == 2500
    assert all(b - a == 1000 for a, b in spans)
    assert all(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1))


def test_embed_keeps_order_and_windows_long_sequences() -> None:
    torch.manual_seed(0)
    enc = build_encoder(EncoderSpec(dim=16, layers=2, max_len=64, dropout=0.0), PROTEIN.size).eval()
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), n)) for n in (30, 200, 5, 64, 65)]
    emb, n_windowed = embed_sequences(enc, PROTEIN, seqs, batch_tokens=100)
    assert emb.shape == (5, 16) and n_windowed == 2
    single = [embed_sequences(enc, PROTEIN, [s])[0][0] for s in seqs]
    assert np.allclose(emb, np.stack(single), atol=1e-5)  # batching and order do not matter
    # a sequence within the context equals a direct forward pass
    tokens = PROTEIN.batch([seqs[0]])
    assert np.allclose(emb[0], enc(tokens).detach().numpy()[0], atol=1e-5)


def test_kmer_branch_counts_valid_windows() -> None:
    branch = KmerComposition(2, 20, 4)
    with torch.no_grad():
        branch.table.weight.zero_()
        branch.table.weight[0] = 1.0  # the k-mer "AA"
    tokens = PROTEIN.batch(["AAAC", "AA"])  # windows AA, AA, AC / AA (+ padding)
    out = branch(tokens)
    assert out[0, 0].item() == pytest.approx(2 / 3) and out[1, 0].item() == pytest.approx(1.0)


def test_transformer_context_is_enforced() -> None:
    enc = build_encoder(
        EncoderSpec(name="transformer", dim=16, layers=1, heads=2, max_len=32), PROTEIN.size
    )
    with pytest.raises(ValueError, match="exceeds the context"):
        enc(PROTEIN.batch(["A" * 40]))
    emb, n = embed_sequences(enc, PROTEIN, ["A" * 40])  # windows instead of a crash
    assert n == 1 and np.isfinite(emb).all()


def test_blocked_scores_equal_the_whole_matrix() -> None:
    """Retrieval, alignment and uniformity are summed over blocks of query rows (the (N, N)
    matrix is never held), with the figures of the whole-matrix formulas, ties included."""
    from phyloclr.evaluate import alignment_uniformity

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 8))
    x[5] = x[6]  # a tie across blocks
    y = rng.integers(0, 12, 600).astype(str)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert embedding_retrieval(x, y.tolist(), chunk=7) == retrieval_scores(xn @ xn.T, y.tolist())
    same = y[:, None] == y[None, :]
    np.fill_diagonal(same, False)
    sq = np.clip(2.0 - 2.0 * (xn @ xn.T), 0.0, None)
    iu = np.triu_indices(len(y), 1)
    align, unif = alignment_uniformity(xn, y, chunk=7)
    assert align == pytest.approx(sq[same].mean(), rel=1e-12)
    assert unif == pytest.approx(np.log(np.mean(np.exp(-2.0 * sq[iu]))), rel=1e-12)
