"""Alignment-free evolutionary distance between DNA sequences (Mash, Ondov et al. 2016).

The Jaccard index J of two sequences' sets of canonical k-mers (a k-mer and its reverse
complement count as one; k-mers over ambiguous bases are skipped) becomes an estimate of
substitutions per site under a Poisson model of mutations: D = −(1/k) ln(2J / (1 + J)), and
D = ``max_distance`` when no k-mer is shared. Sets are exact (sorted uint64 codes, k ≤ 31),
not MinHash sketches: here distances are wanted only between a sequence and its few dozen
candidate relatives, so exact sets cost little and carry no sketch noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

AMBIGUOUS = 4


def kmer_set(codes: np.ndarray, k: int) -> np.ndarray:
    """Sorted unique canonical k-mer codes (M,) uint64 of uint8-coded DNA ``codes`` (L,)
    (A C G T = 0..3, anything else ambiguous)."""
    if not 1 <= k <= 31:
        raise ValueError("k must lie in 1..31")
    n = len(codes) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    c = codes.astype(np.uint64)
    bad = codes >= AMBIGUOUS
    fwd = np.zeros(n, dtype=np.uint64)
    rev = np.zeros(n, dtype=np.uint64)
    comp = np.where(bad, 0, 3 - np.minimum(codes, 3)).astype(np.uint64)
    for j in range(k):
        fwd = (fwd << np.uint64(2)) | (c[j : j + n] & np.uint64(3))
        rev = rev | (comp[j : j + n] << np.uint64(2 * j))
    window_bad = np.convolve(bad.astype(np.int32), np.ones(k, dtype=np.int32), "valid") > 0
    return np.unique(np.minimum(fwd, rev)[~window_bad])


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard index of two sorted unique k-mer arrays (0 when both are empty)."""
    if len(a) == 0 and len(b) == 0:
        return 0.0
    shared = len(np.intersect1d(a, b, assume_unique=True))
    return shared / (len(a) + len(b) - shared)


def mash_distance(j: float | np.ndarray, k: int, max_distance: float = 1.0) -> np.ndarray:
    """Substitutions per site from Jaccard index ``j`` (scalar or array) for k-mer size k."""
    j = np.asarray(j, dtype=np.float64)
    with np.errstate(divide="ignore"):
        d = -np.log(2 * j / (1 + j)) / k
    return np.where(j > 0, np.minimum(d, max_distance), max_distance)


def pair_distances(
    sets: Sequence[np.ndarray], pairs: np.ndarray, k: int, max_distance: float = 1.0
) -> np.ndarray:
    """(P,) Mash distances of the (P, 2) index ``pairs`` into ``sets`` (from :func:`kmer_set`
    with the same k)."""
    j = np.array([jaccard(sets[a], sets[b]) for a, b in pairs], dtype=np.float64)
    return mash_distance(j, k, max_distance)
