"""Markdown table (mean ± sd over seeds) from a benchmark's runs.jsonl.

python benchmarks/summarise.py runs.jsonl            # pretraining rows (bench_pretrain.py)
python benchmarks/summarise.py cluster a.jsonl ...   # bench_cluster.py, run_idelucs.py
python benchmarks/summarise.py protein a.jsonl ...   # bench_protein.py (rows × sets)
"""

from __future__ import annotations

import json
import re
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


# ACC (%) published for the same datasets (../shared/ANCHORS.md): CGRclust, iDeLUCS, phylonium+Ward
PUBLISHED = {
    "cgrclust_01_Cypriniformes": "94.78 / — / 90.76",
    "cgrclust_02_Cyprinoidei": "91.75 / — / 71.75",
    "cgrclust_03_Cyprinidae": "81.70 / — / 72.77",
    "cgrclust_04_Cyprininae": "99.06 / — / 99.53",
    "idelucs_Actinopterygii": "— / 100.0 / —",
    "idelucs_Influenza-A": "— / 99.5 / —",
    "idelucs_HBV": "— / 100.0 / —",
    "idelucs_Ostariophysi": "— / 99.17 / —",
    "idelucs_Cyprinidae": "— / 91.05 / —",
}
CLUSTER_COLUMNS = [
    ("kmeans-6mer", "6-mer k-means"),
    ("phyloclr-kmer-single", "phyloclr single"),
    ("phyloclr-kmer-silvote", "phyloclr vote, ranked by silhouette"),
    ("phyloclr-kmer-rawrank", "phyloclr raw heads ranked (earlier default)"),
    ("phyloclr-kmer-vote", "phyloclr vote"),
    ("phyloclr-kmer-default", "**phyloclr default** (vote + k-means)"),
    ("phyloclr-kmer-olddefault", "phyloclr earlier default (300 steps, cut, heads only)"),
    ("phyloclr-kmer-select-cut-vote3", "ranked by cut"),
    ("phyloclr-kmer-select-silhouette-vote3", "ranked by silhouette"),
    ("phyloclr-kmer-nokm-select-both-vote3", "both ranks, heads only (no k-means in the pool)"),
    ("phyloclr-kmer-select-both-vote3", "both ranks, vote of 3 (default until session 25)"),
    ("phyloclr-kmer-select-both-vote1", "both ranks, best-ranked"),
    ("phyloclr-kmer-select-three-vote3", "three ranks, vote of 3"),
    ("phyloclr-kmer-select-three-vote1", "**three ranks, best-ranked** (the new default)"),
    ("phyloclr-fcgr-single", "phyloclr FCGR single"),
    ("phyloclr-fcgr-default", "phyloclr FCGR default"),
    ("idelucs", "iDeLUCS (run here)"),
]


def cluster_table(paths: list[str], metric: str = "acc") -> None:
    """One row per dataset: ``metric`` mean ± s.d. (ddof 1) over seeds per method, then the
    wall time of the first default column (k-mer when present) and the published numbers; a
    column no file has is left out."""
    runs: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    size: dict[str, tuple[int, int]] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            runs[(r["dataset"], r["method"])][r["seed"]] = r  # a later line for a seed wins
            size[r["dataset"]] = (r["n"], r["k"])
    columns = [(m, t) for m, t in CLUSTER_COLUMNS if any(key[1] == m for key in runs)]
    for stage in ("single", "vote", "default"):  # FCGR at another width or batch (--fcgr-channels)
        for method in sorted(
            {m for _, m in runs if re.fullmatch(rf"phyloclr-fcgr-c.*-{stage}", m)}
        ):
            width, batch = re.findall(r"\d+", method.split("-")[2])
            columns.append((method, f"phyloclr FCGR {width} ch., batch {batch}, {stage}"))
    timed = next((m for m, _ in columns if m.endswith("-default")), None)  # k-mer first
    if timed != "phyloclr-kmer-default" and any(
        m == "phyloclr-kmer-select-both-vote3" for m, _ in columns
    ):  # issue 20's first table: the rescored default, no fresh default column
        timed = "phyloclr-kmer-select-both-vote3"
    head = ["dataset", "n", "K"] + [t for _, t in columns]
    head += ["default time (s)", "published CGRclust / iDeLUCS / phylonium+Ward"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name in sorted(size):
        cells = [name, str(size[name][0]), str(size[name][1])]
        for method, _ in columns:
            seeds = list(runs[(name, method)].values())
            cells.append(f"{_stat(seeds, metric)} (n={len(seeds)})" if seeds else "–")
        default = list(runs[(name, timed)].values()) if timed else []
        cells.append(_stat(default, "seconds", "{:.0f}"))
        cells.append(PUBLISHED.get(name, "—"))
        print("| " + " | ".join(cells) + " |")
    auto = {name: list(runs[(name, "phyloclr-kmer-autok")].values()) for name in sorted(size)}
    if any(auto.values()):  # bench_cluster.py --choose-k
        print("\n| dataset | true K | K chosen (per seed) | stability at K chosen / true K "
              "| ACC | NMI | ARI | time (s) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for name, seeds in auto.items():
            if seeds:
                chosen = ", ".join(str(r["k_chosen"]) for r in seeds)
                stab = "; ".join(
                    " / ".join(_stability(r, k) for k in (r["k_chosen"], size[name][1]))
                    for r in seeds
                )
                stats = " | ".join(_stat(seeds, m) for m in ("acc", "nmi", "ari"))
                time_s = _stat(seeds, "seconds", "{:.0f}")
                print(f"| {name} | {size[name][1]} | {chosen} | {stab} | {stats} | {time_s} |")


def protein_table(paths: list[str]) -> None:
    """One line per method, mAP / 1-NN / recall at 1 % FP per set (mean ± sd over seeds:
    rows whose method ends in '-sN' are pooled under the name without it)."""
    cells: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    methods: list[str] = []
    sets: list[str] = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            method = re.sub(r"-s\d+$", "", r["method"])
            cells[(method, r["set"])].append(r)
            methods += [method] if method not in methods else []
            sets += [r["set"]] if r["set"] not in sets else []
    heads = " | ".join(f"{s}: mAP / 1-NN / R@1%FP (runs, s)" for s in sets)
    print(f"| method | dim | {heads} |")
    print("|---|---|" + "---|" * len(sets))
    for m in methods:
        dims = {str(r["dim"]) for s in sets for r in cells[(m, s)]}
        row = [m, ",".join(sorted(dims)) if dims != {"0"} else "–"]
        for s in sets:
            runs = cells[(m, s)]
            if not runs:
                row.append("–")
                continue
            stats = " / ".join(_stat(runs, key) for key in ("map", "nn1", "recall_1fp"))
            row.append(f"{stats} ({len(runs)}, {_stat(runs, 'wall_s', '{:.0f}')})")
        print("| " + " | ".join(row) + " |")


def _stability(row: dict, k: int) -> str:
    """A --choose-k row's cross-run stability at K ('?' when not recorded)."""
    found = [s["stability"] for s in row.get("k_scores", []) if s["k"] == k]
    return f"{found[0]:.2f}" if found else "?"


if __name__ == "__main__":
    if sys.argv[1] == "cluster":
        metric = "acc"
        files = sys.argv[2:]
        if files and files[0].startswith("--metric="):
            metric, files = files[0].split("=", 1)[1], files[1:]
        cluster_table(files, metric)
    elif sys.argv[1] == "protein":
        protein_table(sys.argv[2:])
    else:
        main(sys.argv[1])
