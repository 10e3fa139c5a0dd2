"""Unsupervised clustering of DNA sequences with Twin Contrastive Learning (TCL).

A backbone (FCGR image + CNN, or k-mer frequency vector + MLP) feeds an instance head, trained
with NT-Xent over the 2N views (τ_I), and a cluster head (softmax over C clusters), trained with
the cluster-level loss of :mod:`phyloclr.objectives.tcl` (τ_C, entropy term). The two views of
every sequence are a weak and a strong mutation of it (transitions at µ, transversions at µ/2,
small indels, random fragments of long sequences), redrawn at every step. Each sequence gets
the argmax of the cluster head on its unmutated features; several runs are combined by
majority vote after matching their cluster labels to the first run's (Hungarian, no labels).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from phyloclr.config import config_to_dict
from phyloclr.devices import resolve_device
from phyloclr.errors import ConfigError, InputError
from phyloclr.io.fasta import iter_fasta
from phyloclr.io.sequences import SeqRecord, check_unique_ids, record_alphabet
from phyloclr.metrics import kmer_composition
from phyloclr.models.critics import CosineCritic
from phyloclr.models.fcgr import FCGRNet, fcgr, normalise
from phyloclr.models.heads import ProjectionHead
from phyloclr.objectives.contrastive import InfoNCE
from phyloclr.objectives.tcl import ClusterLoss
from phyloclr.views.mutation import MutationConfig, MutationViews

Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class ClusterConfig:
    """Settings of ``phyloclr cluster`` (saved in summary.json)."""

    n_clusters: int = 0  # 0: choose K (non-empty clusters of an over-sized head)
    max_clusters: int = 20
    input: Literal["fcgr", "kmer"] = "kmer"
    k: int = 6
    runs: int = 1
    epochs: int = 50
    batch_size: int = 256
    lr: float = 3e-4
    tau_instance: float = 0.1
    tau_cluster: float = 1.0
    weight_instance: float = 0.7
    weight_cluster: float = 0.3
    weak: MutationConfig = field(
        default_factory=lambda: MutationConfig(
            transition_rate=1e-4, transversion_rate=5e-5, mask_rate=0.0, crop_min=1.0
        )
    )
    strong: MutationConfig = field(
        default_factory=lambda: MutationConfig(
            transition_rate=1e-2, transversion_rate=5e-3, indel_rate=1e-3, mask_rate=0.0,
            crop_min=0.8,
        )
    )  # fmt: skip
    min_cluster_fraction: float = 0.01
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        if self.n_clusters == 1 or self.n_clusters < 0:
            raise ConfigError("n_clusters must be ≥ 2 (or 0 to choose K)")
        if self.runs < 1 or self.epochs < 1 or self.batch_size < 4:
            raise ConfigError("runs ≥ 1, epochs ≥ 1 and batch_size ≥ 4 are required")
        if not 1 <= self.k <= 8:
            raise ConfigError("k must lie in 1..8")


class TCLModel(nn.Module):
    """Backbone → instance head (NT-Xent) and cluster head (softmax over C)."""

    def __init__(self, cfg: ClusterConfig, n_clusters: int):
        super().__init__()
        self.backbone: nn.Module
        if cfg.input == "fcgr":
            self.backbone = FCGRNet(cfg.k, 128, 512)
        else:
            self.backbone = nn.Sequential(nn.Linear(4**cfg.k, 512), nn.ReLU(), nn.Linear(512, 512))
        self.instance = ProjectionHead(512, 512, 128)
        self.cluster = nn.Sequential(
            nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, n_clusters)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, ...) features → (embedding (B, 512), instance z (B, 128), P (B, C))."""
        h = self.backbone(x)
        return h, self.instance(h), torch.softmax(self.cluster(h), dim=1)


