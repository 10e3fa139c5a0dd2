"""Contrastive losses over two views: z1, z2 (N, P), row i of z1 and row i of z2 a positive pair.

``groups`` (N,) optionally gives each pair's family: pairs from the same family in a batch are
not used as each other's negatives (masked out) by InfoNCE and NWJ; SupCon uses them as positives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from phyloclr.models.critics import Critic


@dataclass
class LossOutput:
    """``loss`` (scalar, differentiable); ``mi_bound``: the estimator's lower bound on I(z1; z2)
    in nats (InfoNCE: mean over anchors of log(#candidates) − loss); ``candidates``: mean number
    of candidates (positive + negatives) per anchor."""

    loss: torch.Tensor
    mi_bound: float
    candidates: float


def _false_negative_mask(groups: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
    """(2N, 2N) True where a pair must not serve as a negative: itself and same-family others."""
    eye = torch.eye(2 * n, dtype=torch.bool, device=device)
    if groups is None:
        return eye
    g = torch.cat([groups, groups]).to(device)
    same = g.unsqueeze(0) == g.unsqueeze(1)
    idx = torch.arange(2 * n, device=device)
    pos = torch.cat([idx[n:], idx[:n]])
    same[idx, pos] = False  # the positive stays
    return same | eye


class CriticLoss(nn.Module):
    """A loss over critic scores f(z1, z2) / τ; validates τ > 0."""

    default_temperature = 0.1

    def __init__(self, critic: Critic, temperature: float | None = None):
        super().__init__()
        temperature = self.default_temperature if temperature is None else temperature
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.critic = critic
        self.temperature = temperature


class InfoNCE(CriticLoss):
    """NT-Xent (SimCLR): each of the 2N views must pick its partner among the other 2N−1.

    loss = mean_i −log( exp(f(z_i, z_p(i))/τ) / Σ_{j ≠ i, j not masked} exp(f(z_i, z_j)/τ) )

    With uniform scores the loss is log(2N−1); the MI lower bound is log(#candidates) − loss.
    """

    def forward(
        self, z1: torch.Tensor, z2: torch.Tensor, groups: torch.Tensor | None = None
    ) -> LossOutput:
        if z1.shape != z2.shape or z1.dim() != 2:
            raise ValueError(
                f"z1 and z2 must both be (N, P), got {tuple(z1.shape)}, {tuple(z2.shape)}"
            )
        n = z1.shape[0]
        if n < 2:
            raise ValueError("InfoNCE needs at least 2 pairs")
        z = torch.cat([z1, z2]).float()
        scores = self.critic(z, z) / self.temperature
        masked = _false_negative_mask(groups, n, z.device)
        scores = scores.masked_fill(masked, float("-inf"))
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        per_row = F.cross_entropy(scores, target, reduction="none")
        counts = (~masked).sum(1).float()
        bound = (counts.log() - per_row.detach()).mean().item()
        return LossOutput(per_row.mean(), bound, counts.mean().item())


class NWJ(CriticLoss):
    """The NWJ (f-divergence) bound: I ≥ E_joint[f] − e⁻¹ E_marginal[e^f]; loss = −bound.

    Scores f = critic(z1, z2)/τ; the joint is the diagonal, the marginal every off-diagonal
    pair not masked as a same-family pair.
    """

    default_temperature = 1.0

    def forward(
        self, z1: torch.Tensor, z2: torch.Tensor, groups: torch.Tensor | None = None
    ) -> LossOutput:
        n = z1.shape[0]
        if n < 2:
            raise ValueError("NWJ needs at least 2 pairs")
        f = self.critic(z1.float(), z2.float()) / self.temperature
        joint = f.diagonal().mean()
        off = ~torch.eye(n, dtype=torch.bool, device=f.device)
        if groups is not None:
            g = groups.to(f.device)
            off &= g.unsqueeze(0) != g.unsqueeze(1)
        marg = f[off]
        log_mean_exp = torch.logsumexp(marg, 0) - math.log(max(marg.numel(), 1))
        bound = joint - torch.exp(log_mean_exp - 1.0)
        return LossOutput(-bound, bound.item(), float(off.sum(1).float().mean().item() + 1))


class SupCon(CriticLoss):
    """Supervised contrastive loss (Khosla et al. 2020, L_out): every other view with the same
    label is a positive. Without labels it reduces to NT-Xent (the partner view is the only
    positive)."""

    def forward(
        self, z1: torch.Tensor, z2: torch.Tensor, groups: torch.Tensor | None = None
    ) -> LossOutput:
        n = z1.shape[0]
        z = torch.cat([z1, z2]).float()
        labels = torch.cat([groups, groups]) if groups is not None else torch.arange(n).repeat(2)
        labels = labels.to(z.device)
        eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        scores = (self.critic(z, z) / self.temperature).masked_fill(eye, float("-inf"))
        log_prob = scores - torch.logsumexp(scores, dim=1, keepdim=True)
        positive = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~eye
        n_pos = positive.sum(1).clamp_min(1)
        per_row = -(log_prob.masked_fill(~positive, 0.0).sum(1) / n_pos)
        bound = (math.log(2 * n - 1) - per_row.detach()).mean().item()
        return LossOutput(per_row.mean(), bound, float(2 * n - 1))


OBJECTIVES: dict[str, type[CriticLoss]] = {"infonce": InfoNCE, "nwj": NWJ, "supcon": SupCon}


def build_objective(name: str, critic: Critic, temperature: float) -> CriticLoss:
    try:
        cls = OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown objective {name!r}; choose from {sorted(OBJECTIVES)}") from None
    return cls(critic, temperature)


def geometry_loss(h: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the cosines of embeddings ``h`` (B, D) and
    ``reference`` (B, B) cosines, over the B(B-1) off-diagonal pairs: a scalar."""
    e = F.normalize(h.float(), dim=1)
    off = ~torch.eye(len(e), dtype=torch.bool, device=e.device)
    return ((e @ e.T - reference.to(e.dtype))[off] ** 2).mean()


def alignment(z1: torch.Tensor, z2: torch.Tensor) -> float:
    """Wang & Isola alignment: E‖x̂ − ŷ‖² over positive pairs of unit-normalised rows."""
    a, b = F.normalize(z1.float(), dim=-1), F.normalize(z2.float(), dim=-1)
    return (a - b).pow(2).sum(-1).mean().item()


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """Wang & Isola uniformity: log E exp(−t‖x̂ − ŷ‖²) over distinct pairs (lower = more uniform)."""
    x = F.normalize(z.float(), dim=-1)
    sq = torch.pdist(x).pow(2)
    return (torch.logsumexp(-t * sq, 0) - math.log(max(sq.numel(), 1))).item()
