"""Twin Contrastive Learning's cluster-level loss, written from the equations.

Given soft cluster assignments of the same N samples under two views, P1, P2 (N, C) with rows
summing to 1, the C columns of each are "cluster representations". Column i of P1 and column i
of P2 are a positive pair; the other 2C − 2 columns are negatives: this is NT-Xent over the 2C
columns with a cosine critic and temperature τ_C. Minus the entropy of the cluster marginals
keeps clusters from collapsing into one:

    L = NT-Xent(P1ᵀ, P2ᵀ; τ_C) − [H(mean_t P1[t]) + H(mean_t P2[t])]

At uniform assignments (every entry 1/C) every column is the same vector, so the NT-Xent term is
log(2C − 1) and each entropy log C: L = log(2C − 1) − 2 log C.
"""

from __future__ import annotations

import torch
from torch import nn

from phyloclr.models.critics import CosineCritic
from phyloclr.objectives.contrastive import InfoNCE


def marginal_entropy(p: torch.Tensor) -> torch.Tensor:
    """H of the cluster marginal: p (N, C) → scalar, in nats."""
    m = p.sum(0) / p.sum()
    return -(m * torch.log(m.clamp_min(1e-12))).sum()


class ClusterLoss(nn.Module):
    """TCL / Contrastive Clustering cluster-level loss; ``entropy`` weighs the balance term."""

    def __init__(self, temperature: float = 1.0, entropy: float = 1.0):
        super().__init__()
        if entropy < 0:
            raise ValueError("entropy weight must be ≥ 0")
        self.contrast = InfoNCE(CosineCritic(), temperature)
        self.entropy = entropy

    def forward(self, p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
        if p1.shape != p2.shape or p1.dim() != 2 or p1.shape[1] < 2:
            raise ValueError(f"p1 and p2 must both be (N, C) with C ≥ 2, got {tuple(p1.shape)}")
        contrast = self.contrast(p1.T, p2.T).loss
        return contrast - self.entropy * (marginal_entropy(p1) + marginal_entropy(p2))
