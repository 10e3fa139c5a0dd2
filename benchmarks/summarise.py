"""Markdown table (mean ± sd over seeds) from a benchmark's runs.jsonl."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def _stat(runs: list[dict[str, float]], key: str, fmt: str = "{:.3f}") -> str:
    vals = np.array([r[key] for r in runs if r.get(key) is not None], dtype=float)
    if not len(vals):
        return "–"
    if len(vals) == 1:
        return fmt.format(vals[0])
    return f"{fmt.format(vals.mean())} ± {fmt.format(vals.std(ddof=1))}"


def main(path: str) -> None:
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        rows[r["row"]].append(r)
    print("| row | runs | mAP | 1-NN | wall time (s) | steps |")
    print("|---|---|---|---|---|---|")
    for name, runs in rows.items():
        cells = [
            _stat(runs, "map"),
            _stat(runs, "nn1"),
            _stat(runs, "wall_s", "{:.0f}"),
            _stat(runs, "steps", "{:.0f}"),
        ]
        print(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
