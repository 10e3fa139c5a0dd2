"""Contrastive objectives: InfoNCE/NT-Xent with a pluggable critic, NWJ, SupCon."""

from phyloclr.objectives.contrastive import (
    NWJ,
    OBJECTIVES,
    InfoNCE,
    LossOutput,
    SupCon,
    alignment,
    build_objective,
    uniformity,
)

__all__ = [
    "NWJ",
    "OBJECTIVES",
    "InfoNCE",
    "LossOutput",
    "SupCon",
    "alignment",
    "build_objective",
    "uniformity",
]
