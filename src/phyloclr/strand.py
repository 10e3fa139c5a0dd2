"""Strand orientation of DNA sequences against their own relatives (no reference needed).

Public collections hold some sequences on the opposite strand (a mitogenome assembled as a
chromosome record, a segment submitted reverse-complemented). Strand-specific k-mer profiles
then put such a sequence far from its relatives, and every alignment-free method misplaces it.
:func:`orient_strands` finds them in two steps:

1. relatives by strand-free composition: each k-mer is pooled with its reverse complement
   (canonical k-mers), standardised, reduced by PCA, and each sequence's ``neighbours``
   nearest others by cosine distance are taken; these are the same whichever strand any
   sequence is on;
2. a vote of those relatives: with the strand-specific profile standardised over the set, the
   sequence is flipped when its reverse complement's mean cosine similarity to the relatives'
   profiles exceeds its own by more than ``margin``.

Sequences at ease on both strands (similarity gains below the margin) are left as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from phyloclr import dna
from phyloclr.dna import rc_kmer_index, reverse_complement


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def orient_strands(
    codes: Sequence[np.ndarray], k: int = 6, neighbours: int = 5, margin: float = 0.25,
    dims: int = 64, chunk: int = 512,
) -> np.ndarray:  # fmt: skip
    """(N,) bool: which coded sequences to reverse-complement (see the module docstring).

    Memory: the (N, dims) canonical PCA space, the PCA's fitting sample (≤ 20,000 × 4^k
    float32) and O(chunk · neighbours · 4^k) per chunk; fewer than 3 sequences are never
    flipped."""
    from phyloclr.cluster.space import kmer_neighbours, pca_space

    n = len(codes)
    flip = np.zeros(n, dtype=bool)
    if n < 3 or neighbours < 1:
        return flip
    pool = rc_kmer_index(k)
    c_mean, c_scale = dna.kmer_standardiser(codes, k, pool, chunk)

    def canonical(rows: Sequence[np.ndarray]) -> np.ndarray:  # (B, 4^k) strand-free
        return (dna.kmer_frequencies(rows, k, pool) - c_mean) * c_scale

    space = pca_space(codes, canonical, dims, chunk)
    relatives = kmer_neighbours(space, neighbours)  # (N, m), strand-free
    mean, scale = dna.kmer_standardiser(codes, k, None, chunk)

    def profile(rows: Sequence[np.ndarray]) -> np.ndarray:  # (B, 4^k) strand-specific, unit
        return _unit((dna.kmer_frequencies(rows, k) - mean) * scale)

    for s in range(0, n, chunk):
        rows = range(s, min(s + chunk, n))
        own = profile([codes[i] for i in rows])  # (B, 4^k)
        rc = profile([reverse_complement(codes[i]) for i in rows])
        rel = relatives[s : s + len(rows)]  # (B, m)
        nb = profile([codes[j] for j in rel.ravel()])
        nb = nb.reshape(len(rows), rel.shape[1], -1)  # (B, m, 4^k)
        gain = np.einsum("bd,bmd->bm", rc, nb).mean(1) - np.einsum("bd,bmd->bm", own, nb).mean(1)
        flip[s : s + len(rows)] = gain > margin
    return flip
