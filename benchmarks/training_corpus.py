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


if __name__ == "__main__":
    main()
