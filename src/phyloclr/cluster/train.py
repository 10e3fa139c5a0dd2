"""One TCL run: the model (backbone, instance head, cluster heads) trained on two views of each
sequence (a weak mutation of it, a strong mutation of one of its relatives), and the number of
optimiser steps a run takes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from phyloclr.cluster.config import ClusterConfig
from phyloclr.cluster.space import Featuriser
from phyloclr.models.critics import CosineCritic
from phyloclr.models.fcgr import FCGRNet
from phyloclr.models.heads import ProjectionHead
from phyloclr.objectives.contrastive import InfoNCE
from phyloclr.objectives.tcl import ClusterLoss
from phyloclr.progress import Progress
from phyloclr.views import dna


class TCLModel(nn.Module):
    """Backbone → instance head (NT-Xent) and one cluster head per entry of ``sizes``
    (softmax over that many clusters)."""

    def __init__(self, cfg: ClusterConfig, sizes: Sequence[int]):
        super().__init__()
        self.backbone: nn.Module
        if cfg.input == "fcgr":
            self.backbone = FCGRNet(cfg.k, cfg.fcgr_channels, 512)
        else:
            self.backbone = nn.Sequential(nn.Linear(4**cfg.k, 512), nn.ReLU(), nn.Linear(512, 512))
        self.instance = ProjectionHead(512, 512, 128)
        self.clusters = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, c))
            for c in sizes
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """x (B, ...) features → (embedding (B, 512), instance z (B, 128), [P (B, C_h)] per
        head)."""
        h = self.backbone(x)
        return h, self.instance(h), [torch.softmax(c(h), dim=1) for c in self.clusters]


def train_run(
    codes: list[np.ndarray], feats: Featuriser, relatives: np.ndarray | None, cfg: ClusterConfig,
    sizes: Sequence[int], seed: int, device: torch.device, progress: Progress | None, run: int,
) -> tuple[list[np.ndarray], np.ndarray]:  # fmt: skip
    """One TCL run → (per head (N, C_h) probabilities of the unmutated sequences, (N, 512))."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = TCLModel(cfg, sizes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    instance = InfoNCE(CosineCritic(), cfg.tau_instance)
    cluster = ClusterLoss(cfg.tau_cluster, cfg.cluster_entropy)
    n = len(codes)
    batch = min(cfg.batch_size, n)
    model.train()
    steps = run_steps(cfg, n)
    for step in range(steps):
        idx = rng.choice(n, batch, replace=False)
        partner = idx
        if relatives is not None:
            partner = relatives[idx, rng.integers(0, relatives.shape[1], batch)]
        v1 = feats([dna.mutate(codes[i], cfg.weak, rng) for i in idx]).to(device)
        v2 = feats([dna.mutate(codes[i], cfg.strong, rng) for i in partner]).to(device)
        _, z1, p1 = model(v1)
        _, z2, p2 = model(v2)
        loss_c = sum(cluster(a, b) for a, b in zip(p1, p2, strict=True)) / len(p1)
        loss = cfg.weight_instance * instance(z1, z2).loss + cfg.weight_cluster * loss_c
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress(f"run {run + 1}/{cfg.runs}", step + 1, steps)
    model.eval()
    embs: list[np.ndarray] = []
    probs: list[list[np.ndarray]] = [[] for _ in sizes]
    with torch.no_grad():
        for start in range(0, n, 512):
            h, _, ps = model(feats(codes[start : start + 512]).to(device))
            embs.append(h.cpu().numpy())
            for head, p in zip(probs, ps, strict=True):
                head.append(p.cpu().numpy())
    return [np.concatenate(p) for p in probs], np.concatenate(embs)


def auto_steps(n: int, batch: int, epochs: float = 20.0, least: int = 60, most: int = 300) -> int:
    """Optimiser steps per run when ``steps`` is 0: ``epochs`` passes over the ``n``
    sequences in batches of ``batch``, at least ``least`` and at most ``most`` steps, so that
    the cost grows with the data (the fixed 300 steps before cost as much for 113 sequences as
    for 5,000)."""
    return int(min(most, max(least, np.ceil(epochs * n / max(1, batch)))))


def run_steps(cfg: ClusterConfig, n: int) -> int:
    """Optimiser steps per run for ``n`` sequences: ``cfg.steps``, or when 0, with K given
    :func:`auto_steps` and when K is chosen 300, the setting the choice of K was measured with:
    with fewer steps the runs' partitions agree less and the smallest stable K comes too early
    (Influenza-A, seed 0: K = 3 at 75 steps, the true K = 5 at 300; RESULTS.md)."""
    if cfg.steps:
        return cfg.steps
    return auto_steps(n, min(cfg.batch_size, n)) if cfg.n_clusters else 300
