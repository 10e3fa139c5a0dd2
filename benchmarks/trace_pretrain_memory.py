"""Memory of `phyloclr pretrain`, stage by stage (issue 22).

    python -m benchmarks.trace_pretrain_memory CORPUS.fasta --config CONFIG.yaml --out RUN \
        [--cache-dir CACHE] [--every 5]

Runs :func:`phyloclr.train.job.pretrain_files` in this process (families read from or written
to the cache, then training and the stages after it) under a
:class:`benchmarks.bench_families.MemoryWatch` (this process and its family workers, sampled
every ``--every`` seconds), each sample filed under the stage the progress callback last named.
Writes RUN.rss.tsv (seconds, stage, PSS MiB) beside the run directory and prints one JSON
line: each stage's first and last second and peak PSS / RSS (MiB), the run's peaks and wall.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from benchmarks.bench_families import MemoryWatch


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
    start = time.perf_counter()
    log = args.out.parent / f"{args.out.name}.rss.tsv"
    log.unlink(missing_ok=True)
    watch = MemoryWatch(os.getpid(), args.every, log)
    watch.stage = "families"
    built = [False]

    def progress(name: str, done: int | None = None, total: int | None = None) -> None:
        watch.stage = name if built[0] else f"families: {name}"

    def on_families(fset: object, missing: list[str]) -> None:
        built[0] = True
        watch.stage = "spectra (fit_idf) and set-up"  # until training reports its first step

    pretrain_files([args.corpus], args.out, load_pretrain_config(args.config),
                   cache_dir=args.cache_dir, progress=progress,
                   on_families=on_families)  # fmt: skip
    watch.stop()
    print(json.dumps({"stages": watch.stages, "peak_pss_mib": watch.peak_pss >> 20,
                      "peak_rss_mib": watch.peak_rss >> 20,
                      "wall_s": round(time.perf_counter() - start, 1),
                      "corpus": str(args.corpus), "config": str(args.config)}))  # fmt: skip


if __name__ == "__main__":
    main()
