"""Readers and writers: FASTA, aligned FASTA/A3M, Stockholm, Newick."""

from phyloclr.io.fasta import read_a3m, read_aligned_fasta, read_fasta
from phyloclr.io.newick import Tree, read_newick_file, read_trees
from phyloclr.io.sequences import SeqRecord, detect_alphabet
from phyloclr.io.stockholm import read_stockholm

__all__ = [
    "SeqRecord",
    "Tree",
    "detect_alphabet",
    "read_a3m",
    "read_aligned_fasta",
    "read_fasta",
    "read_newick_file",
    "read_stockholm",
    "read_trees",
]
