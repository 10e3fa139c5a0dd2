"""Frequency Chaos Game Representation (FCGR) of DNA and the CGRclust-style 2-D CNN.

Corners: A = (0, 0), C = (0, 1), G = (1, 1), T = (1, 0) as (x, y). After reading a k-mer
s_1..s_k the chaos-game point lies in the cell whose x index is Σ_j xbit(s_j)·2^(j−1) and y
index Σ_j ybit(s_j)·2^(j−1) (the last base is the most significant bit), so the FCGR of order k
is the 2^k × 2^k table of k-mer counts laid out in that order, rows = y, columns = x. k-mers
holding anything but A/C/G/T (N, IUPAC codes) are skipped and can be counted by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from phyloclr.kmers import kmer_counts, letter_index

_BITS = {"A": (0, 0), "C": (0, 1), "G": (1, 1), "T": (1, 0)}
_CODE = letter_index("ACGT", {"U": "T"})


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


def fcgr(seqs: Sequence[str], k: int = 6) -> np.ndarray:
    """(N, 2^k, 2^k) float32 k-mer counts in chaos-game layout."""
    side = 1 << k
    cells = cell_index(k)
    out = np.zeros((len(seqs), side * side), dtype=np.float32)
    for row, seq in enumerate(seqs):
        out[row, cells] = kmer_counts(seq, k, _CODE, 4)
    return out.reshape(len(seqs), side, side)


def normalise(images: np.ndarray) -> np.ndarray:
    """Per image: min-max to [0, 1], then z-score (as CGRclust)."""
    x = images.reshape(len(images), -1).astype(np.float32)
    lo, hi = x.min(1, keepdims=True), x.max(1, keepdims=True)
    x = (x - lo) / np.maximum(hi - lo, 1e-12)
    x = (x - x.mean(1, keepdims=True)) / np.maximum(x.std(1, keepdims=True), 1e-12)
    return x.reshape(images.shape)


class FCGRNet(nn.Module):
    """CGRclust's backbone: two 7×7 stride-2 convolutions (128 channels), max-pool, linear.

    (B, 1, 2^k, 2^k) → (B, out_dim).
    """

    def __init__(self, k: int = 6, channels: int = 128, out_dim: int = 512):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 7, stride=2, padding=3),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 7, stride=2, padding=3),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = (1 << k) // 8
        self.fc = nn.Linear(channels * max(side, 1) ** 2, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))
