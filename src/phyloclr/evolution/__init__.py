"""Evolutionary distances: patristic from trees, corrected distances from MSAs, NJ trees."""

from phyloclr.evolution.distances import DISTANCE_MODELS, msa_distances, p_distances
from phyloclr.evolution.nj import neighbor_joining
from phyloclr.evolution.patristic import patristic_distances

__all__ = [
    "DISTANCE_MODELS",
    "msa_distances",
    "neighbor_joining",
    "p_distances",
    "patristic_distances",
]
