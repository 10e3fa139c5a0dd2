"""The default model's training corpus with the held-out families kept out (issue 6).

    python benchmarks/training_corpus.py --corpus /tmp/corpus/training.fasta \\
        --out /tmp/corpus/training_clean.fasta [--workers 2]

The pretraining benchmark scores models on the members of its held-out families
(benchmarks/heldout_families.txt, from the eggNOG alignments and the Pfam seeds). A raw
corpus (UniProt, bacterial proteomes) may hold those very proteins or their homologs, so
excluding the families by id is not enough: the corpus and every held-out member are put
through the de novo homology search together, and every corpus protein whose family (connected
component) reaches a held-out member is dropped. Proteins with no homolog in the corpus
(singletons) are dropped too: they would only give mutation views. Writes the kept proteins
and a JSON report next to them (``OUT.json``). The edge store goes to ``--store`` (pass the
family cache's ``edges`` directory and ``phyloclr pretrain`` reuses it).

``--method mmseqs`` is for corpora of hundreds of thousands of proteins, where an all-against-all
search is too slow on 2 cores: MMseqs2 clusters the corpus (``easy-cluster``, E ≤ 1e-5, ≥ 50 %
coverage of both, ``-s 5.7``: its cascaded clustering grows about linearly), searches every
held-out protein against the corpus (``easy-search -s 7.5``, E ≤ 1e-3, any coverage: more
sensitive than the families' own rule), and drops every cluster holding a hit, then the
singletons. Each kept protein's header names its cluster (``ID family=REPRESENTATIVE``), so
``phyloclr pretrain`` trains on the clusters with ``families.label_pattern: 'family=(\\S+)'``
(configs/sketch-model.yaml); ``OUT.labels.tsv`` holds the same (id, cluster) pairs for
``probe_transfer.py --labels``. MMseqs2's outputs stay in ``--work`` and are reused.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from phyloclr.families import build_families
from phyloclr.families.homology import homology_components
from phyloclr.io.fasta import read_fasta

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "protein"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--heldout", type=Path, default=ROOT / "benchmarks" / "heldout_families.txt")
    ap.add_argument(
        "--heldout-fasta", type=Path, action="append", default=[],
        help="proteins to hold out too, e.g. a development set (repeatable)",
    )  # fmt: skip
    ap.add_argument(
        "--no-families", action="store_true",
        help="hold out only --heldout-fasta, not the benchmark's held-out families",
    )  # fmt: skip
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--method", choices=("prefilter", "mmseqs"), default="prefilter")
    ap.add_argument("--work", type=Path, default=None, help="MMseqs2 work directory (kept)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    held = {
        line.strip()
        for line in args.heldout.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    held_seqs: list[str] = []
    if not args.no_families:
        fset = build_families([SHARED / "trimal_eggnog", ROOT / "data" / "protein" / "seeds"])
        held_seqs = [r.seq for f in fset.families if f.id in held for r in f.records]
    for path in args.heldout_fasta:
        held_seqs.extend(r.seq for r in read_fasta(path))
    corpus = read_fasta(args.corpus)
    if args.method == "mmseqs":
        mmseqs_clean(corpus, held_seqs, args)
        return
    t0 = time.perf_counter()
    res = homology_components(
        [r.seq for r in corpus] + held_seqs,
        store_dir=args.store,
        workers=args.workers,
    )
    labels = res.labels
    tainted = set(labels[len(corpus) :].tolist())
    sizes = np.bincount(labels[: len(corpus)], minlength=labels.max() + 1)
    ours = labels[: len(corpus)]
    clean = ~np.isin(ours, list(tainted))
    keep = clean & (sizes[ours] >= 2)
    with args.out.open("w") as fh:
        for rec, k in zip(corpus, keep.tolist(), strict=True):
            if k:
                fh.write(f">{rec.id}\n{rec.seq}\n")
    report = {
        "corpus": str(args.corpus),
        "proteins": len(corpus),
        "held_out_families": 0 if args.no_families else len(held),
        "held_out_fasta": [str(p) for p in args.heldout_fasta],
        "held_out_members": len(held_seqs),
        "dropped_held_out_homologs": int((~clean).sum()),
        "dropped_singletons": int((clean & (sizes[ours] < 2)).sum()),
        "families_kept": len(np.unique(ours[keep])),
        "kept": int(keep.sum()),
        "search_s": round(time.perf_counter() - t0, 1),
    }
    Path(str(args.out) + ".json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))


def mmseqs_clean(corpus: list, held_seqs: list[str], args: argparse.Namespace) -> None:  # type: ignore[type-arg]
    """The ``--method mmseqs`` path (module docstring)."""
    from phyloclr.families.mmseqs import require_binary, run_mmseqs

    mm = require_binary()
    work = args.work or Path(str(args.out) + ".mmseqs")
    work.mkdir(parents=True, exist_ok=True)
    threads = str(args.workers)
    held_fa = work / "held.fasta"
    held_fa.write_text("".join(f">h{i}\n{s}\n" for i, s in enumerate(held_seqs)))
    t0 = time.perf_counter()
    clusters = work / "clu_cluster.tsv"
    if not clusters.exists():
        run_mmseqs(mm, ["easy-cluster", str(args.corpus), str(work / "clu"),
                        str(work / "tmp-clu"), "-e", "1e-5", "-c", "0.5", "--cov-mode", "0",
                        "-s", "5.7", "--threads", threads], "easy-cluster")  # fmt: skip
    cluster_s = time.perf_counter() - t0
    hits = work / "held_hits.m8"
    if not hits.exists():
        run_mmseqs(mm, ["easy-search", str(held_fa), str(args.corpus), str(hits),
                        str(work / "tmp-s"), "-e", "1e-3", "-s", "7.5", "--max-seqs", "1000",
                        "--threads", threads], "easy-search")  # fmt: skip
    search_s = time.perf_counter() - t0 - cluster_s
    rep_of: dict[str, str] = {}
    for line in clusters.read_text().splitlines():
        rep, member = line.split("\t")[:2]
        rep_of[member] = rep
    tainted_members = {line.split("\t")[1] for line in hits.read_text().splitlines() if line}
    tainted = {rep_of[m] for m in tainted_members if m in rep_of}
    sizes: dict[str, int] = {}
    for rep in rep_of.values():
        sizes[rep] = sizes.get(rep, 0) + 1
    kept = 0
    labels_out = Path(str(args.out).removesuffix(".fasta") + ".labels.tsv")
    with args.out.open("w") as fh, labels_out.open("w") as lab:
        for rec in corpus:
            rep = rep_of.get(rec.id)
            if rep is None or rep in tainted or sizes[rep] < 2:
                continue
            fh.write(f">{rec.id} family={rep}\n{rec.seq}\n")
            lab.write(f"{rec.id}\t{rep}\n")
            kept += 1
    in_tainted = sum(1 for r in corpus if rep_of.get(r.id) in tainted)
    clean_reps = [rep_of[r.id] for r in corpus if r.id in rep_of and rep_of[r.id] not in tainted]
    report = {
        "corpus": str(args.corpus),
        "method": "mmseqs",
        "proteins": len(corpus),
        "held_out_members": len(held_seqs),
        "clusters": len(sizes),
        "dropped_held_out_homologs": in_tainted,
        "dropped_singletons": sum(1 for rep in clean_reps if sizes[rep] < 2),
        "families_kept": len({rep for rep in clean_reps if sizes[rep] >= 2}),
        "kept": kept,
        "cluster_s": round(cluster_s, 1),
        "search_s": round(search_s, 1),
    }  # fmt: skip
    Path(str(args.out) + ".json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
