"""Unsupervised clustering of DNA sequences with Twin Contrastive Learning (TCL).

A backbone (k-mer frequency vector + MLP, as DeLUCS, or FCGR image + CNN, as CGRclust) feeds an
instance head, trained with NT-Xent over the 2N views (τ_I), and ``heads`` cluster heads
(softmax over C clusters), each trained with the cluster-level loss of
:mod:`phyloclr.objectives.tcl` (τ_C, entropy term). The two views of a sequence are a weak
mutation of it and a strong mutation of one of its ``neighbours`` nearest relatives (evolution
as the augmentation; with ``neighbours = 0`` both are mutations of the sequence itself, as
CGRclust). Relatives are the nearest sequences by cosine distance of standardised k-mer
frequencies (PCA to ``neighbour_dims``, the same space for every seed: the seed changes training
only), or, with ``--input phylo``, the nearest leaves of a given tree (patristic distance) or
rows of a given MSA (p-distance), or, with ``relatives = "mash"``, the nearest of the
``relative_pool`` k-mer neighbours whose Mash distance (k-mer Jaccard converted to substitutions
per site, :mod:`phyloclr.evolution.mash`) lies in ``relative_window``: the evolutionary distance
between the two views is then a setting, as for the protein views (a sequence with no relative
in the window gets mutation-only views). Each run takes ``steps`` optimiser steps, by default
(0) with K given 20 passes over the data, at least 60 and at most 300 (:func:`auto_steps`), so
the cost grows with the input, and when K is chosen 300 (:func:`run_steps`). Views are redrawn
at every step. Before any of this, with ``orient`` (the default), sequences that their
strand-free relatives show to be on the other strand are reverse-complemented
(:mod:`phyloclr.strand`; counted in the summary).

Every head of every run proposes a partition of the unmutated sequences; each is scored without
labels by its cut of the k-mer neighbour graph (each sequence linked to its
``select_neighbours`` nearest in the PCA space above; the score is the mean over clusters of the
fraction of their members' links that leave the cluster, lower is better: clusters should be
unions of relatives, the prior the views train on) and by its silhouette (cosine, in the same
space, on at most ``silhouette_sample`` sequences). With ``refine`` and ``rank_refined`` (the
defaults) each head's partition is also refined by Lloyd's k-means in the PCA space, started
from its centroids, and scored the same way: a head that found the right basin but blurred its
borders is then ranked by what k-means makes of it. With K given, ``kmeans`` k-means partitions
(each the least-inertia of 10 starts, seeds ``seed`` + j) in each of two k-mer spaces, the PCA
spaces of the standardised and of the raw frequencies (the latter is plain k-mer k-means), join
the pool and are scored the same way (:func:`kmeans_candidates`): when no head beats k-means by
the label-free score, k-means is what is returned. Partitions, raw and refined heads and k-means
together, are ranked by ``select``: by default ``three``, the worse of a partition's three
ranks among the pool (by cut, by silhouette and by clade separation, :func:`separation`: the two
closest clusters' mean distance over the loosest cluster's, :func:`with_ranks`), then their sum;
``both`` uses the cut and silhouette ranks only, ``cut`` or ``silhouette`` one score, the other
breaking ties. Each score alone fails on some development sets (benchmarks/RESULTS.md, issue
20: the cut picks partitions that split one group along a sparse seam, the silhouette follows
k-mer geometry where it disagrees with the taxa, and both prefer, at a coarse rank, compact
partitions that split one phylum and merge two others, which the separation penalises); over
the 9 shared and 6 rRNA development sets, three seeds, the best-ranked partition by ``three``
gave mean ACC 0.913 against 0.895 for ``both`` with a vote of three (the earlier default) on
the same partitions. The ``vote`` best (0, the default: 1 with K given, 3 when K is chosen) are
combined by majority vote after matching their labels to the best one (Hungarian on the
contingency table); one keeps the best. With ``refine`` the voted partition is then refined by
k-means in the same way: the heads find the basin, k-means settles the borders. The
probability reported is the voters' mean (matched) probability of the final cluster (a head's
softmax, or a refined partition's k-means responsibility), so a sequence that k-means moved
away from the voters' choice shows a low one.

When K is not given, every run trains one cluster head for each K in 2..``max_clusters`` on a
shared backbone, and K is chosen by reproducibility (:func:`choose_k`): the stability of K is
the mean adjusted Rand index between the runs' K-cluster partitions (each refined by k-means as
above when ``refine`` is on, so that runs are compared on the basins they found, not on their
borders), and K is the smallest K whose stability is at least ``k_stability`` and a local
maximum (not below K − 1's, above K + 1's), or the most stable K when none is. The runs' K-head
partitions (and their refinements) are then ranked, voted and refined as above; every K's
stability and cut is reported. On nested taxa this finds the first level every run reproduces,
often coarser than the rank a user has in mind (benchmarks/RESULTS.md).
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

from phyloclr.config import check_literals, config_to_dict
from phyloclr.devices import resolve_device
from phyloclr.errors import ConfigError, InputError
from phyloclr.io.fasta import iter_fasta
from phyloclr.io.sequences import SeqRecord, check_unique_ids, record_alphabet
from phyloclr.models.critics import CosineCritic
from phyloclr.models.fcgr import FCGRNet, cell_index, normalise
from phyloclr.models.heads import ProjectionHead
from phyloclr.neighbours import NeighbourConfig, chosen_method, neighbour_graph
from phyloclr.objectives.contrastive import InfoNCE
from phyloclr.objectives.tcl import ClusterLoss
from phyloclr.progress import Progress
from phyloclr.views import dna
from phyloclr.views.mutation import MutationConfig


@dataclass(frozen=True)
class ClusterConfig:
    """Settings of ``phyloclr cluster`` (saved in summary.json)."""

    n_clusters: int = 0  # 0: choose K in 2..max_clusters by cross-run stability
    max_clusters: int = 20
    k_stability: float = 0.5  # choosing K: the least mean ARI between runs to accept a K
    input: Literal["kmer", "fcgr", "phylo"] = "kmer"
    tree: str | None = None  # --input phylo: Newick whose leaves are the sequence ids
    msa: str | None = None  # --input phylo: aligned FASTA of the same ids
    k: int = 6
    fcgr_channels: int = 128  # --input fcgr: the CNN's width (CGRclust: 128)
    runs: int = 3
    heads: int = 6
    vote: int = 0  # partitions voted; 0: 1 when K is given (the best-ranked), 3 when K is chosen
    steps: int = 0  # per run; 0: grow with the data (auto_steps) with K given, 300 when chosen
    kmeans: int = 3  # K given: k-means partitions (best of 10 starts) per k-mer space in the pool
    batch_size: int = 256
    lr: float = 1e-3
    tau_instance: float = 0.1
    tau_cluster: float = 1.0
    weight_instance: float = 0.7
    weight_cluster: float = 0.3
    neighbours: int = 5
    neighbour_dims: int = 64
    relatives: Literal["kmer", "mash"] = "kmer"  # how the strong view's relatives are chosen
    relative_window: tuple[float, float] = (0.0, 0.15)  # mash: substitutions/site allowed
    relative_pool: int = 30  # mash: nearest sequences in the k-mer space measured
    mash_k: int = 12  # mash: k-mer size of the Jaccard index
    select: Literal["three", "both", "cut", "silhouette"] = "three"  # how partitions are ranked
    select_neighbours: int = 10  # the k-mer neighbour graph whose cut ranks partitions
    search: NeighbourConfig = field(default_factory=NeighbourConfig)  # that graph's engine
    silhouette_sample: int = 5000
    refine: bool = True
    rank_refined: bool = True  # rank each head's k-means-refined partition beside its own
    orient: bool = True  # reverse-complement sequences on the other strand from their relatives
    orient_margin: float = 0.25
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
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        check_literals(self)
        if self.n_clusters == 1 or self.n_clusters < 0:
            raise ConfigError("n_clusters must be ≥ 2 (or 0 to choose K)")
        if self.runs < 1 or self.heads < 1 or self.steps < 0 or self.batch_size < 4:
            raise ConfigError(
                "runs ≥ 1, heads ≥ 1, steps ≥ 0 (0: grow with the data) and batch_size ≥ 4 are "
                "required"
            )
        if self.kmeans < 0:
            raise ConfigError("kmeans (partitions per k-mer space) must be ≥ 0")
        if not 0 <= self.vote <= self.runs * self.heads:
            raise ConfigError("vote must lie in 0..runs × heads (0: 1 with K given, else 3)")
        if self.n_clusters == 0 and (self.runs < 2 or self.max_clusters < 3):
            raise ConfigError(
                "choosing K compares runs: it needs runs ≥ 2 and max_clusters ≥ 3 "
                "(or give n_clusters)"
            )
        if not 0.0 <= self.k_stability <= 1.0:
            raise ConfigError("k_stability (an adjusted Rand index) must lie in [0, 1]")
        if not 1 <= self.k <= 8:
            raise ConfigError("k must lie in 1..8")
        if self.fcgr_channels < 1:
            raise ConfigError("fcgr_channels must be ≥ 1")
        if not 0.0 <= self.orient_margin <= 2.0:
            raise ConfigError("orient_margin (a cosine-similarity gain) must lie in [0, 2]")
        if self.select_neighbours < 1:
            raise ConfigError("select_neighbours must be ≥ 1")
        if self.neighbours < 0 or self.neighbour_dims < 2:
            raise ConfigError("neighbours must be ≥ 0 and neighbour_dims ≥ 2")
        if self.input == "phylo" and (self.tree is None) == (self.msa is None):
            raise ConfigError("--input phylo needs exactly one of --tree or --msa")
        lo, hi = self.relative_window
        if not 0.0 <= lo < hi:
            raise ConfigError("relative_window must be (low, high) with 0 ≤ low < high")
        if self.relative_pool < 1 or not 4 <= self.mash_k <= 31:
            raise ConfigError("relative_pool must be ≥ 1 and mash_k in 4..31")
        if self.input == "phylo" and self.neighbours == 0:
            raise ConfigError("--input phylo draws views from relatives: neighbours must be ≥ 1")


def load_cluster_config(
    path: str | Path | None, overrides: dict[str, Any] | None = None
) -> ClusterConfig:
    """ClusterConfig from a YAML file of its fields (nested ``weak``/``strong`` mappings merge
    with the defaults' mutation rates), then ``overrides`` (field → value) on top; unknown
    keys and wrong types are a ConfigError naming the file."""
    from phyloclr.config import config_from_dict, read_config_mapping

    data = config_to_dict(ClusterConfig())
    origin = "command line"
    if path is not None:
        origin = str(path)
        for key, value in read_config_mapping(path).items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
    data.update(overrides or {})
    try:
        return config_from_dict(ClusterConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from exc


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


class Featuriser:
    """Coded sequences → network input: standardised k-mer frequencies (B, 4^k), each k-mer
    centred and scaled by its mean and s.d. over the unmutated sequences (as DeLUCS), or FCGR
    images (B, 1, 2^k, 2^k), each min-max scaled then z-scored (as CGRclust)."""

    def __init__(self, codes: Sequence[np.ndarray], cfg: ClusterConfig, chunk: int = 2048):
        self.k, self.image = cfg.k, cfg.input == "fcgr"
        self.mean, self.scale = dna.kmer_standardiser(codes, cfg.k, chunk=chunk)
        self.cells = np.argsort(cell_index(cfg.k))  # FCGR cell → k-mer index

    def standardised(self, codes: Sequence[np.ndarray]) -> np.ndarray:
        """(B, 4^k) standardised k-mer frequencies."""
        return (dna.kmer_frequencies(codes, self.k) - self.mean) * self.scale

    def __call__(self, codes: Sequence[np.ndarray]) -> torch.Tensor:
        if not self.image:
            return torch.from_numpy(self.standardised(codes))
        side = 1 << self.k
        images = dna.kmer_counts(codes, self.k)[:, self.cells].reshape(len(codes), side, side)
        return torch.from_numpy(normalise(images)).unsqueeze(1)


@dataclass(frozen=True)
class Candidate:
    """One head's partition of the unmutated sequences and its label-free scores."""

    run: int
    head: int
    cut: float  # mean fraction of the neighbour-graph links leaving a cluster (lower: better)
    silhouette: float
    labels: np.ndarray  # (N,) in the head's own labels
    k: int  # the head's number of outputs
    refined: bool = False  # the head's partition refined by k-means (see ``rank_refined``)
    source: str = "tcl"  # "tcl" (a head), "kmeans" or "kmeans-raw" (see ``kmeans_candidates``)
    rank_cut: float = 0.0  # its rank by cut among the pool's partitions of its K (1: best)
    rank_silhouette: float = 0.0  # its rank by silhouette among them (ties share the mean rank)
    separation: float = 0.0  # clade separation (:func:`separation`; higher: better)
    rank_separation: float = 0.0  # its rank by separation among them

    def rank_key(self, select: str) -> tuple[float, ...]:
        """Sort key, best first: by ``select``, the other score breaking ties; ``both``: by
        the worse of its cut and silhouette ranks (good by both scores), then their sum, then
        the cut; ``three``: the same over its cut, silhouette and separation ranks."""
        if select == "cut":
            return (self.cut, -self.silhouette)
        if select == "both":
            worse = max(self.rank_cut, self.rank_silhouette)
            return (worse, self.rank_cut + self.rank_silhouette, self.cut)
        if select == "three":
            ranks = (self.rank_cut, self.rank_silhouette, self.rank_separation)
            return (max(ranks), sum(ranks), self.cut)
        return (-self.silhouette, self.cut)


@dataclass
class ClusterResult:
    ids: list[str]
    clusters: np.ndarray  # (N,) int, 0..K-1
    probability: np.ndarray  # (N,) float
    k: int
    embeddings: np.ndarray  # (N, 512) backbone output (float16-rounded) of the best head's run
    summary: dict[str, object]
    candidates: list[Candidate] = field(default_factory=list)  # heads' and refined, best first
    voted: np.ndarray | None = None  # (N,) the vote before refinement, in head labels
    space: np.ndarray | None = None  # (N, D) the k-mer PCA space partitions are refined in


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


def reduce(
    codes: Sequence[np.ndarray], features: Callable[[Sequence[np.ndarray]], np.ndarray],
    dims: int, chunk: int = 2048,
) -> np.ndarray:  # fmt: skip
    """(N, dims) float32 PCA of ``features`` (B, D) of the coded sequences, fitted on ≤ 20,000
    of them, ``chunk`` at a time. The fitting sample and the randomised SVD use a fixed seed:
    the same sequences give the same space whatever the run's seed, so that seeds differ in
    training only (partitions are scored and refined in this space)."""
    from sklearn.decomposition import PCA

    n = len(codes)
    seed = 0
    rng = np.random.default_rng(seed)
    fit = np.sort(rng.choice(n, min(n, 20_000), replace=False))
    fit_x = np.concatenate(
        [features([codes[i] for i in fit[s : s + chunk]]) for s in range(0, len(fit), chunk)]
    )
    pca = PCA(max(1, min(dims, n - 1, fit_x.shape[1])), svd_solver="randomized", random_state=seed)
    pca.fit(fit_x)
    del fit_x
    parts = [
        pca.transform(features(codes[s : s + chunk])).astype(np.float32) for s in range(0, n, chunk)
    ]
    return np.concatenate(parts)


def kmer_neighbours(space: np.ndarray, n: int, search: NeighbourConfig | None = None) -> np.ndarray:
    """(N, n) indices of each row's n nearest other rows by cosine distance, nearest first.

    Exact (scikit-learn brute force) while ``search`` (:mod:`phyloclr.neighbours`) chooses exact
    search for N rows; above its ``exact_limit`` a faiss HNSW graph when faiss-cpu is installed.
    scikit-learn stays the exact engine because every clustering figure was measured with its
    order among tied rows (identical sequences); ``neighbours.knn`` orders ties by row.
    """
    from sklearn.neighbors import NearestNeighbors

    if chosen_method(len(space), search or NeighbourConfig()) == "faiss":
        return neighbour_graph(space, n, search)
    n = min(n, len(space) - 1)
    _, idx = NearestNeighbors(n_neighbors=n + 1, metric="cosine").fit(space).kneighbors(space)
    return _drop_self(idx, n)


def _drop_self(idx: np.ndarray, n: int) -> np.ndarray:
    out = np.empty((len(idx), n), dtype=np.int64)
    for i, row in enumerate(idx):
        others = row[row != i]
        out[i] = others[:n]
    return out


def phylo_neighbours(ids: list[str], cfg: ClusterConfig) -> np.ndarray:
    """(N, n) nearest relatives of each sequence: leaves of ``cfg.tree`` by patristic distance
    or rows of ``cfg.msa`` by p-distance; every id must be in the tree or the MSA."""
    if cfg.tree is not None:
        from phyloclr.evolution.patristic import patristic_distances
        from phyloclr.io.newick import read_trees

        tree = read_trees(cfg.tree)[0][1]
        names, dist = tree.leaf_names, patristic_distances(tree)
    else:
        from phyloclr.evolution.distances import p_distances
        from phyloclr.io.fasta import read_aligned_fasta

        assert cfg.msa is not None
        rows = read_aligned_fasta(cfg.msa)
        names = [r.id for r in rows]
        dist = np.nan_to_num(p_distances([r.aligned or r.seq for r in rows])[0], nan=1.0)
    where = {name: i for i, name in enumerate(names)}
    missing = [x for x in ids if x not in where]
    if missing:
        raise InputError(cfg.tree or cfg.msa, "sequence not in the tree/MSA", missing[0])
    order = np.array([where[x] for x in ids])
    sub = np.asarray(dist)[np.ix_(order, order)]
    n = min(cfg.neighbours, len(ids) - 1)
    return _drop_self(np.argsort(sub, axis=1, kind="stable")[:, : n + 1], n)


def mash_relatives(
    codes: Sequence[np.ndarray], pool: np.ndarray, cfg: ClusterConfig
) -> tuple[np.ndarray, dict[str, float]]:
    """(N, ``neighbours``) relatives of each sequence whose Mash distance
    (:mod:`phyloclr.evolution.mash`, k = ``mash_k``) lies in ``relative_window``, nearest
    first, taken from its ``pool`` (N, P) nearest sequences in the k-mer space; a sequence with
    fewer fills the remaining slots with itself (a mutation-only view). Also what was found:
    the fraction of sequences with a relative in the window and the median distance drawn."""
    from phyloclr.evolution.mash import kmer_set, pair_distances

    n, m = len(codes), cfg.neighbours
    sets = [kmer_set(c, cfg.mash_k) for c in codes]
    pairs = np.stack([np.repeat(np.arange(n), pool.shape[1]), pool.ravel()], 1)
    dist = pair_distances(sets, pairs, cfg.mash_k).reshape(pool.shape)
    lo, hi = cfg.relative_window
    out = np.repeat(np.arange(n)[:, None], m, axis=1)
    drawn: list[float] = []
    found = 0
    for i in range(n):
        ok = np.flatnonzero((dist[i] >= lo) & (dist[i] <= hi))
        ok = ok[np.argsort(dist[i, ok], kind="stable")][:m]
        if len(ok):
            found += 1
            out[i, : len(ok)] = pool[i, ok]
            drawn += dist[i, ok].tolist()
    stats = {"with_relative": round(found / n, 4),
             "median_distance": round(float(np.median(drawn)), 4) if drawn else None}  # fmt: skip
    return out, stats  # type: ignore[return-value]


def _train_run(
    codes: list[np.ndarray], feats: Featuriser, relatives: np.ndarray | None, cfg: ClusterConfig,
    sizes: Sequence[int], seed: int, device: torch.device, progress: Progress | None, run: int,
) -> tuple[list[np.ndarray], np.ndarray]:  # fmt: skip
    """One TCL run → (per head (N, C_h) probabilities of the unmutated sequences, (N, 512))."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = TCLModel(cfg, sizes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    instance = InfoNCE(CosineCritic(), cfg.tau_instance)
    cluster = ClusterLoss(cfg.tau_cluster)
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


def kmeans_candidates(
    spaces: dict[str, np.ndarray], graph: np.ndarray, k: int, cfg: ClusterConfig
) -> list[tuple[Candidate, np.ndarray]]:
    """``cfg.kmeans`` k-means partitions (scikit-learn, each the least-inertia of 10 starts, as
    plain k-means is run; seeds ``cfg.seed`` + j) in each of ``spaces`` (name → (N, D); the
    standardised one is ``"kmeans"``), scored like heads on ``graph`` (N, m) and in the
    standardised space, with their (N, k) responsibilities in their own space: the pool then
    holds the partitions plain k-mer k-means would give, and the label-free ranking chooses.
    (Single starts were tried first: their poor local optima, two groups merged and one split,
    can score well by the cut.)"""
    from sklearn.cluster import KMeans

    out = []
    for name, x in spaces.items():
        for j in range(cfg.kmeans):
            labels = KMeans(k, n_init=10, random_state=cfg.seed + j).fit_predict(x)
            resp = refine(x, labels, k, max_iter=0)
            sil = silhouette(spaces["kmeans"], labels, cfg.silhouette_sample, cfg.seed)
            cand = Candidate(-1, j, neighbour_cut(graph, labels), sil, labels, k, source=name,
                             separation=separation(spaces["kmeans"], labels))  # fmt: skip
            out.append((cand, resp))
    return out


def with_ranks(candidates: Sequence[Candidate]) -> list[Candidate]:
    """``candidates`` with ``rank_cut``, ``rank_silhouette`` and ``rank_separation`` set:
    each one's rank (1 = best, ties averaged) by each score among the partitions of the same K,
    for ``select = "both"`` and ``"three"``. Each score alone has a failure mode on the
    development sets: the cut favours partitions that split one group along a sparse seam (and
    merge two others), the silhouette favours the k-mer space's own geometry where it disagrees
    with the taxa (6-mer k-means on cgrclust Cypriniformes), and both favour compact partitions
    that split one phylum and merge two others at a coarse rank, which the separation does not;
    a partition good by all three is rarely any of these."""
    from dataclasses import replace

    from scipy.stats import rankdata

    out = list(candidates)
    for k in {c.k for c in candidates}:
        idx = [i for i, c in enumerate(candidates) if c.k == k]
        by_cut = rankdata([candidates[i].cut for i in idx])
        by_sil = rankdata([-candidates[i].silhouette for i in idx])
        by_sep = rankdata([-candidates[i].separation for i in idx])
        for j, i in enumerate(idx):
            out[i] = replace(candidates[i], rank_cut=float(by_cut[j]),
                             rank_silhouette=float(by_sil[j]),
                             rank_separation=float(by_sep[j]))  # fmt: skip
    return out


def _with_ranks(
    pairs: Sequence[tuple[Candidate, np.ndarray]],
) -> list[tuple[Candidate, np.ndarray]]:
    """:func:`with_ranks` on (candidate, probabilities) pairs."""
    scored = with_ranks([c for c, _ in pairs])
    return [(c, p) for c, (_, p) in zip(scored, pairs, strict=True)]


def neighbour_cut(graph: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the clusters ``labels`` (N,) uses of the fraction of their members' links in
    ``graph`` (N, m) (each row: a sequence's m neighbours) that end in another cluster; 1 when
    there is a single cluster (nothing is separated)."""
    used, slot = np.unique(labels, return_inverse=True)
    if len(used) < 2:
        return 1.0
    leaving = (labels[graph] != labels[:, None]).sum(1)  # (N,)
    cut = np.bincount(slot, weights=leaving, minlength=len(used))
    volume = np.bincount(slot, minlength=len(used)) * graph.shape[1]
    return float((cut / volume).mean())


def silhouette(space: np.ndarray, labels: np.ndarray, sample: int, seed: int) -> float:
    """Cosine silhouette of a partition (−1 when it has a single cluster)."""
    from sklearn.metrics import silhouette_score

    if len(np.unique(labels)) < 2 or len(np.unique(labels)) >= len(labels):
        return -1.0
    size = sample if len(labels) > sample else None
    return float(silhouette_score(space, labels, metric="cosine", sample_size=size,
                                  random_state=seed))  # fmt: skip


def separation(space: np.ndarray, labels: np.ndarray) -> float:
    """Clade separation of a partition: the mean cosine distance between the two closest
    clusters (average linkage: over all pairs of their members) divided by the mean cosine
    distance within the loosest cluster (over all pairs of its members, each with itself
    included); 0 for a single cluster. High when every cluster is farther from every other
    than its own members are from each other, as the clades of a tree cut at one depth are:
    a partition that splits one clade while merging two distant others scores low even when
    its clusters are compact (a coarse rank, bacterial phyla, in RESULTS.md). O(N·D)
    (:func:`cluster_distances`)."""
    distance = cluster_distances(space, labels)
    if len(distance) < 2:
        return 0.0
    within = float(np.diag(distance).max())
    between = float((distance + np.diag(np.full(len(distance), np.inf))).min())
    return between / max(within, 1e-12)


def cluster_distances(space: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(C, C) mean cosine distance between the members of each pair of the C clusters that
    ``labels`` (N,) uses, in label order (diagonal: within a cluster, each member with itself
    included); O(N·D) by cluster sums of the unit vectors of ``space`` (N, D)."""
    used, slot = np.unique(labels, return_inverse=True)
    unit = space / np.maximum(np.linalg.norm(space, axis=1, keepdims=True), 1e-12)
    sums = np.zeros((len(used), space.shape[1]))
    np.add.at(sums, slot, unit)
    size = np.bincount(slot).astype(float)
    return 1.0 - (sums @ sums.T) / np.outer(size, size)


def refine(space: np.ndarray, labels: np.ndarray, k: int, max_iter: int = 100) -> np.ndarray:
    """Lloyd's k-means in ``space`` (N, D), started from the centroids of the clusters that
    ``labels`` (N,) uses → (N, k) responsibilities of the refined partition under an isotropic
    Gaussian mixture with the k-means variance (clusters ``labels`` leaves empty stay empty; a
    cluster that loses every member keeps its centroid)."""
    n = len(labels)
    used = np.unique(labels)
    out = np.zeros((n, k), dtype=np.float32)
    if len(used) < 2:
        out[np.arange(n), labels] = 1.0
        return out
    x = space.astype(np.float64)
    sq = (x**2).sum(1, keepdims=True)
    slot = np.searchsorted(used, labels)  # (N,) index into used
    centroids = np.stack([x[slot == j].mean(0) for j in range(len(used))])
    for _ in range(max_iter):
        new = (sq - 2 * x @ centroids.T + (centroids**2).sum(1)).argmin(1)
        for j in range(len(used)):
            members = new == j
            if members.any():
                centroids[j] = x[members].mean(0)
        if np.array_equal(new, slot):
            break
        slot = new
    d2 = np.maximum(sq - 2 * x @ centroids.T + (centroids**2).sum(1), 0.0)  # (N, used)
    var = max(float(d2[np.arange(n), slot].sum()) / space.size, 1e-12)
    resp = np.exp(-(d2 - d2.min(1, keepdims=True)) / (2 * var))
    out[:, used] = resp / resp.sum(1, keepdims=True)
    return out


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


def prepare(
    records: list[SeqRecord], cfg: ClusterConfig
) -> tuple[list[np.ndarray], np.ndarray, Featuriser, np.ndarray]:
    """What training and scoring start from, independent of ``cfg.seed``: (coded sequences,
    oriented with ``cfg.orient``; (N,) bool, which were reverse-complemented; their
    featuriser; (N, ``neighbour_dims``) PCA space of standardised k-mer frequencies). The PCA
    space of the raw frequencies is :func:`raw_space`."""
    codes = [dna.encode(r.seq) for r in records]
    flipped = np.zeros(len(codes), dtype=bool)
    if cfg.orient:
        from phyloclr.strand import orient, reverse_complement

        flipped = orient(codes, cfg.k, margin=cfg.orient_margin)
        for i in np.flatnonzero(flipped):
            codes[i] = reverse_complement(codes[i])
    feats = Featuriser(codes, cfg)
    return codes, flipped, feats, reduce(codes, feats.standardised, cfg.neighbour_dims)


def raw_space(codes: Sequence[np.ndarray], cfg: ClusterConfig) -> np.ndarray:
    """(N, ``neighbour_dims``) PCA of the raw (not standardised) k-mer frequencies: the space
    of plain k-mer k-means, where common k-mers weigh most."""
    return reduce(codes, lambda c: dna.kmer_frequencies(c, cfg.k), cfg.neighbour_dims)


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
    if len(records) < 3:
        raise InputError(None, f"clustering needs at least 3 sequences, got {len(records)}")
    t0 = time.perf_counter()
    ids = [r.id for r in records]
    codes, flipped, feats, space = prepare(records, cfg)
    mash = cfg.relatives == "mash" and cfg.input != "phylo" and cfg.neighbours > 0
    width = max(cfg.select_neighbours, cfg.neighbours, cfg.relative_pool if mash else 0)
    graph = kmer_neighbours(space, width, cfg.search)  # (N, m) nearest first
    relatives: np.ndarray | None = None
    relative_stats: dict[str, float] = {}
    if cfg.input == "phylo":
        relatives = phylo_neighbours(ids, cfg)
    elif mash:
        relatives, relative_stats = mash_relatives(codes, graph[:, : cfg.relative_pool], cfg)
    elif cfg.neighbours > 0:
        relatives = graph[:, : cfg.neighbours]
    graph = graph[:, : cfg.select_neighbours]
    sizes = [cfg.n_clusters] * cfg.heads
    if not cfg.n_clusters:  # one head per K to try, none with more clusters than sequences - 1
        sizes = list(range(2, min(cfg.max_clusters, len(records) - 1) + 1))
    candidates: list[tuple[Candidate, np.ndarray]] = []  # with the head's (N, C) probabilities
    # run → (N, 512) float16: which run holds the best partition is known only once the whole
    # pool (every run, the k-means partitions) is ranked, since ranks are relative to the pool
    embeddings: dict[int, np.ndarray] = {}
    for run in range(cfg.runs):
        probs, emb = _train_run(
            codes, feats, relatives, cfg, sizes, cfg.seed + run, device, progress, run
        )
        embeddings[run] = emb.astype(np.float16)
        for h, p in enumerate(probs):
            labels = p.argmax(1)
            sil = silhouette(space, labels, cfg.silhouette_sample, cfg.seed)
            cand = Candidate(run, h, neighbour_cut(graph, labels), sil, labels, p.shape[1],
                             separation=separation(space, labels))  # fmt: skip
            candidates.append((cand, p))
            if cfg.n_clusters and cfg.refine and cfg.rank_refined:
                candidates.append(refined_candidate(cand, space, graph, cfg))
    if cfg.n_clusters and cfg.kmeans and cfg.n_clusters < len(codes):  # k-means needs K < N
        spaces = {"kmeans": space, "kmeans-raw": raw_space(codes, cfg)}
        candidates += kmeans_candidates(spaces, graph, cfg.n_clusters, cfg)
    k_scores: list[dict[str, float]] = []
    k_used = cfg.n_clusters
    stability_of_k = None
    if not k_used:
        k_scores = k_stability([c for c, _ in candidates], space if cfg.refine else None)
        k_used = choose_k(k_scores, cfg.k_stability)
        stability_of_k = next(x["stability"] for x in k_scores if x["k"] == k_used)
        if cfg.refine and cfg.rank_refined:  # the chosen K's heads, refined
            candidates += [refined_candidate(c, space, graph, cfg)
                           for c, _ in candidates if c.k == k_used]  # fmt: skip
    candidates = _with_ranks(candidates)  # for the summary's order; ranked() ranks its pool
    candidates.sort(key=lambda c: c[0].rank_key(cfg.select))  # stable: ties keep run order
    done = assign(candidates, space, k_used, cfg)
    final, voted, chosen = done.final, done.voted, done.chosen
    first_head = next(c for c, _ in candidates if c.source == "tcl")  # the best-ranked head
    embedding = embeddings[first_head.run].astype(np.float32)
    del embeddings
    moved = int((final != voted).sum())
    probability = done.probability
    used = np.unique(final)
    if not cfg.n_clusters and len(used) < k_used:  # a chosen K's heads left clusters empty
        k_used, final = len(used), np.searchsorted(used, final)
    summary: dict[str, object] = {
        "config": config_to_dict(cfg),
        "n_sequences": len(records),
        "k": int(k_used),
        "k_chosen": cfg.n_clusters == 0,
        "k_scores": k_scores,  # choosing K: every K's stability across runs and mean cut
        "stability_of_k": stability_of_k,  # the chosen K's (before empty clusters are dropped)
        "cluster_sizes": np.bincount(final, minlength=k_used).tolist(),
        "relatives": relative_stats,  # relatives by Mash distance: how many had one in the window
        "steps_per_run": run_steps(cfg, len(codes)),
        "reverse_complemented": int(flipped.sum()),
        "reverse_complemented_ids": [ids[i] for i in np.flatnonzero(flipped)[:100]],
        "candidates": [_scores(c) for c, _ in candidates],  # best first
        "voted": len(chosen),
        "voted_sources": [c.source for c, _ in chosen],  # tcl, kmeans or kmeans-raw
        "voters_unanimous": round(float(np.mean(done.agree == len(chosen))), 4),
        "moved_by_refine": moved,
        "seconds": time.perf_counter() - t0,
    }
    return ClusterResult(
        ids, final, probability, int(k_used), embedding, summary,
        [c for c, _ in candidates], voted, space,
    )  # fmt: skip


def refined_candidate(
    cand: Candidate, space: np.ndarray, graph: np.ndarray, cfg: ClusterConfig
) -> tuple[Candidate, np.ndarray]:
    """``cand``'s partition refined by k-means in ``space`` (N, D) (:func:`refine`), scored
    like a head on ``graph`` (N, m) → (candidate, its (N, K) k-means responsibilities)."""
    resp = refine(space, cand.labels, cand.k)
    labels = resp.argmax(1)
    sil = silhouette(space, labels, cfg.silhouette_sample, cfg.seed)
    return Candidate(cand.run, cand.head, neighbour_cut(graph, labels), sil, labels, cand.k,
                     refined=True, separation=separation(space, labels)), resp  # fmt: skip


def ranked(
    candidates: Sequence[tuple[Candidate, np.ndarray]], k: int, cfg: ClusterConfig
) -> list[tuple[Candidate, np.ndarray]]:
    """The candidates with ``k`` outputs that may be voted (refined ones only with
    ``cfg.rank_refined``), best first by ``cfg.select`` (stable: ties keep their order), with
    their ranks among these set (:func:`with_ranks`)."""
    pool = [c for c in candidates if c[0].k == k and (cfg.rank_refined or not c[0].refined)]
    pool = _with_ranks(pool)
    return sorted(pool, key=lambda c: c[0].rank_key(cfg.select))


@dataclass(frozen=True)
class Assignment:
    """The vote of the best candidate partitions and its refinement (:func:`assign`)."""

    final: np.ndarray  # (N,) cluster of each sequence, 0..K-1
    probability: np.ndarray  # (N,) the voters' mean (matched) probability of ``final``
    voted: np.ndarray  # (N,) the vote before refinement
    agree: np.ndarray  # (N,) how many voters chose the voted label
    chosen: list[tuple[Candidate, np.ndarray]]  # the candidates voted, best first


def voters(cfg: ClusterConfig) -> int:
    """How many of the best-ranked partitions are voted: ``cfg.vote``, or when 0, 1 with K
    given (over the 15 development sets the best-ranked partition alone beat the vote of
    three under ``select = "three"``, RESULTS.md) and 3 when K is chosen (one per run)."""
    return cfg.vote or (1 if cfg.n_clusters else 3)


def assign(
    candidates: Sequence[tuple[Candidate, np.ndarray]], space: np.ndarray, k: int,
    cfg: ClusterConfig,
) -> Assignment:  # fmt: skip
    """Vote the :func:`voters` best of ``candidates`` (each with its (N, k) probabilities: a
    head's softmax, or a refined partition's k-means responsibilities) and, with
    ``cfg.refine``, refine the vote by k-means in ``space`` (N, D)."""
    chosen = ranked(candidates, k, cfg)[: voters(cfg)]  # K chosen: one head per run (+ refined)
    voted, mean_prob, agree = vote([c[1] for c in chosen], k)
    final = refine(space, voted, k).argmax(1) if cfg.refine else voted
    return Assignment(final, mean_prob[np.arange(len(final)), final], voted, agree, chosen)


def _scores(c: Candidate) -> dict[str, object]:
    return {
        "source": c.source,
        "run": c.run,
        "head": c.head,
        "k": c.k,
        "refined": c.refined,
        "cut": round(c.cut, 4),
        "silhouette": round(c.silhouette, 4),
        "rank_cut": c.rank_cut,
        "rank_silhouette": c.rank_silhouette,
        "separation": round(c.separation, 4),
        "rank_separation": c.rank_separation,
    }


def k_stability(
    candidates: Sequence[Candidate], space: np.ndarray | None = None
) -> list[dict[str, float]]:
    """Per K among ``candidates``' head sizes: ``stability``, the mean adjusted Rand index
    between the partitions of different runs (1: every run found the same partition), each
    first refined by k-means in ``space`` (N, D) when it is given, and ``cut``, the heads'
    mean neighbour-graph cut; sorted by K."""
    from itertools import combinations

    from sklearn.metrics import adjusted_rand_score

    out = []
    for k in sorted({c.k for c in candidates}):
        group = [c for c in candidates if c.k == k]
        labels = [c.labels if space is None else refine(space, c.labels, k).argmax(1)
                  for c in group]  # fmt: skip
        pairs = [
            adjusted_rand_score(labels[i], labels[j])
            for i, j in combinations(range(len(group)), 2)
            if group[i].run != group[j].run
        ]
        out.append({
            "k": k,
            "stability": round(float(np.mean(pairs)) if pairs else 0.0, 4),
            "cut": round(float(np.mean([c.cut for c in group])), 4),
        })  # fmt: skip
    return out


def choose_k(scores: Sequence[dict[str, float]], floor: float) -> int:
    """The smallest K whose stability is at least ``floor`` and a local maximum (≥ the next
    smaller K's, > the next larger K's); with none, the most stable K (the smaller on ties).
    ``scores``: :func:`k_stability`'s list, sorted by K."""
    if not scores:
        raise ValueError("no K to choose from")
    s = [x["stability"] for x in scores]
    for i, x in enumerate(scores):
        if s[i] < floor:
            continue
        if (i == 0 or s[i] >= s[i - 1]) and (i == len(s) - 1 or s[i] > s[i + 1]):
            return int(x["k"])
    return int(max(scores, key=lambda x: (x["stability"], -x["k"]))["k"])


def vote(probs: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Majority vote of partitions given as (N, k) probabilities, labels matched to the first
    (which also breaks ties) → (final labels (N,), mean matched probabilities (N, k), number of
    partitions agreeing with the final label (N,))."""
    reference = probs[0].argmax(1)
    n = len(reference)
    counts = np.zeros((n, k))
    counts[np.arange(n), reference] += 0.5
    total = np.zeros((n, k))
    agree = np.zeros(n, dtype=np.int64)
    matched = []
    for p in probs:
        labels = p.argmax(1)
        mapping = label_mapping(reference, labels, k)
        matched.append(mapping[labels])
        counts[np.arange(n), mapping[labels]] += 1.0
        aligned = np.empty_like(p)
        aligned[:, mapping] = p
        total += aligned
    final = counts.argmax(1)
    for labels in matched:
        agree += labels == final
    return final, total / len(probs), agree


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
