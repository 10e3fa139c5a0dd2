"""Patristic (path-length) distances between all leaves of a tree, in one pass."""

from __future__ import annotations

import numpy as np

from phyloclr.io.newick import Tree


def patristic_distances(tree: Tree) -> np.ndarray:
    """All-pairs patristic distances, (n_leaves, n_leaves) float64, in ``tree.leaf_names`` order.

    One post-order pass: at each internal node v with children c_1..c_k, every pair of leaves
    (a in c_i, b in c_j, i < j) has v as its last common ancestor, so
    ``d(a, b) = depth(a) + depth(b) - 2 depth(v)``; each pair is written exactly once, O(n²) total.
    """
    arr = tree.arrays()
    n_nodes = len(arr.parent)
    depth = np.zeros(n_nodes)
    for i in range(1, n_nodes):  # pre-order: a parent precedes its children
        depth[i] = depth[arr.parent[i]] + arr.length[i]
    n = len(arr.leaves)
    leaf_pos = np.full(n_nodes, -1, dtype=np.int64)
    leaf_pos[arr.leaves] = np.arange(n)
    children: list[list[int]] = [[] for _ in range(n_nodes)]
    for i in range(1, n_nodes):
        children[arr.parent[i]].append(i)
    below: list[np.ndarray | None] = [None] * n_nodes
    dist = np.zeros((n, n))
    leaf_depth = depth[arr.leaves]
    for v in range(n_nodes - 1, -1, -1):  # reverse pre-order visits children before parents
        if not children[v]:
            below[v] = np.array([leaf_pos[v]], dtype=np.int64)
            continue
        groups = [below[c] for c in children[v]]
        for i in range(len(groups)):
            gi = groups[i]
            assert gi is not None
            for j in range(i + 1, len(groups)):
                gj = groups[j]
                assert gj is not None
                block = leaf_depth[gi][:, None] + leaf_depth[gj][None, :] - 2.0 * depth[v]
                dist[np.ix_(gi, gj)] = block
                dist[np.ix_(gj, gi)] = block.T
        below[v] = np.concatenate([g for g in groups if g is not None])
        for c in children[v]:
            below[c] = None  # free memory as we climb
    return dist
