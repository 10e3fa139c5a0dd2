"""Unsupervised clustering of DNA sequences with Twin Contrastive Learning (TCL).

A backbone (k-mer frequency vector + MLP, as DeLUCS, or FCGR image + CNN, as CGRclust) feeds an
instance head, trained with NT-Xent over the 2N views (τ_I), and ``heads`` cluster heads (softmax
over C clusters), each trained with the cluster-level loss of :mod:`phyloclr.objectives.tcl` (τ_C,
entropy term). The two views of a sequence are a weak mutation of it and a strong mutation of one
of its nearest relatives (evolution as the augmentation): with K given, of its
round(``neighbours_per_cluster`` × N / K) nearest, about half an expected cluster, at least
``neighbours`` and at most ``neighbours_max`` (:func:`relatives_count`); with K chosen, of its
``neighbours`` nearest; with ``neighbours = 0`` both are mutations of the sequence itself, as
CGRclust. Relatives are the nearest sequences by cosine distance of standardised k-mer frequencies
(PCA to ``neighbour_dims``, the same space for every seed: the seed changes training only), or,
with ``--input phylo``, the nearest leaves of a given tree (patristic distance) or rows of a given
MSA (p-distance), or, with ``relatives = "mash"``, the nearest of the ``relative_pool`` k-mer
neighbours whose Mash distance (k-mer Jaccard converted to substitutions per site,
:mod:`phyloclr.evolution.mash`) lies in ``relative_window``: the evolutionary distance between the
two views is then a setting, as for the protein views (a sequence with no relative in the window
gets mutation-only views). Each run takes ``steps`` optimiser steps, by default (0) with K given 20
passes over the data, at least 60 and at most 300 (:func:`auto_steps`), so the cost grows with the
input, and when K is chosen 300 (:func:`run_steps`). Views are redrawn at every step. Before any of
this, with ``orient`` (the default), sequences that their strand-free relatives show to be on the
other strand are reverse-complemented (:mod:`phyloclr.strand`; counted in the summary).

One concept per module:

- :mod:`~phyloclr.cluster.config`: :class:`ClusterConfig` and its YAML reader;
- :mod:`~phyloclr.cluster.space`: reading DNA, features, the PCA space, relatives;
- :mod:`~phyloclr.cluster.train`: the TCL model and one training run;
- :mod:`~phyloclr.cluster.select`: the candidate pool, label-free scores, ranks, vote, refinement;
- :mod:`~phyloclr.cluster.choose_k`: the choice of K by cross-run stability;
- :mod:`~phyloclr.cluster.job`: :func:`cluster_sequences`, scoring against labels, outputs.
"""

from phyloclr.cluster.choose_k import choose_k, k_stability
from phyloclr.cluster.config import ClusterConfig, load_cluster_config
from phyloclr.cluster.job import (
    ClusterJob,
    ClusterResult,
    cluster_file,
    cluster_sequences,
    prepare,
    score,
    write_outputs,
)
from phyloclr.cluster.select import (
    Candidate,
    Consensus,
    assign,
    candidate_scores,
    cluster_distances,
    hierarchical_candidates,
    kmeans_candidates,
    kmeans_refine,
    label_mapping,
    neighbour_cut,
    ranked,
    refined_candidate,
    separation,
    silhouette,
    vote_partitions,
    voters,
    with_ranks,
)
from phyloclr.cluster.space import (
    Featuriser,
    kmer_neighbours,
    mash_relatives,
    pca_space,
    phylo_neighbours,
    raw_space,
    read_dna,
    relatives_count,
)
from phyloclr.cluster.train import TCLModel, auto_steps, run_steps, train_run

__all__ = [
    "Candidate",
    "ClusterConfig",
    "ClusterJob",
    "ClusterResult",
    "Consensus",
    "Featuriser",
    "TCLModel",
    "assign",
    "auto_steps",
    "candidate_scores",
    "choose_k",
    "cluster_distances",
    "cluster_file",
    "cluster_sequences",
    "hierarchical_candidates",
    "k_stability",
    "kmeans_candidates",
    "kmeans_refine",
    "kmer_neighbours",
    "label_mapping",
    "load_cluster_config",
    "mash_relatives",
    "neighbour_cut",
    "pca_space",
    "phylo_neighbours",
    "prepare",
    "ranked",
    "raw_space",
    "read_dna",
    "refined_candidate",
    "relatives_count",
    "run_steps",
    "score",
    "separation",
    "silhouette",
    "train_run",
    "vote_partitions",
    "voters",
    "with_ranks",
    "write_outputs",
]  # fmt: skip
