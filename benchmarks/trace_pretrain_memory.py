"""Resident memory of `phyloclr pretrain`, stage by stage (issue 22).

    python -m benchmarks.trace_pretrain_memory CORPUS.fasta --config CONFIG.yaml --out RUN \
        [--cache-dir CACHE] [--every 5]

Runs :func:`phyloclr.train.job.pretrain_files` in this process (families read from or written
to the cache, then training and the stages after it) and samples the process's RSS every
``--every`` seconds, labelled with the stage the progress callback last named. Writes
RUN.rss.tsv (seconds, stage, MiB) beside the run directory and prints one JSON line: each
stage's first second, last second and peak RSS (MiB), the run's peak and its wall time.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path


def rss_mib() -> int:
    """This process's resident set size (MiB), from /proc (Linux)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return 0


def main() -> None:
    from phyloclr.train import load_pretrain_config
    from phyloclr.train.job import pretrain_files

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--every", type=float, default=5.0)
    args = ap.parse_args()
    start = time.time()
    stage = ["families"]
    stages: dict[str, dict[str, float]] = {}
    lock = threading.Lock()

    def note(now: float, rss: int) -> None:
        with lock:
            s = stages.setdefault(stage[0], {"first_s": now, "last_s": now, "peak_mib": rss})
            s["last_s"], s["peak_mib"] = now, max(s["peak_mib"], rss)

    def sample(log: Path) -> None:
        with log.open("w") as fh:
            while True:
                now, rss = round(time.time() - start, 1), rss_mib()
                note(now, rss)
                fh.write(f"{now}\t{stage[0]}\t{rss}\n")
                fh.flush()
                time.sleep(args.every)

    built = [False]

    def progress(name: str, done: int | None = None, total: int | None = None) -> None:
        name = name if built[0] else f"families: {name}"
        if name != stage[0]:
            stage[0] = name
            note(round(time.time() - start, 1), rss_mib())

    def on_families(fset: object, missing: list[str]) -> None:
        built[0] = True
        stage[0] = "spectra (fit_idf) and set-up"  # until training reports its first step

    log = args.out.parent / f"{args.out.name}.rss.tsv"
    threading.Thread(target=sample, args=(log,), daemon=True).start()
    pretrain_files([args.corpus], args.out, load_pretrain_config(args.config),
                   cache_dir=args.cache_dir, progress=progress,
                   on_families=on_families)  # fmt: skip
    note(round(time.time() - start, 1), rss_mib())
    peak = max(s["peak_mib"] for s in stages.values())
    print(json.dumps({"stages": stages, "peak_mib": peak,
                      "wall_s": round(time.time() - start, 1), "corpus": str(args.corpus),
                      "config": str(args.config)}))  # fmt: skip


if __name__ == "__main__":
    main()
