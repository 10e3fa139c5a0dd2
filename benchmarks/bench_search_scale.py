"""How `phyloclr search` scales with the database (issue 23): embed, exact and faiss search,
realignment, all against all at growing sizes.

    python -m benchmarks.bench_search_scale FASTA --sizes 10000 30000 100000 \\
        [--model MODEL] [--top 50] [--threads 2] [--out rows.jsonl]

For each size N, the first N proteins of FASTA are embedded (the default model unless
``--model``), then every protein queries all N: exact blocked search (time, peak RSS) and faiss
HNSW (build and search time, and its recall of the exact top ``--top`` on 2,000 sampled
queries). Realignment is timed on 500 sampled queries and given per query. Rows go to stdout
and ``--out`` (JSON lines) with the machine.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_search import emit
from phyloclr.embed import default_model_path, embed_sequences
from phyloclr.io.fasta import iter_fasta
from phyloclr.models.store import load_model
from phyloclr.neighbours import NeighbourConfig, have_faiss, knn, recall


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fasta", type=Path)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--top", type=int, default=50)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import pyopal
    import torch

    from phyloclr.families.homology import GAP_EXTEND, GAP_OPEN

    torch.set_num_threads(args.threads)
    loaded = load_model(args.model or default_model_path())
    records = []
    for rec in iter_fasta(args.fasta):
        records.append(rec)
        if len(records) >= max(args.sizes):
            break
    rng = np.random.default_rng(0)
    for n in sorted(args.sizes):
        seqs = [r.seq for r in records[:n]]
        row: dict[str, object] = {"n": len(seqs), "top": args.top, "threads": args.threads}
        t0 = time.perf_counter()
        emb, _ = embed_sequences(loaded.encoder, loaded.alphabet, seqs)
        row["embed_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        _, exact = knn(emb, emb, args.top, NeighbourConfig(method="exact"))
        row["exact_s"] = round(time.perf_counter() - t0, 1)
        row["peak_rss_mib"] = round(peak_rss_mib())
        if have_faiss():
            import faiss

            faiss.omp_set_num_threads(args.threads)
            sample = rng.choice(len(seqs), size=min(2000, len(seqs)), replace=False)
            t0 = time.perf_counter()
            _, approx = knn(emb, emb, args.top, NeighbourConfig(method="faiss"))
            row["faiss_s"] = round(time.perf_counter() - t0, 1)
            row["faiss_recall"] = round(recall(approx[sample], exact[sample]), 4)
        aligner = pyopal.Aligner("BLOSUM62", gap_open=GAP_OPEN, gap_extend=GAP_EXTEND)
        picked = rng.choice(len(seqs), size=min(500, len(seqs)), replace=False)
        t0 = time.perf_counter()
        for qi in picked:
            targets = [seqs[int(t)] for t in exact[qi]]
            list(aligner.align(seqs[int(qi)], pyopal.Database(targets)))
        row["realign_ms_per_query"] = round(1000 * (time.perf_counter() - t0) / len(picked), 2)
        emit(row, args.out)


if __name__ == "__main__":
    main()
