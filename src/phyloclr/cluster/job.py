"""``phyloclr cluster`` as one library call: prepare the k-mer space, train the runs, pool and
rank the partitions, choose K when it is not given, vote and refine (:func:`cluster_sequences`);
score against labels and write the outputs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from phyloclr import dna
from phyloclr.cluster.choose_k import choose_k, k_stability
from phyloclr.cluster.config import ClusterConfig
from phyloclr.cluster.select import (
    Candidate,
    _with_ranks,
    assign,
    candidate_scores,
    hierarchical_candidates,
    kmeans_candidates,
    neighbour_cut,
    refined_candidate,
    separation,
    silhouette,
)
from phyloclr.cluster.space import (
    Featuriser,
    kmer_neighbours,
    mash_relatives,
    pca_space,
    phylo_neighbours,
    raw_space,
    read_dna,
    relatives_count,
)
from phyloclr.cluster.train import run_steps, train_run
from phyloclr.config import config_to_dict
from phyloclr.devices import resolve_device
from phyloclr.errors import InputError
from phyloclr.io.sequences import SeqRecord
from phyloclr.progress import Progress


@dataclass
class ClusterResult:
    ids: list[str]
    clusters: np.ndarray  # (N,) int, 0..K-1
    probability: np.ndarray  # (N,) float
    n_clusters: int
    embeddings: np.ndarray  # (N, 512) backbone output (float16-rounded) of the best head's run
    summary: dict[str, object]
    candidates: list[Candidate] = field(default_factory=list)  # heads' and refined, best first
    voted: np.ndarray | None = None  # (N,) the vote before refinement, in head labels
    space: np.ndarray | None = None  # (N, D) the k-mer PCA space partitions are refined in


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
        from phyloclr.dna import reverse_complement
        from phyloclr.strand import orient_strands

        flipped = orient_strands(codes, cfg.k, margin=cfg.orient_margin)
        for i in np.flatnonzero(flipped):
            codes[i] = reverse_complement(codes[i])
    feats = Featuriser(codes, cfg)
    return codes, flipped, feats, pca_space(codes, feats.standardised, cfg.neighbour_dims)


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
    graph, relatives, relative_stats = _graph_and_relatives(ids, codes, space, cfg)
    sizes = [cfg.n_clusters] * cfg.heads
    if not cfg.n_clusters:  # one head per K to try, none with more clusters than sequences - 1
        sizes = list(range(2, min(cfg.max_clusters, len(records) - 1) + 1))
    candidates, embeddings = _head_candidates(
        codes, feats, relatives, sizes, space, graph, cfg, device, progress
    )
    if cfg.n_clusters and (cfg.kmeans or cfg.hierarchical) and cfg.n_clusters < len(codes):
        spaces = {"kmeans": space, "kmeans-raw": raw_space(codes, cfg)}  # K < N for both
        candidates += kmeans_candidates(spaces, graph, cfg.n_clusters, cfg)
        candidates += hierarchical_candidates(spaces, graph, cfg.n_clusters, cfg)
    k_scores: list[dict[str, float]] = []
    k_used = cfg.n_clusters
    stability_of_k = None
    if not k_used:
        k_scores = k_stability([c for c, _ in candidates], space if cfg.refine else None)
        k_used = choose_k(k_scores, cfg.k_stability)
        stability_of_k = next(x["stability"] for x in k_scores if x["k"] == k_used)
        if cfg.refine and cfg.rank_refined:  # the chosen K's heads, refined
            candidates += [refined_candidate(c, space, graph, cfg)
                           for c, _ in candidates if c.n_clusters == k_used]  # fmt: skip
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
        "relatives": relative_stats,  # k-mer: how many nearest; Mash: who had one in the window
        "steps_per_run": run_steps(cfg, len(codes)),
        "reverse_complemented": int(flipped.sum()),
        "reverse_complemented_ids": [ids[i] for i in np.flatnonzero(flipped)[:100]],
        "candidates": [candidate_scores(c) for c, _ in candidates],  # best first
        "voted": len(chosen),
        "voted_sources": [c.source for c, _ in chosen],  # tcl, kmeans(-raw), ward(-raw)
        "voters_unanimous": round(float(np.mean(done.agree == len(chosen))), 4),
        "moved_by_refine": moved,
        "seconds": time.perf_counter() - t0,
    }
    return ClusterResult(
        ids, final, probability, int(k_used), embedding, summary,
        [c for c, _ in candidates], voted, space,
    )  # fmt: skip


def _graph_and_relatives(
    ids: list[str], codes: list[np.ndarray], space: np.ndarray, cfg: ClusterConfig
) -> tuple[np.ndarray, np.ndarray | None, dict[str, float]]:
    """(the (N, ``select_neighbours``) k-mer neighbour graph that ranks partitions, each
    sequence's relatives for the strong view (None: mutation-only views), what the Mash
    window found)."""
    mash = cfg.relatives == "mash" and cfg.input != "phylo" and cfg.neighbours > 0
    nearest = relatives_count(cfg, len(ids)) if cfg.input != "phylo" and not mash else 0
    width = max(cfg.select_neighbours, nearest, cfg.relative_pool if mash else 0)
    graph = kmer_neighbours(space, width, cfg.search)  # (N, m) nearest first
    relatives: np.ndarray | None = None
    relative_stats: dict[str, float] = {}
    if cfg.input == "phylo":
        relatives = phylo_neighbours(ids, cfg)
    elif mash:
        relatives, relative_stats = mash_relatives(codes, graph[:, : cfg.relative_pool], cfg)
    elif nearest > 0:
        relatives = graph[:, :nearest]
        relative_stats = {"nearest": nearest}
    return graph[:, : cfg.select_neighbours], relatives, relative_stats


def _head_candidates(
    codes: list[np.ndarray], feats: Featuriser, relatives: np.ndarray | None, sizes: list[int],
    space: np.ndarray, graph: np.ndarray, cfg: ClusterConfig, device: torch.device,
    progress: Progress | None,
) -> tuple[list[tuple[Candidate, np.ndarray]], dict[int, np.ndarray]]:  # fmt: skip
    """Train the runs → (every head's partition scored, with its (N, C) probabilities, and
    with K given its k-means refinement; run → (N, 512) float16 embeddings). Which run holds
    the best partition is known only once the whole pool (every run, the k-means partitions)
    is ranked, since ranks are relative to the pool, so every run's embeddings are kept."""
    candidates: list[tuple[Candidate, np.ndarray]] = []
    embeddings: dict[int, np.ndarray] = {}
    for run in range(cfg.runs):
        probs, emb = train_run(
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
    return candidates, embeddings


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


@dataclass
class ClusterJob:
    """What :func:`cluster_file` did: the result, the input's ambiguous-base count, and the
    scores against the labels when they were given."""

    result: ClusterResult
    counts: dict[str, int]
    scores: dict[str, object] | None


def cluster_file(
    fasta: str | Path, out_dir: str | Path, cfg: ClusterConfig, labels: str | Path | None = None,
    write_embeddings: bool = False, progress: Progress | None = None,
) -> ClusterJob:  # fmt: skip
    """What ``phyloclr cluster`` runs: read ``fasta`` (DNA), cluster it, score it against
    ``labels`` (CSV ``id,label``) when given, and write ``out_dir``/clusters.tsv and
    summary.json (and embeddings.h5, the best run's backbone output, with
    ``write_embeddings``)."""
    from phyloclr.evaluate import read_labels
    from phyloclr.io import hdf5

    records, counts = read_dna(fasta)
    lab = None if labels is None else read_labels(labels)
    result = cluster_sequences(records, cfg, progress)
    extra: dict[str, Any] = {"input_file": str(fasta), **counts}
    if lab is not None:
        extra["scores"] = score(result.ids, result.clusters, lab)
    out = Path(out_dir)
    write_outputs(result, out, extra)
    if write_embeddings:
        hdf5.write_array_file(
            out / "embeddings.h5", result.ids, result.embeddings,
            {"model": json.dumps({"name": "tcl-backbone"}),
             "config": json.dumps(result.summary["config"])},
        )  # fmt: skip
    return ClusterJob(result, counts, extra.get("scores"))
