"""Neighbour joining (Saitou & Nei 1987) on a distance matrix, vectorised with numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from phyloclr.io.newick import Tree


def _quote(name: str) -> str:
    if set(name) & set(" ;,():[]'\t\""):
        return "'" + name.replace("'", "''") + "'"
    return name


def neighbor_joining(dist: np.ndarray, names: Sequence[str]) -> Tree:
    """An unrooted NJ tree (written rooted at the last join) from an (n, n) distance matrix.

    Negative branch lengths are set to 0 and the difference moved to the sister branch, as
    is customary. O(n³) time, O(n²) memory.
    """
    d = np.array(dist, dtype=np.float64)
    n = len(names)
    if d.shape != (n, n):
        raise ValueError(f"distance matrix is {d.shape}, expected ({n}, {n})")
    if n == 1:
        return Tree.from_newick(f"{_quote(names[0])};")
    labels = [_quote(x) for x in names]
    active = list(range(n))
    while len(active) > 2:
        m = len(active)
        sub = d[np.ix_(active, active)]
        r = sub.sum(axis=1)
        q = (m - 2) * sub - r[:, None] - r[None, :]
        np.fill_diagonal(q, np.inf)
        i, j = divmod(int(np.argmin(q)), m)
        if i > j:
            i, j = j, i
        a, b = active[i], active[j]
        li = 0.5 * sub[i, j] + (r[i] - r[j]) / (2 * (m - 2))
        lj = sub[i, j] - li
        if li < 0:
            li, lj = 0.0, sub[i, j]
        if lj < 0:
            li, lj = sub[i, j], 0.0
        new = 0.5 * (d[a] + d[b] - sub[i, j])
        # reuse slot a for the new node, drop b
        d[a, :] = new
        d[:, a] = new
        d[a, a] = 0.0
        labels[a] = f"({labels[a]}:{li:.10g},{labels[b]}:{lj:.10g})"
        active.pop(j)
    a, b = active
    length = max(float(d[a, b]), 0.0)
    return Tree.from_newick(f"({labels[a]}:{length / 2:.10g},{labels[b]}:{length / 2:.10g});")
