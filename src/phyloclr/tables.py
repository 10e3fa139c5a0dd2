"""Writing tables atomically, with the config that produced them in a header comment."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from phyloclr import __version__
from phyloclr.fsutil import atomic_path


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "NA" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_tsv(
    path: str | Path, rows: Sequence[dict[str, object]], kind: str, config_json: str
) -> None:
    """Write ``rows`` as TSV; line 1 is ``# phyloclr VERSION KIND config=JSON``.

    Written to a temporary file in the same directory and renamed, so a reader never sees a
    partial table (read it back with ``pandas.read_csv(path, sep="\\t", comment="#")``).
    """
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        fh.write(f"# phyloclr {__version__} {kind} config={config_json}\n")
        if rows:
            writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
            writer.writerow(list(rows[0]))
            for row in rows:
                writer.writerow([_fmt(v) for v in row.values()])
