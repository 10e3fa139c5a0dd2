"""Critics f(x, y): score every pair of two sets of projections, (N, P) × (M, P) → (N, M).

- ``cosine``:    cos(x, y) (the SimCLR critic; scaled by 1/τ in the loss)
- ``dot``:       xᵀy
- ``bilinear``:  xᵀ W y, W initialised to the identity
- ``separable``: g(x)ᵀ h(y) with two MLPs
- ``concat``:    MLP([x; y]) on every pair, the high-capacity critic (O(N·M) MLP calls)
- ``rbf``:       -‖x̂ - ŷ‖² / (2 ℓ²) on unit-normalised x̂, ŷ with a learned length-scale ℓ
                 (a Gaussian "nearby in latent space" prior, as in "InfoNCE is a VAE")
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Critic(nn.Module):
    """Pairwise scores (N, M) for x (N, P) and y (M, P)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class CosineCritic(Critic):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T


class DotCritic(Critic):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x @ y.T


class BilinearCritic(Critic):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(dim))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x @ self.weight @ y.T


def _mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.GELU(), nn.Linear(hidden, dim_out))


class SeparableCritic(Critic):
    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.g = _mlp(dim, hidden, dim)
        self.h = _mlp(dim, hidden, dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.g(x) @ self.h(y).T


class ConcatCritic(Critic):
    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.net = _mlp(2 * dim, hidden, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n, m = x.shape[0], y.shape[0]
        pairs = torch.cat(
            [x.unsqueeze(1).expand(n, m, -1), y.unsqueeze(0).expand(n, m, -1)], dim=-1
        )
        return self.net(pairs).squeeze(-1)


class RBFCritic(Critic):
    def __init__(self, init_length_scale: float = 0.5):
        super().__init__()
        self.log_length = nn.Parameter(torch.tensor(float(init_length_scale)).log())

    @property
    def length_scale(self) -> torch.Tensor:
        return self.log_length.exp()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
        sq = (2.0 - 2.0 * (x @ y.T)).clamp_min(0.0)  # ‖x - y‖² for unit vectors
        return -sq / (2.0 * self.length_scale**2)


CRITICS = ("cosine", "dot", "bilinear", "separable", "concat", "rbf")


def build_critic(name: str, dim: int) -> Critic:
    """A critic by name for projections of width ``dim``."""
    if name == "cosine":
        return CosineCritic()
    if name == "dot":
        return DotCritic()
    if name == "bilinear":
        return BilinearCritic(dim)
    if name == "separable":
        return SeparableCritic(dim)
    if name == "concat":
        return ConcatCritic(dim)
    if name == "rbf":
        return RBFCritic()
    raise ValueError(f"unknown critic {name!r}; choose from {CRITICS}")
