"""The cost of a default ``phyloclr cluster`` call against 6-mer k-means, side by side (issue 20).

For each labelled dataset folder: 6-mer frequencies + scikit-learn k-means (n_init = 10, the
benchmark's baseline) in this process, then ``phyloclr cluster FASTA --n-clusters K --labels
labels.csv`` with every other setting at its default, as a fresh process (imports included)
whose wall time and peak memory (summed PSS of the process tree) are recorded. One JSON line
per dataset is appended to ``--out``.

    python -m benchmarks.bench_cluster_speed DIR [DIR ...] --out speed.jsonl [--threads 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_cluster import dataset_fasta, kmeans_6mer
from benchmarks.bench_families import MemoryWatch, machine
from phyloclr.cluster import read_dna
from phyloclr.evaluate import hungarian_accuracy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=0, help="phyloclr --threads (0: torch's)")
    args = ap.parse_args()
    for folder in args.folders:
        fasta = dataset_fasta(folder)
        records, _ = read_dna(fasta)
        labels = dict(csv.reader((folder / "labels.csv").open()))
        y = np.array([labels[r.id] for r in records])
        k = len(set(y))
        t = time.perf_counter()
        pred = kmeans_6mer(records, k, 0)
        kmeans_s = time.perf_counter() - t
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "phyloclr.cli", "cluster", str(fasta), "--n-clusters",
                   str(k), "--labels", str(folder / "labels.csv"), "--out", tmp,
                   "--threads", str(args.threads)]  # fmt: skip
            t = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            watch = MemoryWatch(proc.pid)
            _, stderr = proc.communicate()
            watch.stop()
            seconds = time.perf_counter() - t
            if proc.returncode:
                raise SystemExit(f"{folder}: phyloclr cluster failed: {stderr.decode()[-2000:]}")
            summary = json.loads((Path(tmp) / "summary.json").read_text())
        row = {"dataset": folder.name, "n": len(records), "k": k,
               "median_length": int(np.median([len(r.seq) for r in records])),
               "kmeans_6mer_s": round(kmeans_s, 1),
               "kmeans_6mer_acc": round(hungarian_accuracy(y, pred), 4),
               "phyloclr_s": round(seconds, 1), "phyloclr_acc": round(summary["scores"]["acc"], 4),
               "steps": summary["steps_per_run"], "peak_pss_mib": watch.peak_pss >> 20,
               "ratio": round(seconds / kmeans_s, 1), "threads": args.threads,
               "machine": machine()}  # fmt: skip
        with args.out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
