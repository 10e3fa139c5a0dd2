"""k nearest neighbours of a million embeddings, all against all (issue 22).

Two steps:

  python -m benchmarks.bench_knn mutants --fasta metastudent.fasta --n 488200 --out m.fasta
      mutated copies of randomly drawn real proteins (BLOSUM62 substitutions at a rate drawn
      from 0.1, 0.15, ..., 0.5 per copy, 2 % short indels, a crop to ≥ 80 %; seed 0), so
      that the real proteins and these together reach a million; embed them with the same
      model as the real ones (`phyloclr embed m.fasta --model RUN --dtype float16`).
  python -m benchmarks.bench_knn run --emb real.h5 --emb mutants.h5 --k 50 --method ivf ...
      the top-k neighbours of every row among all the others (itself left out), in one process:
      wall time per stage, peak RSS, and the recall of the exact top-k on a sample of rows
      (exact blocked search of those rows against all rows). The recall is given over the
      whole top-k, and over the neighbours whose cosine rises 6 or 10 s.d. above the query's
      background (its cosines to random rows): a row with few true neighbours fills its
      top-k with the largest of its random cosines, which no index can find but by scanning.
      ``--draw N`` scores N rows drawn at random from the files. ``recall_ties`` and
      ``recall_top10_ties`` count ties as ann-benchmarks does: a found row whose cosine
      reaches the exact k-th's (less 10⁻³) is a hit, so that of identical rows (13 % of the
      million's have a twin) whichever a method returns counts.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np


def mutants(args: argparse.Namespace) -> None:
    from phyloclr.io.fasta import read_fasta
    from phyloclr.views.mutation import MutationConfig, MutationViews

    records = [(r.id, r.seq) for r in read_fasta(Path(args.fasta))]
    rng = np.random.default_rng(args.seed)
    pick = rng.integers(0, len(records), args.n)
    rates = np.linspace(0.1, 0.5, 9)  # 0.1, 0.15, ..., 0.5
    views = [
        MutationViews(
            MutationConfig(
                substitution_rate=float(r), indel_rate=0.02, mask_rate=0.0, crop_min=0.8
            ),
            "protein",
        )
        for r in rates
    ]
    with open(args.out, "w") as fh:
        for i, j in enumerate(pick):
            view = views[int(rng.integers(0, len(views)))]
            fh.write(f">mut{i}_{records[j][0]}\n{view(records[j][1], rng)}\n")


def _load(paths: list[str], limit: int | None) -> np.ndarray:
    import h5py

    parts, have = [], 0
    for p in paths:
        with h5py.File(p, "r") as f:
            take = (
                f["embeddings"].shape[0]
                if limit is None
                else min(limit - have, len(f["embeddings"]))
            )
            parts.append(np.asarray(f["embeddings"][:take], dtype=np.float16))
            have += take
        if limit is not None and have >= limit:
            break
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _strong_recall(
    found: np.ndarray, exact: np.ndarray, exact_scores: np.ndarray, s: float | np.ndarray
) -> float:
    """Share of the exact top-k neighbours with cosine ≥ s (one floor, or one a query) that
    ``found`` holds (1 where there are none, as :func:`phyloclr.neighbours.recall`)."""
    hits = total = 0
    floors = np.broadcast_to(np.asarray(s, dtype=np.float64), (len(exact),))
    for f, e, sc, floor in zip(found, exact, exact_scores, floors, strict=True):
        want = set(e[sc >= floor].tolist())
        hits, total = hits + len(want & set(f.tolist())), total + len(want)
    return hits / total if total else 1.0


def _tie_recall(
    x: np.ndarray, sample: np.ndarray, found: np.ndarray, exact_scores: np.ndarray, k: int
) -> float:
    """Recall of the top ``k`` with ties counted as ann-benchmarks counts them: a found row
    is a hit when its exact cosine to the query reaches the query's exact k-th cosine less
    10⁻³, so that of identical or equally near rows, whichever a method returns counts.
    found (Q, ≥ k) rows found for the rows ``sample`` (Q,) of ``x``; exact_scores (Q, ≥ k)."""
    from phyloclr.neighbours import unit_rows

    queries = unit_rows(x[sample])
    hits = 0
    for q, (f, kth) in enumerate(zip(found[:, :k], exact_scores[:, k - 1], strict=True)):
        f = f[f >= 0]
        cos = unit_rows(x[f]) @ queries[q]
        hits += min(k, int((cos >= kth - 1e-3).sum()))
    return hits / (k * len(sample))


def _background(
    x: np.ndarray, sample: np.ndarray, rows: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(Q,), (Q,): the mean and s.d. of each sampled row's cosine to ``rows`` rows drawn at
    random (itself left out): the noise that a neighbour's cosine must rise above."""
    from phyloclr.neighbours import unit_rows

    draw = np.sort(rng.choice(len(x), min(rows + len(sample), len(x)), replace=False))
    cos = unit_rows(x[sample]) @ unit_rows(x[draw]).T
    cos[sample[:, None] == draw[None, :]] = np.nan
    return np.nanmean(cos, axis=1), np.nanstd(cos, axis=1)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args: argparse.Namespace) -> None:
    import torch

    from phyloclr.neighbours import NeighbourConfig, knn, recall

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    x = _load(args.emb, args.limit)
    total = len(x)
    if args.draw:  # a random subset of all the rows, in their order (seed 1)
        keep = np.random.default_rng(1).choice(len(x), min(args.draw, len(x)), replace=False)
        x = np.ascontiguousarray(x[np.sort(keep)])
    t_load = time.perf_counter() - t0
    n = len(x)
    cfg = NeighbourConfig(method=args.method, exact_limit=0, ivf_cells=args.cells,
                          ivf_probe=args.probe, ivf_dims=args.dims, precision=args.precision,
                          hnsw_m=args.hnsw_m, ef_search=args.ef_search,
                          hnsw_ef_construction=args.ef_construction,
                          hnsw_storage=args.hnsw_storage,
                          symmetric=not args.no_symmetric,
                          distinct=not args.no_distinct)  # fmt: skip
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n, min(args.sample, n), replace=False))
    t1 = time.perf_counter()
    exact_s, exact = knn(x[sample], x, args.k, NeighbourConfig(method="exact"), exclude=sample)
    t_exact = time.perf_counter() - t1
    mu, sd = _background(x, sample, args.background, rng)
    t2 = time.perf_counter()
    _, found = knn(x, x, args.k, cfg, exclude=np.arange(n))
    t_knn = time.perf_counter() - t2
    row = {
        "n": n, "dim": int(x.shape[1]), "k": args.k, "method": args.method,
        **({"drawn_from": total} if args.draw else {}),
        "cells": args.cells, "probe": args.probe, "dims": args.dims,
        "precision": args.precision, "threads": args.threads,
        **({"hnsw_m": args.hnsw_m, "ef_search": args.ef_search,
            "ef_construction": args.ef_construction,
            "hnsw_storage": args.hnsw_storage} if args.method == "faiss" else {}),
        "symmetric": not args.no_symmetric, "distinct": not args.no_distinct,
        "load_s": round(t_load, 1), "knn_s": round(t_knn, 1),
        "exact_sample_s": round(t_exact, 1), "sample": len(sample),
        "exact_all_s_extrapolated": round(t_exact * n / len(sample), 0),
        "recall": round(recall(found[sample], exact), 4),
        "recall_top10": round(recall(found[sample, :10], exact[:, :10]), 4),
        "recall_ties": round(_tie_recall(x, sample, found[sample], exact_s, args.k), 4),
        "recall_top10_ties": round(
            _tie_recall(x, sample, found[sample], exact_s, min(10, args.k)), 4
        ),
        "recall_cos_0.3": round(_strong_recall(found[sample], exact, exact_s, 0.3), 4),
        "exact_cos_0.3_per_query": round(float((exact_s >= 0.3).sum(1).mean()), 2),
        "background_sd": round(float(np.median(sd)), 4),
        "exact_cos_median_1_10_k": [round(float(np.median(exact_s[:, i])), 3)
                                    for i in (0, min(9, args.k - 1), args.k - 1)],
        "peak_rss_mib": round(_peak_mib()), "machine": platform.processor() or platform.machine(),
    }  # fmt: skip
    for z in (6, 10):  # neighbours whose cosine rises z s.d. above the query's background
        floor = mu + z * sd
        row[f"recall_z{z}"] = round(_strong_recall(found[sample], exact, exact_s, floor), 4)
        row[f"exact_z{z}_per_query"] = round(float((exact_s >= floor[:, None]).sum(1).mean()), 2)
    print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="step", required=True)
    m = sub.add_parser("mutants")
    m.add_argument("--fasta", required=True)
    m.add_argument("--n", type=int, required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run")
    r.add_argument("--emb", action="append", required=True)
    r.add_argument("--limit", type=int, default=None, help="the first rows only")
    r.add_argument("--draw", type=int, default=0, help="this many rows drawn at random")
    r.add_argument("--k", type=int, default=50)
    r.add_argument("--method", default="ivf")
    r.add_argument("--cells", type=int, default=0)
    r.add_argument("--dims", type=int, default=0)
    r.add_argument("--precision", default="float32")
    r.add_argument("--probe", type=int, default=16)
    r.add_argument("--hnsw-m", type=int, default=32)
    r.add_argument("--ef-search", type=int, default=256)
    r.add_argument(
        "--hnsw-storage", default="float16", help="float16 (the default), float32 or int8"
    )
    r.add_argument("--ef-construction", type=int, default=40)
    r.add_argument(
        "--no-symmetric", action="store_true", help="no reverse pairs (NeighbourConfig.symmetric)"
    )
    r.add_argument(
        "--no-distinct",
        action="store_true",
        help="index identical rows each (NeighbourConfig.distinct off)",
    )
    r.add_argument("--sample", type=int, default=1000)
    r.add_argument("--background", type=int, default=5000, help="random rows: the noise level")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    {"mutants": mutants, "run": run}[args.step](args)


if __name__ == "__main__":
    main(sys.argv[1:])
