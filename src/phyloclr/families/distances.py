"""Pairwise distances for a family: patristic from its tree, else corrected from its MSA."""

from __future__ import annotations

import numpy as np
import pyhmmer.plan7 as plan7

from phyloclr.evolution.distances import msa_distances
from phyloclr.evolution.nj import neighbor_joining
from phyloclr.evolution.patristic import patristic_distances
from phyloclr.families.align import align_famsa, align_hmm
from phyloclr.families.config import FamiliesConfig
from phyloclr.families.model import Family


def compute_distances(fam: Family, cfg: FamiliesConfig, hmm: plan7.HMM | None = None) -> None:
    """Fill ``fam.distances`` (n, n) float32 and ``fam.distance_method``; align first if needed.

    Pairs whose corrected distance is undefined (saturated, or no shared column) are set to
    ``cfg.max_distance`` and counted in ``fam.saturated_pairs``.

    Order of preference: patristic distances from a given tree with branch lengths covering
    every member; else corrected distances from the alignment (aligning unaligned families
    with hmmalign when the family came from an HMM, else FAMSA). With ``cfg.build_nj`` a
    family without a tree also gets a neighbour-joining tree from those distances.
    """
    n = fam.size
    tree = fam.tree
    if (
        tree is not None
        and tree.has_branch_lengths
        and len(tree) == n
        and set(tree.leaf_names) == set(fam.names)
    ):
        dist = patristic_distances(tree)
        order = {name: i for i, name in enumerate(tree.leaf_names)}
        idx = np.array([order[name] for name in fam.names])
        fam.distances = dist[np.ix_(idx, idx)].astype(np.float32)
        fam.distance_method = "patristic"
        return
    if tree is not None and not tree.has_branch_lengths:
        fam.notes.append("tree has no branch lengths: distances come from the alignment")
    if n == 1:
        fam.distances = np.zeros((1, 1), dtype=np.float32)
        return
    if not fam.aligned:
        if not cfg.align_unaligned:
            return
        if hmm is not None:
            fam.records = align_hmm(hmm, fam.records)
            fam.alignment_origin = "hmmalign"
        else:
            fam.records = align_famsa(fam.records, cfg.threads, cfg.align_refine)
            fam.alignment_origin = "famsa"
    result = msa_distances(fam.rows, fam.alphabet, cfg.distance_model, cfg.max_distance)
    fam.distances = result.matrix.astype(np.float32)
    fam.distance_method = result.model
    fam.saturated_pairs = result.saturated + result.no_overlap
    if cfg.build_nj and fam.tree is None and n >= 3:
        fam.tree = neighbor_joining(result.matrix, fam.names)
        fam.tree_origin = "nj"