def featurise(seqs: Sequence[str], cfg: ClusterConfig) -> torch.Tensor:
    """FCGR images (B, 1, 2^k, 2^k), normalised, or k-mer frequencies (B, 4^k)."""
    if cfg.input == "fcgr":
        return torch.from_numpy(normalise(fcgr(seqs, cfg.k))).unsqueeze(1)
    comp = kmer_composition([s.upper().replace("U", "T") for s in seqs], cfg.k, "ACGT")
    return torch.from_numpy(normalise(comp))  # per sequence: min-max, then z-score


@dataclass
class ClusterResult:
    ids: list[str]
    clusters: np.ndarray  # (N,) int, 0..K-1
    probability: np.ndarray  # (N,) float
    k: int
    embeddings: np.ndarray  # (N, 512) of the first run
    summary: dict[str, object]


def read_dna(path: str | Path) -> tuple[list[SeqRecord], dict[str, int]]:
    """Validated DNA records; counts of ambiguous bases and of too-short records."""
    records = list(iter_fasta(path))
    check_unique_ids(records, path)
    ambiguous = 0
    for rec in records:
        if len(rec.seq) >= 20 and record_alphabet(rec.seq) != "dna":
            raise InputError(path, "not a nucleotide sequence (cluster takes DNA/RNA)", rec.id)
        ambiguous += sum(rec.seq.count(c) for c in "RYKMSWBDHVN")
    return records, {"ambiguous_bases": ambiguous}


