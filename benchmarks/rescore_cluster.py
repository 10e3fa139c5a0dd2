"""The current code's label-free selection (rank, vote, k-means refinement) applied to the
partitions that ``bench_cluster.py --save`` kept: what a change to the PCA space or to the
selection rule does to the same trained runs, without training again. One JSON line per saved
call (K given, k-mer input, default settings): dataset, seed, ACC, sequences right.

    python -m benchmarks.rescore_cluster cand/*-kmer-*.npz [--no-rank-refined]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.bench_cluster import DATA, dataset_fasta
from phyloclr.cluster import Candidate, ClusterConfig, assign, prepare, read_dna, separation
from phyloclr.evaluate import hungarian_accuracy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("saved", nargs="+", type=Path, help="<dataset>-kmer-<seed>.npz")
    ap.add_argument("--no-rank-refined", action="store_true")
    args = ap.parse_args()
    spaces: dict[str, np.ndarray] = {}
    for path in args.saved:
        name, seed = path.stem.rsplit("-kmer-", 1)
        z = np.load(path)
        k = int(z["k"][0])
        cfg = ClusterConfig(n_clusters=k, rank_refined=not args.no_rank_refined)
        if name not in spaces:
            spaces[name] = prepare(read_dna(dataset_fasta(DATA / name))[0], cfg)[3]
        n = len(z["y"])
        pool = [
            (Candidate(int(z["run"][i]), 0, float(z["cut"][i]), float(z["silhouette"][i]),
                       z["labels"][i], k, bool(z["refined"][i]),
                       separation=separation(spaces[name], z["labels"][i])),
             np.eye(k, dtype=np.float32)[z["labels"][i]])
            for i in range(len(z["labels"]))
        ]  # fmt: skip  # saved best first; the vote reads labels only, so one-hot stands in
        final = assign(pool, spaces[name], k, cfg).final
        acc = hungarian_accuracy(z["y"], final)
        print(json.dumps({"dataset": name, "seed": int(seed), "acc": acc, "right": round(acc * n),
                          "n": n}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
