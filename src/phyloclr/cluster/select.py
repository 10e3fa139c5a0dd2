"""Choosing a partition without labels: the candidate pool (TCL heads, their k-means
refinements, plain k-means partitions), the label-free scores (neighbour-graph cut, silhouette,
clade separation), their ranks, the vote of the best and its k-means refinement.

Every head of every run proposes a partition of the unmutated sequences; each is scored by its
cut of the k-mer neighbour graph (each sequence linked to its ``select_neighbours`` nearest in
the PCA space; the mean over clusters of the fraction of their members' links that leave the
cluster, lower is better: clusters should be unions of relatives, the prior the views train on)
and by its silhouette (cosine, in the same space, on at most ``silhouette_sample`` sequences).
With ``refine`` and ``rank_refined`` (the defaults) each head's partition is also refined by
Lloyd's k-means in the PCA space, started from its centroids, and scored the same way: a head
that found the right basin but blurred its borders is then ranked by what k-means makes of it.
With K given, ``kmeans`` k-means partitions (each the least-inertia of 10 starts, seeds ``seed``
+ j) in each of two k-mer spaces, the PCA spaces of the standardised and of the raw frequencies
(the latter is plain k-mer k-means), join the pool and are scored the same way
(:func:`kmeans_candidates`): when no head beats k-means by the label-free score, k-means is what
is returned. So does, in each space, the partition of Ward's agglomerative clustering
(``hierarchical``; :func:`hierarchical_candidates`, up to ``hierarchical_limit`` sequences). The
pool is ranked by ``select``: by default ``three``, the worse of a partition's three ranks (by
cut, by silhouette and by clade separation, :func:`separation`), then their sum; ``both`` uses
the cut and silhouette ranks only, ``cut`` or ``silhouette`` one score, the other breaking ties
(each score alone fails on some development sets; the figures are in benchmarks/RESULTS.md,
issue 20). The ``vote`` best (0: 1 with K given, 3 when K is chosen) are combined by majority
vote after matching their labels to the best one (Hungarian on the contingency table). With
``refine`` the voted partition is then refined by k-means: the heads find the basin, k-means
settles the borders. The probability reported is the voters' mean (matched) probability of the
final cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from phyloclr.cluster.config import ClusterConfig


@dataclass(frozen=True)
class Candidate:
    """One head's partition of the unmutated sequences and its label-free scores."""

    run: int
    head: int
    cut: float  # mean fraction of the neighbour-graph links leaving a cluster (lower: better)
    silhouette: float
    labels: np.ndarray  # (N,) in the head's own labels
    n_clusters: int  # the head's number of outputs
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


def kmeans_candidates(
    spaces: dict[str, np.ndarray], graph: np.ndarray, n_clusters: int, cfg: ClusterConfig
) -> list[tuple[Candidate, np.ndarray]]:
    """``cfg.kmeans`` k-means partitions (scikit-learn, each the least-inertia of 10 starts, as
    plain k-means is run; seeds ``cfg.seed`` + j) in each of ``spaces`` (name → (N, D); the
    standardised one is ``"kmeans"``), scored like heads on ``graph`` (N, m) and in the
    standardised space, with their (N, n_clusters) responsibilities in their own space: the
    pool then holds the partitions plain k-mer k-means would give, and the label-free ranking
    chooses. (Single starts were tried first: their poor local optima, two groups merged and
    one split, can score well by the cut.)"""
    from sklearn.cluster import KMeans

    out = []
    for name, x in spaces.items():
        for j in range(cfg.kmeans):
            labels = KMeans(n_clusters, n_init=10, random_state=cfg.seed + j).fit_predict(x)
            resp = kmeans_refine(x, labels, n_clusters, max_iter=0)
            out.append((_pool_candidate(labels, j, name, spaces, graph, n_clusters, cfg), resp))
    return out


def _pool_candidate(
    labels: np.ndarray, head: int, source: str, spaces: dict[str, np.ndarray], graph: np.ndarray,
    n_clusters: int, cfg: ClusterConfig,
) -> Candidate:  # fmt: skip
    """A partition that is not a head's (k-means, agglomerative), scored like a head: its cut
    of ``graph``, silhouette and clade separation in the standardised space."""
    sil = silhouette(spaces["kmeans"], labels, cfg.silhouette_sample, cfg.seed)
    return Candidate(-1, head, neighbour_cut(graph, labels), sil, labels, n_clusters,
                     source=source, separation=separation(spaces["kmeans"], labels))  # fmt: skip


def hierarchical_candidates(
    spaces: dict[str, np.ndarray], graph: np.ndarray, n_clusters: int, cfg: ClusterConfig
) -> list[tuple[Candidate, np.ndarray]]:
    """Agglomerative partitions (scikit-learn; Ward's linkage and average linkage of cosine
    distances) in each of ``spaces`` (name → (N, D); the standardised one is ``"kmeans"``),
    scored like heads on ``graph`` (N, m), each with its one-hot (N, n_clusters) labels as
    probabilities (a hard partition: voted as it is, its probability is 1 for its own cluster
    and 0 for a sequence the final refinement moves). Deterministic; sources ``ward`` /
    ``average``, ``-raw`` for the raw space. Both linkages need the N × N distances, so there
    are none above ``cfg.hierarchical_limit`` rows."""
    from sklearn.cluster import AgglomerativeClustering

    if not cfg.hierarchical or len(graph) > cfg.hierarchical_limit:
        return []
    out = []
    for name, x in spaces.items():
        suffix = name.removeprefix("kmeans")
        for linkage in cfg.hierarchical:
            metric = "euclidean" if linkage == "ward" else "cosine"
            model = AgglomerativeClustering(n_clusters, linkage=linkage, metric=metric)
            labels = model.fit_predict(x)
            resp = np.eye(n_clusters, dtype=np.float32)[labels]  # a hard partition
            cand = _pool_candidate(labels, 0, linkage + suffix, spaces, graph, n_clusters, cfg)
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
    for n in {c.n_clusters for c in candidates}:
        idx = [i for i, c in enumerate(candidates) if c.n_clusters == n]
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