def _train_run(
    seqs: list[str], cfg: ClusterConfig, n_clusters: int, seed: int, device: torch.device,
    progress: Progress | None, run: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = TCLModel(cfg, n_clusters).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    instance = InfoNCE(CosineCritic(), cfg.tau_instance)
    cluster = ClusterLoss(cfg.tau_cluster)
    weak, strong = MutationViews(cfg.weak, "dna"), MutationViews(cfg.strong, "dna")
    n = len(seqs)
    batch = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // batch)
    total = cfg.epochs * steps_per_epoch
    step = 0
    model.train()
    for _ in range(cfg.epochs):
        order = rng.permutation(n)
        for b in range(steps_per_epoch):
            idx = order[b * batch : (b + 1) * batch]
            v1 = featurise([weak(seqs[i], rng) for i in idx], cfg).to(device)
            v2 = featurise([strong(seqs[i], rng) for i in idx], cfg).to(device)
            _, z1, p1 = model(v1)
            _, z2, p2 = model(v2)
            loss = cfg.weight_instance * instance(z1, z2).loss + cfg.weight_cluster * cluster(
                p1, p2
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if progress is not None:
                progress(f"run {run + 1}/{cfg.runs}", step, total)
    model.eval()
    embs, probs = [], []
    with torch.no_grad():
        for start in range(0, n, 512):
            h, _, p = model(featurise(seqs[start : start + 512], cfg).to(device))
            embs.append(h.cpu().numpy())
            probs.append(p.cpu().numpy())
    prob = np.concatenate(probs)
    return prob.argmax(1), prob, np.concatenate(embs)


def label_mapping(reference: np.ndarray, other: np.ndarray, k: int) -> np.ndarray:
    """(k,) new label of each of ``other``'s clusters so that they best overlap
    ``reference``'s (Hungarian on the contingency table; no ground truth involved)."""
    from scipy.optimize import linear_sum_assignment

    table = np.zeros((k, k))
    np.add.at(table, (other, reference), 1)
    rows, cols = linear_sum_assignment(-table)
    mapping = np.arange(k)
    mapping[rows] = cols
    return mapping


def cluster_sequences(
    records: list[SeqRecord], cfg: ClusterConfig, progress: Progress | None = None
) -> ClusterResult:
    """Cluster ``records`` (DNA) into K groups; see the module docstring."""
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    short = [r.id for r in records if len(r.seq) < cfg.k]
    if short:
        raise InputError(
            None, f"{len(short)} sequences are shorter than k={cfg.k}: {', '.join(short[:10])}"
        )
    seqs = [r.seq for r in records]
    t0 = time.perf_counter()
    head = cfg.n_clusters or cfg.max_clusters
    votes: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    first_emb: np.ndarray | None = None
    for run in range(cfg.runs):
        labels, prob, emb = _train_run(seqs, cfg, head, cfg.seed + run, device, progress, run)
        if votes:
            mapping = label_mapping(votes[0], labels, head)
            labels = mapping[labels]
            aligned = np.empty_like(prob)
            aligned[:, mapping] = prob
            prob = aligned
        else:
            first_emb = emb
        votes.append(labels)
        probs.append(prob)
    counts = np.zeros((len(seqs), head))
    for labels in votes:
        counts[np.arange(len(seqs)), labels] += 1.0
    counts[np.arange(len(seqs)), votes[0]] += 0.5  # ties go to the reference run
    final = counts.argmax(1)
    mean_prob = np.mean(np.stack(probs), axis=0)
    probability = mean_prob[np.arange(len(final)), final]
    k_used = head
    if cfg.n_clusters == 0:
        sizes = np.bincount(final, minlength=head)
        keep = np.flatnonzero(sizes >= max(1, cfg.min_cluster_fraction * len(final)))
        k_used = len(keep)
        remap = {int(c): i for i, c in enumerate(keep)}
        # sequences in clusters below the floor go to their most probable kept cluster
        best_kept = keep[mean_prob[:, keep].argmax(1)]
        final = np.array(
            [remap.get(int(c), remap[int(b)]) for c, b in zip(final, best_kept, strict=True)]
        )
        probability = mean_prob[np.arange(len(final)), keep[final]] / mean_prob[:, keep].sum(1)
    assert first_emb is not None
    summary: dict[str, object] = {
        "config": config_to_dict(cfg),
        "n_sequences": len(records),
        "k": int(k_used),
        "k_chosen": cfg.n_clusters == 0,
        "cluster_sizes": np.bincount(final, minlength=k_used).tolist(),
        "seconds": time.perf_counter() - t0,
    }
    return ClusterResult(
        [r.id for r in records], final, probability, int(k_used), first_emb, summary
    )


def score(ids: list[str], clusters: np.ndarray, labels: dict[str, str]) -> dict[str, object]:
    """ACC (Hungarian), NMI and ARI against ``labels``; ids without a label are named."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from phyloclr.evaluate import hungarian_accuracy

    keep = [i for i, x in enumerate(ids) if x in labels]
    truth = np.array([labels[ids[i]] for i in keep])
    pred = clusters[keep]
    return {
        "n_scored": len(keep),
        "acc": hungarian_accuracy(truth, pred),
        "nmi": float(normalized_mutual_info_score(truth, pred)),
        "ari": float(adjusted_rand_score(truth, pred)),
        "ids_without_label": [x for x in ids if x not in labels][:100],
    }


def write_outputs(result: ClusterResult, out_dir: Path, extra: dict[str, object]) -> None:
    """DIR/clusters.tsv (header ``id cluster probability``, one row per input sequence in
    input order) and DIR/summary.json, each written to a temporary file and renamed."""
    import csv

    from phyloclr.fsutil import atomic_path

    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {**result.summary, **extra}
    for name, write in (
        (
            "clusters.tsv",
            lambda fh: _write_clusters(csv.writer(fh, delimiter="\t", lineterminator="\n"), result),
        ),
        ("summary.json", lambda fh: fh.write(json.dumps(summary, indent=2) + "\n")),
    ):
        with atomic_path(out_dir / name) as tmp, tmp.open("w", newline="") as fh:
            write(fh)


def _write_clusters(writer: Any, result: ClusterResult) -> None:
    writer.writerow(["id", "cluster", "probability"])
    for i, c, p in zip(result.ids, result.clusters, result.probability, strict=True):
        writer.writerow([i, int(c), f"{float(p):.4f}"])
