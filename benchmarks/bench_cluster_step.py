"""Seconds per TCL training step of ``phyloclr cluster``, k-mer vs FCGR input, side by side.

Same data (a labelled set in ../shared/data/dna), same process, one thread; each item of
``--steps`` is ``input[:fcgr_channels[:batch]]=steps`` (defaults: 128 channels, batch 256):

    python -m benchmarks.bench_cluster_step [--dataset cgrclust_01_Cypriniformes]
        [--steps kmer=20,fcgr=3,fcgr:16:128=10,kmer:128:128=10]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from benchmarks.bench_cluster import DATA, dataset_fasta
from phyloclr import dna
from phyloclr.cluster import (
    ClusterConfig,
    Featuriser,
    kmer_neighbours,
    pca_space,
    read_dna,
    train_run,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="cgrclust_01_Cypriniformes")
    ap.add_argument("--steps", default="kmer=20,fcgr=3")
    args = ap.parse_args()
    torch.set_num_threads(1)
    folder = DATA / args.dataset
    records, _ = read_dna(dataset_fasta(folder))
    codes = [dna.encode(r.seq) for r in records]
    for item in args.steps.split(","):
        spec, steps = item.split("=")
        kind, *rest = spec.split(":")
        defaults = [ClusterConfig.fcgr_channels, ClusterConfig.batch_size]
        width, batch = ([int(v) for v in rest] + defaults[len(rest) :])[:2]
        cfg = ClusterConfig(n_clusters=3, input=kind, steps=int(steps), runs=1, threads=1,
                            device="cpu", fcgr_channels=width, batch_size=batch)  # fmt: skip
        feats = Featuriser(codes, cfg)
        relatives = kmer_neighbours(
            pca_space(codes, feats.standardised, cfg.neighbour_dims), cfg.neighbours
        )
        stamps: list[float] = []

        def tick(_stage: str, _done: int, _total: int | None, stamps: list[float] = stamps) -> None:
            stamps.append(time.perf_counter())

        train_run(codes, feats, relatives, cfg, [3] * cfg.heads, 0, torch.device("cpu"), tick, 0)
        per_step = float(np.diff(stamps).mean())
        minutes = per_step * ClusterConfig().runs * ClusterConfig().steps / 60  # the defaults
        print(json.dumps({"input": kind, "fcgr_channels": width, "dataset": args.dataset,
                          "batch": batch, "seconds_per_step": round(per_step, 3),
                          "default_minutes": round(minutes, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
