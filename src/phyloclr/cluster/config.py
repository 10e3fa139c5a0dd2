"""The settings of ``phyloclr cluster``: one frozen dataclass, validated at construction, read
from YAML with the command line's overrides on top."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from phyloclr.config import check_literals, config_to_dict
from phyloclr.errors import ConfigError
from phyloclr.neighbours import NeighbourConfig
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
    hierarchical: tuple[str, ...] = ("ward",)  # K given: agglomerative partitions in the pool
    hierarchical_limit: int = 10000  # ... up to this many sequences (N × N distances)
    batch_size: int = 256
    lr: float = 1e-3
    tau_instance: float = 0.1
    tau_cluster: float = 1.0
    weight_instance: float = 0.7
    weight_cluster: float = 0.3
    cluster_entropy: float = 1.0  # weight of the cluster marginals' entropy (balance) term
    neighbours: int = 5  # the strong view's relatives: at least this many nearest (0: none)
    neighbours_per_cluster: float = 0.5  # K given: round(this × N / K) nearest (0: off) ...
    neighbours_max: int = 50  # ... at most this many (k-mer relatives; see relatives_count)
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
        if not set(self.hierarchical) <= {"ward", "average"}:
            raise ConfigError(
                f"hierarchical linkages must be ward or average, got {self.hierarchical}"
            )
        if self.cluster_entropy < 0:
            raise ConfigError("cluster_entropy (the balance term's weight) must be ≥ 0")
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
        if self.neighbours_per_cluster < 0 or self.neighbours_max < 1:
            raise ConfigError("neighbours_per_cluster must be ≥ 0 and neighbours_max ≥ 1")
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
