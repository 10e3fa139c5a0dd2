"""Views: phylogenetic positive pairs at a scheduled distance, mutation views, batching."""

from phyloclr.views.batching import FamilyBatchSampler, Pair, TrainingFamily
from phyloclr.views.mutation import MutationConfig, MutationViews
from phyloclr.views.phylo import PhyloViewSampler, WindowSchedule

__all__ = [
    "FamilyBatchSampler",
    "MutationConfig",
    "MutationViews",
    "Pair",
    "PhyloViewSampler",
    "TrainingFamily",
    "WindowSchedule",
]
