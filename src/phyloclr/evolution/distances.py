"""Pairwise evolutionary distances from a multiple sequence alignment, all pairs at once.

p is the proportion of differing residues over the columns where neither sequence has a gap.
Corrections (d as a function of p):

- ``p``:       d = p
- ``jc69``:    Jukes-Cantor for nucleotides, d = -3/4 ln(1 - 4/3 p)
- ``poisson``: protein Poisson correction, d = -ln(1 - p)
- ``kimura``:  Kimura's protein distance, d = -ln(1 - p - 0.2 p²)

A pair beyond the correction's range (saturated) or with no shared ungapped column gets
``max_distance``; the number of such pairs is returned so callers can report it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DISTANCE_MODELS = ("auto", "p", "jc69", "poisson", "kimura")


@dataclass(frozen=True)
class MSADistances:
    """``matrix``: (n, n) float64 distances; ``saturated``: pairs set to ``max_distance``."""

    matrix: np.ndarray
    model: str
    saturated: int
    no_overlap: int


def _encode(rows: Sequence[str]) -> np.ndarray:
    """(n, L) uint8 codes of the rows; gaps ('-', '.') become 0."""
    if not rows:
        return np.zeros((0, 0), dtype=np.uint8)
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise ValueError("alignment rows differ in length")
    buf = np.frombuffer("".join(rows).upper().encode("ascii", "replace"), dtype=np.uint8)
    codes = buf.reshape(len(rows), width).copy()
    codes[(codes == ord("-")) | (codes == ord("."))] = 0
    return codes


def p_distances(rows: Sequence[str], chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Mismatch proportions and shared-column counts for all pairs of aligned rows.

    Returns ``(p, overlap)``: both (n, n); ``p`` is NaN where ``overlap`` is 0. Computed with
    one-hot matrix products, chunked over columns to bound memory.
    """
    codes = _encode(rows)
    n, width = codes.shape
    letters = np.unique(codes[codes > 0])
    overlap = np.zeros((n, n))
    same = np.zeros((n, n))
    for start in range(0, width, chunk):
        block = codes[:, start : start + chunk]
        present = (block > 0).astype(np.float32)
        overlap += present @ present.T
        for letter in letters:
            hot = (block == letter).astype(np.float32)
            if hot.any():
                same += hot @ hot.T
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 1.0 - same / overlap
    p[overlap == 0] = np.nan
    np.fill_diagonal(p, 0.0)
    return p, overlap


def correct(p: np.ndarray, model: str) -> np.ndarray:
    """Apply a distance correction to mismatch proportions (NaN where undefined or saturated)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if model == "p":
            return p.copy()
        if model == "jc69":
            arg = 1.0 - 4.0 / 3.0 * p
        elif model == "poisson":
            arg = 1.0 - p
        elif model == "kimura":
            arg = 1.0 - p - 0.2 * p * p
        else:
            raise ValueError(f"unknown distance model {model!r}; choose from {DISTANCE_MODELS}")
        scale = 0.75 if model == "jc69" else 1.0
        d = -scale * np.log(np.where(arg > 0, arg, np.nan))
    return d + 0.0  # no negative zeros


def msa_distances(
    rows: Sequence[str], alphabet: str, model: str = "auto", max_distance: float = 5.0
) -> MSADistances:
    """Corrected distances between all rows of an alignment.

    ``model='auto'`` picks ``kimura`` for protein and ``jc69`` for nucleotides.
    """
    if model == "auto":
        model = "jc69" if alphabet == "dna" else "kimura"
    if model not in DISTANCE_MODELS:
        raise ValueError(f"unknown distance model {model!r}; choose from {DISTANCE_MODELS}")
    p, overlap = p_distances(rows)
    d = correct(p, model)
    no_overlap = int(np.triu(overlap == 0, 1).sum())
    bad = ~np.isfinite(d) | (d > max_distance)
    saturated = int(np.triu(bad, 1).sum()) - no_overlap
    d[bad] = max_distance
    np.fill_diagonal(d, 0.0)
    return MSADistances(matrix=d, model=model, saturated=saturated, no_overlap=no_overlap)
