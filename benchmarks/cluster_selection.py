"""How well does each label-free score predict a candidate partition's ACC (issue 20)?

Reads the partitions ``bench_cluster.py --save`` kept (every TCL head, its k-means refinement,
and the k-means partitions of the pool, with their cut and silhouette) and, per dataset, gives
the Spearman rank correlation between each score and ACC over all candidates of all seeds;
per saved call, the ACC of what each selection rule returns through the real pipeline
(:func:`phyloclr.cluster.assign`: rank, vote, refine) and whether its best-ranked candidate is
the best candidate there was. Writes one JSON line per dataset and rule to ``--out`` and the
score-vs-ACC scatter plot to ``--plot``.

    python -m benchmarks.cluster_selection SAVED/*.npz --data ../shared/data/dna \\
        --data DEVSETS --out selection.jsonl --plot benchmarks/cluster_selection.png
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from benchmarks.bench_cluster import dataset_fasta, datasets, scores
from phyloclr.cluster import (
    Candidate,
    ClusterConfig,
    assign,
    hierarchical_candidates,
    kmeans_candidates,
    kmer_neighbours,
    prepare,
    raw_space,
    read_dna,
    separation,
    with_ranks,
)
from phyloclr.evaluate import hungarian_accuracy

RULES = {  # name → ClusterConfig changes
    "three": {"select": "three"},
    "cut": {"select": "cut"},
    "silhouette": {"select": "silhouette"},
    "both": {"select": "both"},
    "both-norefine": {"select": "both", "refine": False},
}


def with_agreement(candidates: list[Candidate]) -> list[float]:
    """Each candidate's mean adjusted Rand index with the others of its K (a score that was
    tried: a partition that runs and k-means starts keep finding would score high)."""
    from sklearn.metrics import adjusted_rand_score

    n = len(candidates)
    ari = np.eye(n)
    for a in range(n):
        for b in range(a + 1, n):
            ari[a, b] = ari[b, a] = adjusted_rand_score(candidates[a].labels, candidates[b].labels)
    return ((ari.sum(1) - 1) / max(1, n - 1)).tolist()


def load(path: Path, space: np.ndarray) -> tuple[np.ndarray, list[Candidate]]:
    """(labels (N,), candidates in saved order) of one saved call; the clade separation is
    computed in ``space`` (N, D) when the file predates it."""
    z = np.load(path)
    source = z["source"] if "source" in z else np.array(["tcl"] * len(z["cut"]))
    sep = z["separation"] if "separation" in z else [separation(space, x) for x in z["labels"]]
    cands = [
        Candidate(int(z["run"][i]), i, float(z["cut"][i]), float(z["silhouette"][i]),
                  z["labels"][i], int(z["k"][i]), bool(z["refined"][i]), str(source[i]),
                  separation=float(sep[i]))
        for i in range(len(z["cut"]))
    ]  # fmt: skip
    return z["y"], cands


def saved_sets(saved: list[Path], data: list[Path] | None) -> Iterator[tuple[Any, ...]]:
    """Per dataset of the saved calls (``<dataset>-kmer-<seed>.npz``), in name order: (name,
    its saved paths, records, a ClusterConfig, coded sequences, the standardised PCA space,
    the neighbour graph, the two k-mer spaces of the pool's k-means partitions)."""
    folders = {d.name: d for d in datasets(None, data)}
    by_set: dict[str, list[Path]] = defaultdict(list)
    for p in saved:
        by_set[p.stem.rsplit("-kmer-", 1)[0]].append(p)
    for name, paths in sorted(by_set.items()):
        records, _ = read_dna(dataset_fasta(folders[name]))
        cfg = ClusterConfig(n_clusters=2)
        codes, _, _, space = prepare(records, cfg)
        graph = kmer_neighbours(space, cfg.select_neighbours)
        spaces = {"kmeans": space, "kmeans-raw": raw_space(codes, cfg)}
        yield name, paths, records, cfg, codes, space, graph, spaces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("saved", nargs="+", type=Path, help="<dataset>-kmer-<seed>.npz")
    ap.add_argument("--data", type=Path, action="append", default=None)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--rows", type=Path, default=None,
                    help="also one bench_cluster-style row per call and rule (method "
                    "phyloclr-kmer-<tag>select-<rule>-vote<v>) for summarise.py")  # fmt: skip
    ap.add_argument("--tag", default="", help="in the --rows method names, e.g. 'mash-'")
    ap.add_argument("--kmeans", type=int, default=None,
                    help="replace the saved k-means partitions by this many per space from "
                    "the current code (0: none), seeded as bench_cluster seeds runs")  # fmt: skip
    ap.add_argument("--hierarchical", default="",
                    help="comma-separated linkages (ward, average) whose agglomerative "
                    "partitions (hierarchical_candidates) join each pool")  # fmt: skip
    args = ap.parse_args()
    bench_rows: list[dict[str, object]] = []
    points: dict[str, tuple[list[float], ...]] = {}
    rows = []
    for name, paths, _records, cfg, _codes, space, graph, spaces in saved_sets(
        args.saved, args.data
    ):
        cuts, sils, seps, agrees, worse, worse3, accs = [], [], [], [], [], [], []
        per_rule: dict[str, list[tuple[float, bool, float]]] = defaultdict(list)
        for path in sorted(paths):
            y, cands = load(path, space)
            seed = int(path.stem.rsplit("-", 1)[1])  # the benchmark's seed; its runs' is × 100
            if args.kmeans is not None:
                kc = replace(
                    cfg, n_clusters=cands[0].n_clusters, kmeans=args.kmeans, seed=seed * 100
                )
                cands = [c for c in cands if c.source == "tcl"]
                more = kmeans_candidates(spaces, graph, kc.n_clusters, kc) if args.kmeans else []
                cands += [c for c, _ in more]
            if args.hierarchical:
                hc = replace(cfg, n_clusters=cands[0].n_clusters,
                             hierarchical=tuple(args.hierarchical.split(",")))  # fmt: skip
                cands += [c for c, _ in hierarchical_candidates(spaces, graph, hc.n_clusters, hc)]
            if args.kmeans is not None or args.hierarchical:
                cands = [replace(c, head=i) for i, c in enumerate(cands)]  # head: its index
            acc = np.array([hungarian_accuracy(y, c.labels) for c in cands])
            cuts += [c.cut for c in cands]
            sils += [c.silhouette for c in cands]
            agrees += with_agreement(cands)
            seps += [c.separation for c in cands]
            ranked_pool = with_ranks(cands)
            worse += [max(c.rank_cut, c.rank_silhouette) / len(cands) for c in ranked_pool]
            worse3 += [max(c.rank_cut, c.rank_silhouette, c.rank_separation) / len(cands)
                       for c in ranked_pool]  # fmt: skip
            accs += acc.tolist()
            k = cands[0].n_clusters
            eye = np.eye(k)
            pool = [(c, eye[c.labels]) for c in cands]
            for rule, change in RULES.items():
                for vote in (1, 3):
                    rc = replace(cfg, n_clusters=k, vote=vote, **change)  # type: ignore[arg-type]
                    done = assign(pool, space, k, rc)
                    top = done.chosen[0][0]
                    got = scores(y, done.final)
                    method = f"phyloclr-kmer-{args.tag}select-{rule}-vote{vote}"
                    bench_rows.append({"dataset": name, "n": len(y), "k": k, "seed": seed,
                                       "method": method, **got, "seconds": 0.0,
                                       "top_source": top.source})  # fmt: skip
                    best = acc.max()
                    per_rule[f"{rule}-vote{vote}"].append(
                        (got["acc"], bool(acc[top.head] >= best - 1e-12), float(best))
                    )
        points[name] = (cuts, sils, seps, agrees, worse, worse3, accs)
        rho_cut = float(spearmanr(-np.array(cuts), accs)[0])
        rho_sil = float(spearmanr(sils, accs)[0])
        rho_agree = float(spearmanr(agrees, accs)[0])
        rho_both = float(spearmanr(-np.array(worse), accs)[0])
        rho_sep = float(spearmanr(seps, accs)[0])
        rho_three = float(spearmanr(-np.array(worse3), accs)[0])
        for rule, got in per_rule.items():
            row = {"dataset": name, "rule": rule, "calls": len(got),
                   "acc": round(float(np.mean([g[0] for g in got])), 4),
                   "acc_sd": round(float(np.std([g[0] for g in got])), 4),
                   "top_is_best": sum(g[1] for g in got),
                   "best_candidate_acc": round(float(np.mean([g[2] for g in got])), 4),
                   "spearman_cut": round(rho_cut, 3), "spearman_silhouette": round(rho_sil, 3),
                   "spearman_agreement": round(rho_agree, 3),
                   "spearman_both": round(rho_both, 3),
                   "spearman_separation": round(rho_sep, 3),
                   "spearman_three": round(rho_three, 3),
                   "candidates": len(accs)}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    with args.out.open("w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    if args.rows is not None:
        with args.rows.open("w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in bench_rows)
    if args.plot is not None:
        _plot(points, args.plot)


def _plot(points: dict[str, tuple[list[float], ...]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(2, 3, figsize=(20, 11))
    axes = grid.ravel()
    cmap = plt.get_cmap("tab20")
    for i, (name, (cuts, sils, seps, agrees, worse, worse3, accs)) in enumerate(
        sorted(points.items())
    ):
        panels = ((axes[0], cuts, -1), (axes[1], sils, 1), (axes[2], seps, 1),
                  (axes[3], agrees, 1), (axes[4], worse, -1), (axes[5], worse3, -1))  # fmt: skip
        for ax, x, sign in panels:
            rho = spearmanr(sign * np.array(x), accs)[0]
            ax.scatter(x, accs, s=6, color=cmap(i % 20), label=f"{name} (ρ={rho:.2f})")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("neighbour-graph cut (lower is better)")
    axes[1].set_xlabel("cosine silhouette (higher is better)")
    axes[2].set_xlabel("clade separation: closest clusters' distance / loosest cluster's (higher)")
    axes[3].set_xlabel("agreement: mean ARI with the other candidates (higher is better)")
    axes[4].set_xlabel("select both: worse of its cut and silhouette ranks / pool size")
    axes[5].set_xlabel("default (select three): worse of its three ranks / pool size")
    for ax in axes:
        ax.set_ylabel("ACC (Hungarian)")
        ax.legend(fontsize=6, markerscale=2)
    fig.suptitle("Every candidate partition (TCL heads, their k-means refinements, k-mer k-means) "
                 "of every seed: label-free score vs ACC", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
