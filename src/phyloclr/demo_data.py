"""Write families as an unaligned FASTA plus an ``id,label`` CSV (for demos and evaluation).

``python -m phyloclr.demo_data INPUT... OUT.fa OUT.csv``: every member of every family found in
INPUT (anything ``phyloclr families`` reads) becomes one record ``FAMILY|MEMBER``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from phyloclr.families import build_families


def write_labelled_fasta(inputs: list[str], fasta: Path, labels: Path) -> int:
    fset = build_families(inputs, use_cache=False)
    n = 0
    with fasta.open("w") as fa, labels.open("w", newline="") as lab:
        writer = csv.writer(lab)
        writer.writerow(["id", "label"])
        for fam in fset.families:
            for rec in fam.records:
                rid = f"{fam.id}|{rec.id}"
                fa.write(f">{rid}\n{rec.seq}\n")
                writer.writerow([rid, fam.id])
                n += 1
    return n


if __name__ == "__main__":
    *inputs, out_fa, out_csv = sys.argv[1:]
    write_labelled_fasta(inputs, Path(out_fa), Path(out_csv))
