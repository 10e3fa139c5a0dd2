"""The k-mer space clustering works in: reading DNA, the network's input features, the PCA space
of standardised (or raw) k-mer frequencies, and each sequence's relatives in it (k-mer
neighbours, Mash-distance relatives, or the nearest leaves of a given tree or rows of an MSA).
Everything here is independent of the run's seed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from phyloclr import dna
from phyloclr.cluster.config import ClusterConfig
from phyloclr.dna import normalise
from phyloclr.errors import InputError
from phyloclr.io.fasta import iter_fasta
from phyloclr.io.sequences import SeqRecord, check_unique_ids, fits_alphabet
from phyloclr.neighbours import NeighbourConfig, chosen_method, neighbour_graph


class Featuriser:
    """Coded sequences → network input: standardised k-mer frequencies (B, 4^k), each k-mer
    centred and scaled by its mean and s.d. over the unmutated sequences (as DeLUCS), or FCGR
    images (B, 1, 2^k, 2^k), each min-max scaled then z-scored (as CGRclust)."""

    def __init__(self, codes: Sequence[np.ndarray], cfg: ClusterConfig, chunk: int = 2048):
        self.k, self.image = cfg.k, cfg.input == "fcgr"
        self.mean, self.scale = dna.kmer_standardiser(codes, cfg.k, chunk=chunk)

    def standardised(self, codes: Sequence[np.ndarray]) -> np.ndarray:
        """(B, 4^k) standardised k-mer frequencies."""
        return (dna.kmer_frequencies(codes, self.k) - self.mean) * self.scale

    def __call__(self, codes: Sequence[np.ndarray]) -> torch.Tensor:
        if not self.image:
            return torch.from_numpy(self.standardised(codes))
        return torch.from_numpy(normalise(dna.fcgr(codes, self.k))).unsqueeze(1)


def read_dna(path: str | Path) -> tuple[list[SeqRecord], dict[str, int]]:
    """Validated DNA records; counts of ambiguous bases and of too-short records."""
    records = list(iter_fasta(path))
    check_unique_ids(records, path)
    ambiguous = 0
    for rec in records:
        if not fits_alphabet(rec.seq, "dna"):
            raise InputError(path, "not a nucleotide sequence (cluster takes DNA/RNA)", rec.id)
        ambiguous += sum(rec.seq.count(c) for c in "RYKMSWBDHVN")
    return records, {"ambiguous_bases": ambiguous}


def pca_space(
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


def raw_space(codes: Sequence[np.ndarray], cfg: ClusterConfig) -> np.ndarray:
    """(N, ``neighbour_dims``) PCA of the raw (not standardised) k-mer frequencies: the space
    of plain k-mer k-means, where common k-mers weigh most."""
    return pca_space(codes, lambda c: dna.kmer_frequencies(c, cfg.k), cfg.neighbour_dims)


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


def relatives_count(cfg: ClusterConfig, n: int) -> int:
    """How many nearest k-mer neighbours of a sequence its strong view draws from: with K
    given, about half an expected cluster, round(``neighbours_per_cluster`` × n / K), at least
    ``neighbours`` and at most ``neighbours_max`` (or ``neighbours``, if larger); else (K
    chosen, or the share 0) ``neighbours``; 0 stays 0 (mutation-only views). Relatives that
    reach half a cluster teach the heads the rank K asks for, not only genera
    (benchmarks/RESULTS.md, issue 20, session 36); a fixed 50 broke clusters of 12–16
    sequences."""
    if cfg.neighbours == 0 or not cfg.n_clusters or cfg.neighbours_per_cluster <= 0:
        return cfg.neighbours
    share = round(cfg.neighbours_per_cluster * n / cfg.n_clusters)
    return int(min(max(share, cfg.neighbours), max(cfg.neighbours_max, cfg.neighbours)))


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
