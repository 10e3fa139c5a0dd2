"""Heads on top of the pooled embedding: the projection head used by the loss only."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """2-layer MLP (B, D) → (B, P), as in SimCLR; discarded after pretraining. ``out`` = 0:
    no head, the loss sees the embedding itself (B, D)."""

    def __init__(self, dim: int, hidden: int, out: int):
        super().__init__()
        self.net: nn.Module = (
            nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out))
            if out
            else nn.Identity()
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)
