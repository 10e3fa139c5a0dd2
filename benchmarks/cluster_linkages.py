"""What single partitions of the pool's k-mer spaces score, and what each kind of candidate in
saved pools scores (issue 20): the evidence behind ``hierarchical`` in ``phyloclr cluster``.

    python -m benchmarks.cluster_linkages --data ../shared/data/dna --data DEVSETS
    python -m benchmarks.cluster_linkages --saved SAVED/*.npz     # bench_cluster.py --save

For each labelled dataset: the ACC of Ward's and of average-linkage (cosine) agglomerative
clustering in the standardised and the raw PCA k-mer spaces of ``phyloclr cluster``, and the
mean ACC of 3 k-means fits (10 starts each) in each. Labels only score the partitions. With
``--saved``: per saved call, the best and the mean ACC of each kind of candidate (TCL heads,
refined heads, k-means, ...). One JSON line each on standard output.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.bench_cluster import dataset_fasta, datasets
from phyloclr.cluster import ClusterConfig, prepare, raw_space, read_dna
from phyloclr.evaluate import hungarian_accuracy


def linkages(folder: Path) -> dict[str, object]:
    """Single-partition ACCs of one labelled dataset folder."""
    from sklearn.cluster import AgglomerativeClustering, KMeans

    records, _ = read_dna(dataset_fasta(folder))
    labels = dict(csv.reader((folder / "labels.csv").open()))
    y = np.array([labels[r.id] for r in records])
    k = len(set(y))
    cfg = ClusterConfig(n_clusters=k)
    codes, _, _, space = prepare(records, cfg)
    row: dict[str, object] = {"dataset": folder.name, "n": len(y), "k": k}
    for name, x in (("std", space), ("raw", raw_space(codes, cfg))):
        for linkage, metric in (("ward", "euclidean"), ("average", "cosine")):
            model = AgglomerativeClustering(k, linkage=linkage, metric=metric)
            row[f"{linkage}-{name}"] = round(hungarian_accuracy(y, model.fit_predict(x)), 4)
        fits = [KMeans(k, n_init=10, random_state=s).fit_predict(x) for s in range(3)]
        row[f"kmeans-{name}"] = round(float(np.mean([hungarian_accuracy(y, f) for f in fits])), 4)
    return row


def pool_kinds(path: Path) -> dict[str, object]:
    """Best and mean ACC of each kind of candidate in one saved call."""
    z = np.load(path)
    acc = np.array([hungarian_accuracy(z["y"], lab) for lab in z["labels"]])
    kinds: dict[str, list[float]] = defaultdict(list)
    for i, source in enumerate(z["source"]):
        kinds[str(source) + ("-refined" if z["refined"][i] else "")].append(float(acc[i]))
    return {"call": path.stem, **{
        kind: {"best": round(max(v), 4), "mean": round(float(np.mean(v)), 4), "n": len(v)}
        for kind, v in sorted(kinds.items())
    }}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, action="append", default=None)
    ap.add_argument("--saved", type=Path, nargs="*", default=[])
    args = ap.parse_args()
    for path in sorted(args.saved):
        print(json.dumps(pool_kinds(path)), flush=True)
    if args.data:
        for folder in datasets(None, args.data):
            print(json.dumps(linkages(folder)), flush=True)


if __name__ == "__main__":
    main()
