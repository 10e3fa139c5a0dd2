"""Seconds per TCL training step of ``phyloclr cluster``, k-mer vs FCGR input, side by side.

Same data (a labelled set in ../shared/data/dna), same process, one thread, default batch:

    python -m benchmarks.bench_cluster_step [--dataset cgrclust_01_Cypriniformes]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from benchmarks.bench_cluster import DATA
from phyloclr.cluster import (
    ClusterConfig,
    Featuriser,
    _train_run,
    kmer_neighbours,
    read_dna,
    reduce,
)
from phyloclr.views import dna


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="cgrclust_01_Cypriniformes")
    ap.add_argument("--steps", default="kmer=20,fcgr=3")
    args = ap.parse_args()
    torch.set_num_threads(1)
    folder = DATA / args.dataset
    records, _ = read_dna(next(p for p in folder.iterdir() if p.suffix in (".fas", ".fasta")))
    codes = [dna.encode(r.seq) for r in records]
    for item in args.steps.split(","):
        kind, steps = item.split("=")
        cfg = ClusterConfig(n_clusters=3, input=kind, steps=int(steps), runs=1, threads=1,  # type: ignore[arg-type]
                            device="cpu")  # fmt: skip
        feats = Featuriser(codes, cfg)
        relatives = kmer_neighbours(reduce(feats, codes, cfg.neighbour_dims, 0), cfg.neighbours)
        stamps: list[float] = []

        def tick(_stage: str, _done: int, _total: int | None, stamps: list[float] = stamps) -> None:
            stamps.append(time.perf_counter())

        _train_run(codes, feats, relatives, cfg, [3] * cfg.heads, 0, torch.device("cpu"), tick, 0)
        per_step = float(np.diff(stamps).mean())
        minutes = per_step * ClusterConfig().runs * ClusterConfig().steps / 60  # the defaults
        print(json.dumps({"input": kind, "dataset": args.dataset, "batch": cfg.batch_size,
                          "seconds_per_step": round(per_step, 3),
                          "default_minutes": round(minutes, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
