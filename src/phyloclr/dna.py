"""DNA as integer codes: encoding, reverse complement, batched k-mer counts and frequencies,
the reverse-complement k-mer index, and the Frequency Chaos Game Representation (FCGR).

One module for what the DNA views (:mod:`phyloclr.views.dna`), strand orientation
(:mod:`phyloclr.strand`) and clustering (:mod:`phyloclr.cluster`) count. Codes are uint8:
A=0, C=1, G=2, T=3 (U read as T), anything else 4 (:data:`AMBIGUOUS`); with this coding a
transition is ``code ^ 2`` (A↔G, C↔T), the two transversions are ``code ^ 1`` and ``code ^ 3``,
and the complement is ``3 − code``. k-mers are indexed in base 4, first base most significant;
k-mers over an ambiguous base are skipped.

FCGR corners: A = (0, 0), C = (0, 1), G = (1, 1), T = (1, 0) as (x, y). After reading a k-mer
s_1..s_k the chaos-game point lies in the cell whose x index is Σ_j xbit(s_j)·2^(j−1) and y
index Σ_j ybit(s_j)·2^(j−1) (the last base is the most significant bit), so the FCGR of order k
is the 2^k × 2^k table of k-mer counts laid out in that order, rows = y, columns = x.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from phyloclr.kmers import letter_index

AMBIGUOUS = 4
_INDEX = letter_index("ACGT", {"U": "T"})
_LUT = np.where(_INDEX >= 0, _INDEX, AMBIGUOUS).astype(np.uint8)


def encode(seq: str) -> np.ndarray:
    """(L,) uint8 codes of a DNA/RNA string (A C G T/U → 0..3, anything else 4)."""
    return _LUT[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)]


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """(L,) uint8 codes → their reverse complement (L,); ambiguous bases stay ambiguous."""
    return np.where(codes < AMBIGUOUS, 3 - codes, codes).astype(np.uint8)[::-1].copy()


def kmer_counts(batch: Sequence[np.ndarray], k: int) -> np.ndarray:
    """(B, 4^k) float32 k-mer counts of coded sequences (first base most significant);
    k-mers over an ambiguous base are skipped."""
    size = 4**k
    dtype: type[np.signedinteger[Any]] = np.int32 if len(batch) * size < 2**31 else np.int64
    keys = []
    for row, c in enumerate(batch):
        n = len(c) - k + 1
        if n <= 0:
            continue
        wide: npt.NDArray[np.signedinteger[Any]] = c.astype(dtype)  # int32: half the traffic
        key = wide[:n] & 3
        for j in range(1, k):
            key <<= 2
            key |= wide[j : j + n] & 3
        ambiguous = c >= AMBIGUOUS
        if ambiguous.any():  # windows holding an ambiguous base, by a running count
            run = np.concatenate(([0], np.cumsum(ambiguous, dtype=np.int64)))
            key = key[run[k : k + n] == run[:n]]
        key += row * size
        keys.append(key)
    flat = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    counts = np.bincount(flat, minlength=len(batch) * size)
    return counts.reshape(len(batch), size).astype(np.float32)


def frequencies(counts: np.ndarray) -> np.ndarray:
    """Rows of k-mer counts (B, 4^k) → frequencies (rows sum to 1; empty rows stay 0)."""
    return counts / np.maximum(counts.sum(1, keepdims=True), 1.0)


def kmer_frequencies(
    codes: Sequence[np.ndarray], k: int, pool: np.ndarray | None = None
) -> np.ndarray:
    """(B, 4^k) k-mer frequencies; with ``pool`` (4^k,) each k-mer's frequency plus that of
    k-mer ``pool[i]`` (e.g. its reverse complement: strand-free profiles)."""
    f = frequencies(kmer_counts(codes, k))
    return f + f[:, pool] if pool is not None else f


def kmer_standardiser(
    codes: Sequence[np.ndarray], k: int, pool: np.ndarray | None = None, chunk: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 1/s.d. (4^k,) float32 of :func:`kmer_frequencies` over ``codes``, computed
    ``chunk`` sequences at a time (an s.d. of 0 counts as 1e-6)."""
    total, total_sq = np.zeros(4**k), np.zeros(4**k)
    for start in range(0, len(codes), chunk):
        f = kmer_frequencies(codes[start : start + chunk], k, pool)
        total += f.sum(0)
        total_sq += (f.astype(np.float64) ** 2).sum(0)
    mean = total / max(len(codes), 1)
    sd = np.sqrt(np.maximum(total_sq / max(len(codes), 1) - mean**2, 0.0))
    return mean.astype(np.float32), (1.0 / np.maximum(sd, 1e-6)).astype(np.float32)


def rc_kmer_index(k: int) -> np.ndarray:
    """(4^k,) index of each k-mer's reverse complement (k-mers in base 4, first base most
    significant, as :func:`kmer_counts`)."""
    idx = np.arange(4**k)
    out = np.zeros_like(idx)
    for j in range(k):
        out |= (3 - ((idx >> (2 * j)) & 3)) << (2 * (k - 1 - j))
    return out


_BITS = {"A": (0, 0), "C": (0, 1), "G": (1, 1), "T": (1, 0)}


def cell_index(k: int) -> np.ndarray:
    """(4^k,) flat FCGR cell (y · 2^k + x) of each k-mer, k-mers indexed in base 4 (ACGT),
    first base most significant."""
    n = 4**k
    kmers = np.arange(n)
    x = np.zeros(n, dtype=np.int64)
    y = np.zeros(n, dtype=np.int64)
    for j in range(k):  # j = 0 is the first base of the k-mer
        base = (kmers // 4 ** (k - 1 - j)) % 4
        xb = np.array([_BITS[b][0] for b in "ACGT"])[base]
        yb = np.array([_BITS[b][1] for b in "ACGT"])[base]
        x += xb << j
        y += yb << j
    return y * (1 << k) + x


def fcgr(seqs: Sequence[str | np.ndarray], k: int = 6) -> np.ndarray:
    """(N, 2^k, 2^k) float32 k-mer counts in chaos-game layout, of strings or codes."""
    side = 1 << k
    codes = [encode(s) if isinstance(s, str) else s for s in seqs]
    by_cell = np.argsort(cell_index(k))  # FCGR cell → k-mer index
    return kmer_counts(codes, k)[:, by_cell].reshape(len(codes), side, side)


def normalise(images: np.ndarray) -> np.ndarray:
    """Per image: min-max to [0, 1], then z-score (as CGRclust)."""
    x = images.reshape(len(images), -1).astype(np.float32)
    lo, hi = x.min(1, keepdims=True), x.max(1, keepdims=True)
    x = (x - lo) / np.maximum(hi - lo, 1e-12)
    x = (x - x.mean(1, keepdims=True)) / np.maximum(x.std(1, keepdims=True), 1e-12)
    return x.reshape(images.shape)
