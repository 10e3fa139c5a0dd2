"""Run iDeLUCS (pip package ``idelucs``, in its own virtual environment) on one dataset.

Run with that environment's python; writes one JSON line per seed to ``--out`` in the format of
bench_cluster.py. Two work-arounds, both outside iDeLUCS's logic: on a 2-core machine it calls
``torch.set_num_threads(cpu_count() - 2)`` = 0 and crashes, so ``cpu_count`` reports 3 (one
thread); it seeds torch/numpy with 0 at import, so each seed is set again before the run.

    /path/to/idelucs-venv/bin/python benchmarks/run_idelucs.py DATASET_DIR --out idelucs.jsonl
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first..first+seeds-1")
    args = ap.parse_args()
    multiprocessing.cpu_count = lambda: 3  # type: ignore[assignment]
    import idelucs.__main__ as idl
    import numpy as np
    import torch
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    idl.cpu_count = lambda: 3  # type: ignore[attr-defined]
    fasta = next(p for p in args.dataset.iterdir() if p.suffix in (".fas", ".fasta")).resolve()
    with (args.dataset / "labels.csv").open() as fh:
        labels = {r["id"]: r["label"] for r in csv.DictReader(fh)}
    k = len(set(labels.values()))
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        home = os.getcwd()
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            sys.argv = ["idelucs", "--sequence_file", str(fasta), "--n_clusters", str(k)]
            t = time.perf_counter()
            idl.main()
            seconds = time.perf_counter() - t
            table = next(Path(tmp).rglob("assignments.tsv"))
            rows = list(csv.DictReader(table.open(), delimiter="\t"))
            os.chdir(home)
        ids = [r["sequence_id"].split()[0] for r in rows]  # it keeps the description
        pred = np.array([int(float(r["assignment"])) for r in rows])
        truth = np.array([labels[i] for i in ids])
        codes = {c: i for i, c in enumerate(sorted(set(truth)))}
        y = np.array([codes[c] for c in truth])
        size = max(pred.max(), y.max()) + 1
        table_c = np.zeros((size, size))
        np.add.at(table_c, (pred, y), 1)
        from scipy.optimize import linear_sum_assignment

        r, c = linear_sum_assignment(-table_c)
        row = {"dataset": args.dataset.name, "n": len(y), "k": k, "method": "idelucs",
               "seed": seed, "acc": float(table_c[r, c].sum() / len(y)),
               "nmi": float(normalized_mutual_info_score(y, pred)),
               "ari": float(adjusted_rand_score(y, pred)), "seconds": seconds,
               "machine": f"{platform.machine()}, 1 thread(s)"}  # fmt: skip
        with args.out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
