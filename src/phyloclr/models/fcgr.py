"""The CGRclust-style 2-D CNN over FCGR images (the images: :func:`phyloclr.dna.fcgr`)."""

from __future__ import annotations

import torch
from torch import nn


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
