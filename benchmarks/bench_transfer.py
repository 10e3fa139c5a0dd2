"""Is the reliability of `phyloclr search --labels` calibrated? (issue 23)

    python -m benchmarks.bench_transfer --set DEVSETS/go-function --model MODEL [--out rows.jsonl]

The set's groups are split in half at random. The database holds the first half's proteins
but one per group (held back as queries whose group is present) and none of the second half's
(queries whose group is absent, as most proteins of a new proteome are). Every query gets a
transferred label and a reliability; rows report, per reliability bin, the share of transfers
that were right, and the expected calibration error (mean |reliability − right| over bins,
weighted by count), for both kinds of query together and apart.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.bench_protein import DevSet
from phyloclr.embed import EmbedConfig, embed_fasta
from phyloclr.search import SearchConfig, search
from phyloclr.transfer import transfer_labels


def calibration(rel: np.ndarray, right: np.ndarray, bins: int = 5) -> dict[str, object]:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(rel, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            table.append([round(float(edges[b]), 1), int(m.sum()), round(float(right[m].mean()), 3),
                          round(float(rel[m].mean()), 3)])  # fmt: skip
            ece += m.sum() / len(rel) * abs(right[m].mean() - rel[m].mean())
    return {"ece": round(float(ece), 4), "bins": table, "n": len(rel),
            "right": round(float(right.mean()), 4)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    ds = DevSet(args.set)
    rng = np.random.default_rng(args.seed)
    groups = sorted(set(ds.labels))
    present = set(rng.permutation(groups)[: len(groups) // 2].tolist())
    db, queries, seen = [], [], set()
    for i, lab in enumerate(ds.labels):
        if lab in present and lab in seen:
            db.append(i)
        else:
            queries.append(i)  # the first of each present group, and every absent protein
            seen.add(lab)
    with tempfile.TemporaryDirectory() as tmp:
        dbf, qf = Path(tmp) / "db.fa", Path(tmp) / "q.fa"
        dbf.write_text("".join(f">{ds.ids[i]}\n{ds.seqs[i]}\n" for i in db))
        qf.write_text("".join(f">{ds.ids[i]}\n{ds.seqs[i]}\n" for i in queries))
        embed_fasta(dbf, Path(tmp) / "db.h5", args.model, EmbedConfig())
        cfg = SearchConfig(top=50)
        result = search(qf, Path(tmp) / "db.h5", config=cfg)
        labels = {ds.ids[i]: ds.labels[i] for i in db}
        transfers = transfer_labels(result, labels, cfg)
    truth = {ds.ids[i]: ds.labels[i] for i in queries}
    rel = np.array([t.reliability for t in transfers])
    right = np.array([float(t.label == truth[t.query]) for t in transfers])
    inside = np.array([truth[t.query] in present for t in transfers])
    row = {"set": ds.name, "model": str(args.model), "db": len(db), "queries": len(queries),
           "all": calibration(rel, right), "group_present": calibration(rel[inside], right[inside]),
           "group_absent": calibration(rel[~inside], right[~inside])}  # fmt: skip
    print(json.dumps(row))
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
