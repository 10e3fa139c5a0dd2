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
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

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


#: bytes of one-hot rows multiplied at a time in :func:`identity_counts`
_CHUNK_BYTES = 32 << 20


def identity_counts(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Identical and shared ungapped columns of every pair of aligned rows.

    ``codes`` (n, L) uint8, 0 for a gap. Returns ``(same, overlap)``, both (n, n) int64: the
    columns where two rows hold the same letter, and where neither has a gap. One product of
    one-hot rows per block of columns (every letter of the block side by side), in exact int8
    arithmetic where torch has it (:func:`_int8_products`), else in float32, whose integer
    sums are exact below 2^24.
    """
    import torch

    n, width = codes.shape
    letters = np.unique(codes[codes > 0])
    m = len(letters)
    same = torch.zeros((n, n), dtype=torch.int64)
    overlap = torch.zeros((n, n), dtype=torch.int64)
    if m == 0 or n == 0:
        return same.numpy(), overlap.numpy()
    lut = np.full(256, m, dtype=np.int64)
    lut[letters] = np.arange(m)
    exact8 = _int8_products()
    dtype = torch.int8 if exact8 else torch.float32
    per = 1 if exact8 else 4
    step = max(1, min(width, _CHUNK_BYTES // (n * (m + 1) * per)))
    for start in range(0, width, step):
        block = torch.from_numpy(lut[codes[:, start : start + step]])
        cols = block.shape[1]
        hot = torch.zeros((n, cols, m + 1), dtype=dtype)
        hot.scatter_(2, block.unsqueeze(2), 1)
        _add_gram(same, hot[:, :, :m].reshape(n, cols * m), exact8)
        _add_gram(overlap, (block < m).to(dtype), exact8)
    return same.numpy(), overlap.numpy()


#: rows per block of :func:`_add_gram`: above two blocks, only the upper triangle is multiplied
_GRAM_BLOCK = 512


def _add_gram(out: torch.Tensor, a: torch.Tensor, exact8: bool) -> None:
    """out (n, n) int64 += a @ a.T of a 0/1 matrix ``a`` (n, K), in place; blocks of rows
    above the diagonal only, each added to its mirror too, when n spans more than two blocks
    (no (n, n) temporary then)."""
    import torch

    n, k = a.shape
    if exact8 and k % 8:  # torch's CPU int8 product gives wrong sums when K is 1: pad K
        a = torch.nn.functional.pad(a, (0, 8 - k % 8))
    at = a.T.contiguous()
    if n <= 2 * _GRAM_BLOCK:
        out += _product(a, at, exact8)
        return
    starts = range(0, n, _GRAM_BLOCK)
    for i in starts:
        rows = a[i : i + _GRAM_BLOCK]
        for j in starts:
            if j >= i:
                g = _product(rows, at[:, j : j + _GRAM_BLOCK], exact8)
                out[i : i + _GRAM_BLOCK, j : j + _GRAM_BLOCK] += g
                if j > i:
                    out[j : j + _GRAM_BLOCK, i : i + _GRAM_BLOCK] += g.T


def _product(a: torch.Tensor, b: torch.Tensor, exact8: bool) -> torch.Tensor:
    """int64 a @ b of 0/1 matrices: int8 with int32 sums, or float32 (exact below 2^24)."""
    import torch

    if exact8:
        return torch._int_mm(a, b).to(torch.int64)
    return (a @ b).round().to(torch.int64)


_INT8: list[bool] = []


def _int8_products() -> bool:
    """Whether torch's int8 matrix product (int32 sums, about 4× float32's speed on one core
    of a CPU with VNNI) runs here and gives exact sums; checked once per process."""
    if not _INT8:
        import torch

        try:
            gen = torch.Generator().manual_seed(0)
            a = (torch.rand((37, 300), generator=gen) < 0.5).to(torch.int8)
            want = a.to(torch.int64) @ a.to(torch.int64).T
            ok = bool((torch._int_mm(a, a.T.contiguous()).to(torch.int64) == want).all())
        except (AttributeError, TypeError, RuntimeError, NotImplementedError):
            ok = False
        _INT8.append(ok)
    return _INT8[0]


def p_distances(rows: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mismatch proportions and shared-column counts for all pairs of aligned rows.

    Returns ``(p, overlap)``: both (n, n) float64; ``p`` is NaN where ``overlap`` is 0
    (:func:`identity_counts`).
    """
    same, shared = identity_counts(_encode(rows))
    overlap = shared.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 1.0 - same / overlap
    p[shared == 0] = np.nan
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
