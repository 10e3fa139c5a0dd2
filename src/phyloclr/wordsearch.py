"""Exact cosine search over spaced-word spectra: a realignment prefilter that keeps what a dense
embedding blurs.

Every database protein becomes one sparse vector per spaced word (``words``; by default the
five Murphy-10 words of the strongest k-mer row of the benchmarks,
:data:`phyloclr.kmers.SEARCH_WORDS`):
log(1 + count) × idf, unit-normed, less the database's mean vector (idf and mean fitted on the
database itself, as the k-mer rows of the benchmarks are on their corpus). A query's score
against a protein is the mean over the words of their centred cosines, computed exactly from
an inverted index of k-mer postings. A count sketch of the same vectors (the default model's
embedding) adds noise of about ±1/√width to every cosine, which at the twilight buries true
homologs under unrelated proteins as the database grows (benchmarks/RESULTS.md, "Search").
Queries are scored a block at a time: no N × N matrix is held.

Memory: the postings, about 8 bytes per residue per word, plus a block of (B, N) scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from phyloclr.kmers import (
    SEARCH_WORDS,
    inverse_document_frequency,
    log_tfidf,
    parse_spectrum,
    spectrum_counts,
)
from phyloclr.neighbours import unit_rows
from phyloclr.progress import Progress


@dataclass
class _Word:
    alphabet: str
    word: int | str
    idf: np.ndarray  # (V,)
    mean: np.ndarray  # (V,) the database's mean unit tf-idf vector

    def query(self, seqs: Sequence[str]) -> tuple[Any, np.ndarray, np.ndarray]:
        """(Q, V) CSR unit tf-idf vectors of ``seqs`` with the database's idf; their · mean and
        |· − mean| (Q,)."""
        x = log_tfidf(spectrum_counts(seqs, self.word, self.alphabet), self.idf)
        dot = np.asarray(x @ self.mean, dtype=np.float64).ravel()
        return x, dot, _centred_norm(x, dot, self.mean)


def _centred_norm(x: Any, dot_mean: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """|row − mean| of unit (or empty) sparse rows, from row · mean."""
    sq = np.asarray(x.multiply(x).sum(1), dtype=np.float64).ravel()
    return np.sqrt(np.maximum(sq - 2.0 * dot_mean + float(mean @ mean), 1e-12))


class WordIndex:
    """Centred spaced-word vectors of a database, searched exactly by their mean cosine.

    The mean centred cosine of query q and protein d over the W words is
    Σ_w (x_qw·x_dw − x_qw·m_w − x_dw·m_w + m_w·m_w) / (W |x_qw − m_w| |x_dw − m_w|): the first
    terms come from one sparse product of the stacked query vectors with the postings (each
    k-mer's proteins, with their weights over |x_dw − m_w|); the rest is a rank-2W product."""

    def __init__(self, seqs: Sequence[str], words: str = SEARCH_WORDS):
        """Fit the idf and mean on ``seqs`` (the database) and index their vectors; ``words``
        is a spectrum list as ``model.spectrum`` ('murphy10:1111,murphy10:11011')."""
        from scipy import sparse

        self.n = len(seqs)
        self.words: list[_Word] = []
        tables, right = [], []
        for alphabet, word in parse_spectrum(words):
            counts = spectrum_counts(seqs, word, alphabet)
            idf = inverse_document_frequency(counts)
            x = log_tfidf(counts, idf)
            mean = np.asarray(x.mean(0), dtype=np.float64).ravel()
            dot = np.asarray(x @ mean, dtype=np.float64).ravel()
            inv = 1.0 / _centred_norm(x, dot, mean)
            tables.append((sparse.diags(inv) @ x).T.tocsr().astype(np.float32))  # (V, N)
            right += [inv, -dot * inv]
            self.words.append(_Word(alphabet, word, idf, mean))
        # (Σ V, N): each k-mer's postings, over |x_dw − m_w|; float32 halves the memory
        self.table = sparse.vstack(tables, format="csr")
        self.right = np.stack(right, axis=1).T.astype(np.float32)  # (2W, N)

    def _queries(self, seqs: Sequence[str]) -> tuple[Any, np.ndarray]:
        """Stacked query vectors over W |x − m| (Q, Σ V) CSR, and the left factor (Q, 2W) of
        the centring terms."""
        from scipy import sparse

        parts, left = [], []
        k = len(self.words)
        for w in self.words:
            x, dot, norm = w.query(seqs)
            scale = 1.0 / (k * norm)
            parts.append(sparse.diags(scale) @ x)
            left += [(float(w.mean @ w.mean) - dot) * scale, scale]
        return sparse.hstack(parts).tocsr().astype(np.float32), np.stack(left, axis=1)

    def scores(self, seqs: Sequence[str]) -> np.ndarray:
        """(Q, N) float32 mean centred cosine of each query with every database protein."""
        x, left = self._queries(seqs)
        return self._block(x, left, np.arange(len(seqs)))

    def _block(self, x: Any, left: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(B, N) scores of the query ``rows``: their shared k-mers by one sparse product with
        the postings, plus the centring terms."""
        shared = (x[rows] @ self.table).toarray()
        shared += left[rows].astype(np.float32) @ self.right
        return shared

    def top(
        self, seqs: Sequence[str], depth: int, max_cells: int = 1 << 24, threads: int = 0,
        progress: Progress | None = None,
        learned: tuple[np.ndarray, np.ndarray] | None = None, learned_weight: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The ``depth`` best database rows of each query: (scores (Q, d), index (Q, d)),
        d = min(depth, N), best first (ties by row); ``max_cells`` bounds a block of queries'
        (B, N) scores; blocks run on ``threads`` threads (0: every core). With ``learned``
        (queries (Q, E), database (N, E): a trained encoder's embeddings), the score is
        (1 − ``learned_weight``) × the words' + ``learned_weight`` × their cosine."""
        from concurrent.futures import ThreadPoolExecutor

        from phyloclr.families.align import available_threads

        d = min(depth, self.n)
        q = len(seqs)
        scores = np.zeros((q, d), dtype=np.float32)
        index = np.zeros((q, d), dtype=np.int64)
        if d == 0 or q == 0:
            return scores, index
        x, left = self._queries(seqs)
        step = max(1, max_cells // self.n)
        if learned is not None and learned_weight > 0:
            qe, de = (unit_rows(e) * np.float32(np.sqrt(learned_weight)) for e in learned)
            words_weight = np.float32(1.0 - learned_weight)

        def best(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            s = self._block(x, left, rows)
            if learned is not None and learned_weight > 0:
                s = words_weight * s + qe[rows] @ de.T
            if d < self.n:
                cand = np.argpartition(-s, d - 1, axis=1)[:, :d]
            else:
                cand = np.tile(np.arange(self.n), (len(rows), 1))
            cs = np.take_along_axis(s, cand, axis=1)
            order = np.lexsort((cand, -cs), axis=1)
            return rows, np.take_along_axis(cand, order, axis=1), np.take_along_axis(cs, order, 1)

        blocks = [np.arange(a, min(q, a + step)) for a in range(0, q, step)]
        with ThreadPoolExecutor(available_threads(threads)) as pool:  # scipy frees the GIL
            for rows, idx, sc in pool.map(best, blocks):
                index[rows], scores[rows] = idx, sc
                if progress is not None:
                    progress("word search", int(rows[-1]) + 1, q)
        return scores, index


__all__ = ["WordIndex"]
