"""Retrieval and classification metrics on embeddings (cosine similarity, leave one out)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from phyloclr.kmers import kmer_counts


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _codes(labels: Sequence[object]) -> np.ndarray:
    _, codes = np.unique(np.asarray([str(lab) for lab in labels]), return_inverse=True)
    return codes


def retrieval_scores(
    similarity: np.ndarray, labels: Sequence[object], chunk: int = 1024
) -> tuple[float, float]:
    """(mAP, 1-NN accuracy) of same-label retrieval from an (N, N) similarity matrix.

    Each item queries all others (itself excluded); AP averages precision at the rank of
    every same-label item; queries whose label has no other member are skipped (for both).
    Ties are broken pessimistically (a tied different-label item ranks first).
    """
    sim = np.asarray(similarity, dtype=np.float64)
    return _retrieval(lambda rows: sim[rows].copy(), _codes(labels), chunk)


def _ranked_relevance(scores: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(AP (Q,), NaN where nothing is relevant; whether the top item is relevant (Q,)) of query
    rows ``scores`` (Q, D) with ``relevant`` (Q, D) bool; ties ranked pessimistically (a stable
    descending sort with the irrelevant items first among equal scores)."""
    order = np.lexsort((relevant, -scores), axis=1)
    rel = np.take_along_axis(relevant, order, axis=1)
    n_rel = rel.sum(1)
    cum = np.cumsum(rel, axis=1)
    ranks = np.arange(1, scores.shape[1] + 1)[None, :]
    prec = np.where(rel, cum / ranks, 0.0).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(n_rel > 0, prec / n_rel, np.nan)
    return ap, rel[:, 0] if rel.shape[1] else np.zeros(len(rel), dtype=bool)


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Average precision of one query's ``scores`` (D,) over items of which ``relevant`` (D,)
    are sought (the query itself left out by the caller); ties ranked pessimistically; NaN
    when nothing is relevant. The per-query term of :func:`retrieval_scores`' mAP."""
    return float(_ranked_relevance(scores[None, :], relevant[None, :])[0][0])


def _retrieval(
    rows_of: Callable[[np.ndarray], np.ndarray], codes: np.ndarray, chunk: int
) -> tuple[float, float]:
    """retrieval_scores over similarity rows given (chunk, N) at a time by ``rows_of``."""
    n = len(codes)
    aps: list[float] = []
    hits: list[float] = []
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        s = rows_of(rows)
        s[np.arange(len(rows)), rows] = -np.inf
        same = codes[None, :] == codes[rows, None]
        same[np.arange(len(rows)), rows] = False
        ap, first = _ranked_relevance(s, same)
        valid = ~np.isnan(ap)
        aps.extend(ap[valid].tolist())
        hits.extend(first[valid].astype(float).tolist())
    if not aps:
        return float("nan"), float("nan")
    return float(np.mean(aps)), float(np.mean(hits))


def embedding_retrieval(
    embeddings: np.ndarray, labels: Sequence[object], chunk: int = 1024
) -> tuple[float, float]:
    """(mAP, 1-NN accuracy) with cosine similarity between embeddings (N, D); the (N, N)
    matrix is never held: ``chunk`` query rows at a time."""
    x = _normalise(embeddings)
    return _retrieval(lambda rows: x[rows] @ x.T, _codes(labels), chunk)


def kmer_composition(
    seqs: Sequence[str], k: int = 3, alphabet: str = "ACDEFGHIKLMNPQRSTVWY"
) -> np.ndarray:
    """(N, |A|^k) k-mer frequency vectors over ``alphabet`` (other letters skipped)."""
    index = np.full(256, -1, dtype=np.int64)
    for i, ch in enumerate(alphabet):
        index[ord(ch)] = i  # case-sensitive, as before: callers pass upper-case sequences
    a = len(alphabet)
    out = np.zeros((len(seqs), a**k), dtype=np.float32)
    for row, seq in enumerate(seqs):
        counts = kmer_counts(seq, k, index, a).astype(np.float32)
        out[row] = counts / max(counts.sum(), 1.0)
    return out
