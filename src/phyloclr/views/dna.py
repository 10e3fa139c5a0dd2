"""Mutation views of DNA on integer-coded sequences, and batched k-mer counts.

The string views of :mod:`phyloclr.views.mutation` cost about 1 ms per 16 kbp genome; these
work on uint8 codes (A=0, C=1, G=2, T=3, U read as T, anything else 4) and are several times
faster, which matters when every step redraws two views of hundreds of mitogenomes. With this
coding a transition is ``code ^ 2`` (A↔G, C↔T), the two transversions are ``code ^ 1`` and
``code ^ 3``, and the complement is ``3 − code``.

A view applies, in order: a random contiguous fragment keeping a fraction in
[``crop_min``, 1] (first, so that the other steps only touch what is kept; per-site events are
independent, so the distribution is that of cropping last), transitions at ``transition_rate``
and transversions at ``transversion_rate`` per base (decided on the original base, ambiguous
bases untouched), indels at ``indel_rate`` per position (half deletions, half insertions of
random bases, lengths 1–3), masking at ``mask_rate`` (the base becomes ambiguous, so k-mers
over it are skipped) and the reverse complement with probability ``reverse_complement``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from phyloclr.kmers import letter_index
from phyloclr.views.mutation import MutationConfig

AMBIGUOUS = 4
_INDEX = letter_index("ACGT", {"U": "T"})
_LUT = np.where(_INDEX >= 0, _INDEX, AMBIGUOUS).astype(np.uint8)


def encode(seq: str) -> np.ndarray:
    """(L,) uint8 codes of a DNA/RNA string (A C G T/U → 0..3, anything else 4)."""
    return _LUT[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)]


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """(L,) uint8 codes → their reverse complement (L,); ambiguous bases stay ambiguous."""
    return np.where(codes < AMBIGUOUS, 3 - codes, codes).astype(np.uint8)[::-1].copy()


def mutate(codes: np.ndarray, cfg: MutationConfig, rng: np.random.Generator) -> np.ndarray:
    """A mutated copy of ``codes`` (L,) → (L',) uint8; see the module docstring."""
    c = codes
    n = len(c)
    if cfg.crop_min < 1.0 and n > 1:
        keep = max(1, round(n * rng.uniform(cfg.crop_min, 1.0)))
        start = int(rng.integers(0, n - keep + 1))
        c = c[start : start + keep]
        n = keep
    c = c.copy()
    if cfg.transition_rate + cfg.transversion_rate > 0:
        sites = np.flatnonzero(rng.random(n) < cfg.transition_rate + cfg.transversion_rate)
        sites = sites[c[sites] < AMBIGUOUS]
        is_ti = rng.random(len(sites)) * (cfg.transition_rate + cfg.transversion_rate)
        flip = np.where(
            is_ti < cfg.transition_rate,
            np.uint8(2),
            np.where(rng.random(len(sites)) < 0.5, np.uint8(1), np.uint8(3)),
        ).astype(np.uint8)
        c[sites] ^= flip
    if cfg.indel_rate > 0 and n > 0:
        events = np.flatnonzero(rng.random(n) < cfg.indel_rate)
        sizes = rng.integers(1, 4, len(events))
        deletion = rng.random(len(events)) < 0.5
        drop = np.zeros(n, dtype=bool)
        for site, size in zip(events[deletion].tolist(), sizes[deletion].tolist(), strict=True):
            drop[site : site + size] = True
        at = np.repeat(events[~deletion], sizes[~deletion])
        inserted = rng.integers(0, 4, len(at)).astype(np.uint8)
        c = np.insert(c, at, inserted)
        keep_mask = np.insert(~drop, at, True)
        c = c[keep_mask]
    if cfg.mask_rate > 0:
        c[rng.random(len(c)) < cfg.mask_rate] = AMBIGUOUS
    if cfg.reverse_complement > 0 and rng.random() < cfg.reverse_complement:
        c = reverse_complement(c)
    return c


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
