"""Screen label-free scores for ranking candidate partitions (issue 20, second pass).

For every call ``bench_cluster.py --save`` kept: the pool the default builds (the TCL heads,
their k-means refinements, and 3 k-means partitions per k-mer space from the current code), each
partition scored by every score below; a rule ranks the pool by the worst of its ranks under
the scores it names (ties: their sum), and the screen reports the ACC of the best-ranked
partition (not voted, not refined), averaged over seeds, per dataset and rule, and how many
datasets fall more than 0.005 below 6-mer k-means (the benchmark's baseline, seeds 0-2).
With ``--merged`` it also adds over-clustered partitions (k-means at 2K, clusters merged by
average linkage down to K, 3 per k-mer space) to the pool and reports the default pipeline
(``assign``) with and without them under ``--rule``.

    python -m benchmarks.cluster_scores SAVED/*.npz --data ../shared/data/dna --data DEVSETS
        [--merged --rule both --vote 3]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from scipy.stats import rankdata
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

from benchmarks.bench_cluster import kmeans_6mer
from benchmarks.cluster_selection import load, saved_sets
from phyloclr import dna
from phyloclr.cluster import (
    Candidate,
    assign,
    cluster_distances,
    kmeans_candidates,
    neighbour_cut,
    separation,
    silhouette,
)
from phyloclr.evaluate import hungarian_accuracy

RULES = [  # scores whose worst rank ranks the pool; "-" marks lower-is-better
    ("cut", "silhouette"), ("cut",), ("silhouette",), ("-inertia",),
    ("cut", "silhouette", "-inertia"), ("-global_cut", "silhouette"), ("-global_cut",),
    ("calinski",), ("-davies",), ("cut", "silhouette", "-davies"),
    ("cut", "silhouette", "-entropy"), ("closest",), ("separation",),
    ("cut", "silhouette", "closest"), ("cut", "separation"), ("silhouette", "separation"),
    ("cut", "silhouette", "separation"),
]  # fmt: skip


def scores(c: Candidate, space: np.ndarray, graph: np.ndarray, raw: np.ndarray) -> dict:
    """Every screened score of one partition (higher is better unless named with '-')."""
    y = c.labels
    share = np.bincount(y) / len(y)
    share = share[share > 0]
    within = sum(((raw[y == g] - raw[y == g].mean(0)) ** 2).sum() for g in np.unique(y))
    distance = cluster_distances(space, y)
    between = distance + np.diag(np.full(len(distance), np.inf))
    return {
        "cut": -c.cut, "silhouette": c.silhouette, "separation": separation(space, y),
        "-inertia": -within / ((raw - raw.mean(0)) ** 2).sum(),
        "-global_cut": -float((y[graph] != y[:, None]).mean()),
        "calinski": calinski_harabasz_score(space, y), "-davies": -davies_bouldin_score(space, y),
        "-entropy": float((share * np.log(share)).sum()), "closest": float(between.min()),
    }  # fmt: skip


def merged(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means at 2k in ``x`` (N, D), clusters merged by average linkage (mean cosine
    distance between their members) down to k → (N,) labels."""
    labels = KMeans(2 * k, n_init=10, random_state=seed).fit_predict(x)
    d = np.clip(cluster_distances(x, labels), 0, None)
    np.fill_diagonal(d, 0)
    group = fcluster(linkage(squareform(d, checks=False), "average"), k, "maxclust") - 1
    return group[np.unique(labels, return_inverse=True)[1]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("saved", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, action="append", default=None)
    ap.add_argument("--merged", action="store_true")
    ap.add_argument("--rule", default="both")
    ap.add_argument("--vote", type=int, default=3)
    args = ap.parse_args()
    table: dict[str, dict[str, float]] = {}
    for name, paths, records, cfg, codes, space, graph, spaces in saved_sets(args.saved, args.data):
        raw = dna.kmer_frequencies(codes, cfg.k)
        row: dict[str, list[float]] = defaultdict(list)
        for path in sorted(paths):
            y, cands = load(path, space)
            seed, k = int(path.stem.rsplit("-", 1)[1]), cands[0].n_clusters
            kc = replace(cfg, n_clusters=k, kmeans=3, seed=seed * 100)
            eye = np.eye(k)
            pool = [(c, eye[c.labels]) for c in cands if c.source == "tcl"]
            pool += kmeans_candidates(spaces, graph, k, kc)
            acc = np.array([hungarian_accuracy(y, c.labels) for c, _ in pool])
            table_s = [scores(c, space, graph, raw) for c, _ in pool]
            for rule in RULES:
                ranks = np.stack([rankdata([-s[r] for s in table_s]) for r in rule])
                best = np.lexsort((ranks.sum(0), ranks.max(0)))[0]
                row[" + ".join(rule)].append(float(acc[best]))
            row["k-means"].append(hungarian_accuracy(y, kmeans_6mer(records, k, seed)))
            if args.merged:
                more = []
                for sname, x in spaces.items():
                    for j in range(3):
                        lab = merged(x, k, seed * 100 + j)
                        c = Candidate(-1, j, neighbour_cut(graph, lab),
                                      silhouette(space, lab, cfg.silhouette_sample, cfg.seed), lab,
                                      k, source=f"merged-{sname}",
                                      separation=separation(space, lab))  # fmt: skip
                        more.append((c, eye[lab]))
                rc = replace(cfg, n_clusters=k, select=args.rule, vote=args.vote)
                for tag, p in (("pool", pool), ("pool + merged", pool + more)):
                    row[f"{args.rule} vote {args.vote}, {tag}"].append(
                        hungarian_accuracy(y, assign(p, space, k, rc).final)
                    )
                for c, _ in more:
                    row[f"merged alone ({c.source})"].append(hungarian_accuracy(y, c.labels))
        table[name] = {key: float(np.mean(v)) for key, v in row.items()}
        print(name, {key: round(v, 3) for key, v in table[name].items()}, flush=True)
    keys = [k for k in next(iter(table.values())) if k != "k-means"]
    print("\n| rule (worst of the ranks by ...) | mean ACC | sets below k-means |\n|---|---|---|")
    for key in keys:
        below = [n for n, r in table.items() if r[key] < r["k-means"] - 0.005]
        mean = np.mean([r[key] for r in table.values()])
        print(f"| {key} | {mean:.3f} | {len(below)} ({', '.join(below)}) |")
    print(f"| 6-mer k-means | {np.mean([r['k-means'] for r in table.values()]):.3f} | – |")


if __name__ == "__main__":
    main()
