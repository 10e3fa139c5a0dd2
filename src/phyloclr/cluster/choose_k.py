"""Choosing K when it is not given: every run trains one cluster head per K in
2..``max_clusters`` on a shared backbone; the stability of K is the mean adjusted Rand index
between the runs' K-cluster partitions (each refined by k-means when ``refine`` is on, so that
runs are compared on the basins they found, not on their borders), and K is the smallest K whose
stability is at least ``k_stability`` and a local maximum, or the most stable K when none is. On
nested taxa this finds the first level every run reproduces, often coarser than the rank a user
has in mind (benchmarks/RESULTS.md)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from phyloclr.cluster.select import Candidate, kmeans_refine


def k_stability(
    candidates: Sequence[Candidate], space: np.ndarray | None = None
) -> list[dict[str, float]]:
    """Per K among ``candidates``' head sizes: ``stability``, the mean adjusted Rand index
    between the partitions of different runs (1: every run found the same partition), each
    first refined by k-means in ``space`` (N, D) when it is given, and ``cut``, the heads'
    mean neighbour-graph cut; sorted by K."""
    from itertools import combinations

    from sklearn.metrics import adjusted_rand_score

    out = []
    for k in sorted({c.n_clusters for c in candidates}):
        group = [c for c in candidates if c.n_clusters == k]
        labels = [c.labels if space is None else kmeans_refine(space, c.labels, k).argmax(1)
                  for c in group]  # fmt: skip
        pairs = [
            adjusted_rand_score(labels[i], labels[j])
            for i, j in combinations(range(len(group)), 2)
            if group[i].run != group[j].run
        ]
        out.append({
            "k": k,
            "stability": round(float(np.mean(pairs)) if pairs else 0.0, 4),
            "cut": round(float(np.mean([c.cut for c in group])), 4),
        })  # fmt: skip
    return out


def choose_k(scores: Sequence[dict[str, float]], floor: float) -> int:
    """The smallest K whose stability is at least ``floor`` and a local maximum (≥ the next
    smaller K's, > the next larger K's); with none, the most stable K (the smaller on ties).
    ``scores``: :func:`k_stability`'s list, sorted by K."""
    if not scores:
        raise ValueError("no K to choose from")
    s = [x["stability"] for x in scores]
    for i, x in enumerate(scores):
        if s[i] < floor:
            continue
        if (i == 0 or s[i] >= s[i - 1]) and (i == len(s) - 1 or s[i] > s[i + 1]):
            return int(x["k"])
    return int(max(scores, key=lambda x: (x["stability"], -x["k"]))["k"])
