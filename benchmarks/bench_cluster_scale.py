"""Clustering at scale (issue 5): ``phyloclr cluster`` on N sequences of about 1.5 kbp.

The N sequences are mutated copies (2% substitutions, transitions twice as likely as
transversions) of the 949 real Influenza-A segments of ../shared/data/dna/idelucs_Influenza-A,
labelled by the subtype of the copied sequence, so the expected clusters are known. The
command runs in a fresh process with its time and peak memory (summed PSS of the process tree,
and the largest RSS) recorded; one JSON line is appended to ``--out``.

    python -m benchmarks.bench_cluster_scale --n 100000 --out cluster_scale.jsonl --threads 2
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_families import MemoryWatch, machine
from phyloclr import dna
from phyloclr.cluster import read_dna
from phyloclr.views import dna as dna_views
from phyloclr.views.mutation import MutationConfig

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "dna" / "idelucs_Influenza-A"
_BASES = np.frombuffer(b"ACGTN", dtype=np.uint8)


def synthesise(n: int, folder: Path, seed: int) -> tuple[Path, Path, int]:
    """FASTA and labels.csv of ``n`` mutated copies of the source set → (fasta, labels, K)."""
    records, _ = read_dna(next(SOURCE.glob("*.fas")))
    labels = dict(csv.reader((SOURCE / "labels.csv").open()))
    rng = np.random.default_rng(seed)
    view = MutationConfig(transition_rate=0.0133, transversion_rate=0.0067, mask_rate=0.0,
                          crop_min=1.0)  # fmt: skip
    codes = [dna.encode(r.seq) for r in records]
    fasta, table = folder / "seqs.fasta", folder / "labels.csv"
    with fasta.open("w") as fh, table.open("w") as lab:
        lab.write("id,label\n")
        for i in range(n):
            j = int(rng.integers(len(records)))
            seq = _BASES[dna_views.mutate(codes[j], view, rng)].tobytes().decode()
            fh.write(f">s{i}_{records[j].id}\n{seq}\n")
            lab.write(f"s{i}_{records[j].id},{labels[records[j].id]}\n")
    return fasta, table, len(set(labels.values()) - {"label"})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cluster-scale-"))
    try:
        fasta, table, k = synthesise(args.n, folder, args.seed)
        out = folder / "out"
        beside = Path(sys.executable).with_name("phyloclr")  # the CLI of this environment
        cli = str(beside) if beside.exists() else shutil.which("phyloclr") or "phyloclr"
        cmd = [cli, "cluster", str(fasta), "--n-clusters",
               str(k), "--labels", str(table), "--out", str(out), "--threads",
               str(args.threads), "--device", "cpu", "--seed", str(args.seed)]  # fmt: skip
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        watch = MemoryWatch(proc.pid)
        code = proc.wait()
        watch.stop()
        wall = time.perf_counter() - t
        if code != 0:
            raise SystemExit(f"phyloclr cluster failed (exit {code})")
        summary = json.loads((out / "summary.json").read_text())
        row = {"kind": "cluster-scale", "sequences": args.n, "k": k, "wall_s": round(wall, 1),
               "peak_pss_mib": watch.peak_pss >> 20, "peak_rss_mib": watch.peak_rss >> 20,
               **{m: summary["scores"][m] for m in ("acc", "nmi", "ari")},
               "threads": args.threads, "machine": machine()}  # fmt: skip
        with args.out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
