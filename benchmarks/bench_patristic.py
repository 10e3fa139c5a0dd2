"""Patristic distances: phyloclr's one-pass matrix vs ete3 pair by pair, side by side.

Usage: python benchmarks/bench_patristic.py [--pairwise-n 400] [--sizes 1000 2000 5000 10000]
"""

from __future__ import annotations

import argparse
import platform
import random
import time

import ete3
import numpy as np

from phyloclr.evolution.patristic import patristic_distances
from phyloclr.io.newick import Tree


def random_tree(n: int, seed: int) -> str:
    random.seed(seed)
    t = ete3.Tree()
    t.populate(n, random_branches=True)
    return str(t.write(format=5))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairwise-n", type=int, default=400)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, python {platform.python_version()}")

    n = args.pairwise_n
    newick = random_tree(n, 0)
    tree = Tree.from_newick(newick)
    t0 = time.perf_counter()
    ours = patristic_distances(tree)
    t_ours = time.perf_counter() - t0
    ete = ete3.Tree(newick)
    leaves = {leaf.name: leaf for leaf in ete.iter_leaves()}
    names = tree.leaf_names
    t0 = time.perf_counter()
    ref = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            ref[i, j] = ref[j, i] = leaves[names[i]].get_distance(leaves[names[j]])
    t_ete = time.perf_counter() - t0
    assert np.allclose(ours, ref)
    print(
        f"n={n}: one-pass {t_ours:.3f} s, ete3 pair by pair {t_ete:.1f} s, "
        f"ratio {t_ete / t_ours:.0f}x (matrices equal)"
    )
    for size in args.sizes:
        tree = Tree.from_newick(random_tree(size, size))
        t0 = time.perf_counter()
        d = patristic_distances(tree)
        elapsed = time.perf_counter() - t0
        print(f"n={size}: one-pass {elapsed:.2f} s, matrix {d.nbytes / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