def kmeans_refine(
    space: np.ndarray, labels: np.ndarray, n_clusters: int, max_iter: int = 100
) -> np.ndarray:
    """Lloyd's k-means in ``space`` (N, D), started from the centroids of the clusters that
    ``labels`` (N,) uses → (N, n_clusters) responsibilities of the refined partition under an
    isotropic Gaussian mixture with the k-means variance (clusters ``labels`` leaves empty stay
    empty; a cluster that loses every member keeps its centroid)."""
    n = len(labels)
    used = np.unique(labels)
    out = np.zeros((n, n_clusters), dtype=np.float32)
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


def label_mapping(reference: np.ndarray, other: np.ndarray, n_clusters: int) -> np.ndarray:
    """(n_clusters,) new label of each of ``other``'s clusters so that they best overlap
    ``reference``'s (Hungarian on the contingency table; no ground truth involved)."""
    from scipy.optimize import linear_sum_assignment

    table = np.zeros((n_clusters, n_clusters))
    np.add.at(table, (other, reference), 1)
    rows, cols = linear_sum_assignment(-table)
    mapping = np.arange(n_clusters)
    mapping[rows] = cols
    return mapping


def refined_candidate(
    cand: Candidate, space: np.ndarray, graph: np.ndarray, cfg: ClusterConfig
) -> tuple[Candidate, np.ndarray]:
    """``cand``'s partition refined by k-means in ``space`` (N, D) (:func:`kmeans_refine`), scored
    like a head on ``graph`` (N, m) → (candidate, its (N, K) k-means responsibilities)."""
    resp = kmeans_refine(space, cand.labels, cand.n_clusters)
    labels = resp.argmax(1)
    sil = silhouette(space, labels, cfg.silhouette_sample, cfg.seed)
    return Candidate(cand.run, cand.head, neighbour_cut(graph, labels), sil, labels,
                     cand.n_clusters, refined=True,
                     separation=separation(space, labels)), resp  # fmt: skip


def ranked(
    candidates: Sequence[tuple[Candidate, np.ndarray]], n_clusters: int, cfg: ClusterConfig
) -> list[tuple[Candidate, np.ndarray]]:
    """The candidates with ``n_clusters`` outputs that may be voted (refined ones only with
    ``cfg.rank_refined``), best first by ``cfg.select`` (stable: ties keep their order), with
    their ranks among these set (:func:`with_ranks`)."""
    pool = [
        c
        for c in candidates
        if c[0].n_clusters == n_clusters and (cfg.rank_refined or not c[0].refined)
    ]
    pool = _with_ranks(pool)
    return sorted(pool, key=lambda c: c[0].rank_key(cfg.select))


@dataclass(frozen=True)
class Consensus:
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
    candidates: Sequence[tuple[Candidate, np.ndarray]], space: np.ndarray, n_clusters: int,
    cfg: ClusterConfig,
) -> Consensus:  # fmt: skip
    """Vote the :func:`voters` best of ``candidates`` (each with its (N, n_clusters)
    probabilities: a head's softmax, or a refined partition's k-means responsibilities) and,
    with ``cfg.refine``, refine the vote by k-means in ``space`` (N, D)."""
    chosen = ranked(candidates, n_clusters, cfg)[
        : voters(cfg)
    ]  # K chosen: one head per run (+ refined)
    voted, mean_prob, agree = vote_partitions([c[1] for c in chosen], n_clusters)
    final = kmeans_refine(space, voted, n_clusters).argmax(1) if cfg.refine else voted
    return Consensus(final, mean_prob[np.arange(len(final)), final], voted, agree, chosen)


def candidate_scores(c: Candidate) -> dict[str, object]:
    return {
        "source": c.source,
        "run": c.run,
        "head": c.head,
        "k": c.n_clusters,
        "refined": c.refined,
        "cut": round(c.cut, 4),
        "silhouette": round(c.silhouette, 4),
        "rank_cut": c.rank_cut,
        "rank_silhouette": c.rank_silhouette,
        "separation": round(c.separation, 4),
        "rank_separation": c.rank_separation,
    }


def vote_partitions(
    probs: list[np.ndarray], n_clusters: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Majority vote of partitions given as (N, n_clusters) probabilities, labels matched to
    the first (which also breaks ties) → (final labels (N,), mean matched probabilities
    (N, n_clusters), number of partitions agreeing with the final label (N,))."""
    reference = probs[0].argmax(1)
    n = len(reference)
    counts = np.zeros((n, n_clusters))
    counts[np.arange(n), reference] += 0.5
    total = np.zeros((n, n_clusters))
    agree = np.zeros(n, dtype=np.int64)
    matched = []
    for p in probs:
        labels = p.argmax(1)
        mapping = label_mapping(reference, labels, n_clusters)
        matched.append(mapping[labels])
        counts[np.arange(n), mapping[labels]] += 1.0
        aligned = np.empty_like(p)
        aligned[:, mapping] = p
        total += aligned
    final = counts.argmax(1)
    for labels in matched:
        agree += labels == final
    return final, total / len(probs), agree
