"""Phylogenetic views: the positive for an anchor is a homolog at a scheduled distance."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from phyloclr.config import check_literals


@dataclass(frozen=True)
class WindowSchedule:
    """A distance window [lo, hi] that moves from ``start`` to ``end`` over training.

    units: 'absolute' (the family's distance units, e.g. substitutions per site) or 'quantile'
      (rank of the distance among the anchor's distances to its other family members,
      0 = nearest homolog, 1 = farthest), which puts families of any divergence on one scale.
    kind: 'constant' (always ``start``), 'linear' or 'cosine' interpolation from start to end.
    """

    start: tuple[float, float] = (0.0, 1.0)
    end: tuple[float, float] = (0.0, 1.0)
    units: Literal["absolute", "quantile"] = "quantile"
    kind: Literal["constant", "linear", "cosine"] = "constant"

    def __post_init__(self) -> None:
        check_literals(self)
        for lo, hi in (self.start, self.end):
            if lo > hi or lo < 0:
                raise ValueError(f"a window needs 0 ≤ lo ≤ hi, got [{lo}, {hi}]")
            if self.units == "quantile" and hi > 1:
                raise ValueError("quantile windows lie within [0, 1]")
        if self.kind not in ("constant", "linear", "cosine"):
            raise ValueError(f"unknown schedule kind {self.kind!r}")

    def window(self, progress: float) -> tuple[float, float]:
        """The window at ``progress`` ∈ [0, 1] of training."""
        if self.kind == "constant":
            return self.start
        t = min(max(progress, 0.0), 1.0)
        if self.kind == "cosine":
            t = 0.5 - 0.5 * math.cos(math.pi * t)
        lo = self.start[0] + t * (self.end[0] - self.start[0])
        hi = self.start[1] + t * (self.end[1] - self.start[1])
        return lo, hi


@dataclass
class PositiveDraw:
    member: int
    distance: float
    fell_back: bool


class PhyloViewSampler:
    """Draws positives for anchors from a family's distance matrix and counts fallbacks."""

    def __init__(self, schedule: WindowSchedule):
        self.schedule = schedule
        self.draws = 0
        self.fallbacks = 0

    def draw(
        self, distances: np.ndarray, anchor: int, progress: float, rng: np.random.Generator
    ) -> PositiveDraw:
        """A member j ≠ anchor with d(anchor, j) in the current window, uniformly; when none
        lies in it, the member nearest to the window (a fallback, counted)."""
        n = distances.shape[0]
        if n < 2:
            raise ValueError("a phylogenetic positive needs a family of at least 2 members")
        others = np.delete(np.arange(n), anchor)
        d = distances[anchor, others].astype(np.float64)
        lo, hi = self.schedule.window(progress)
        if self.schedule.units == "quantile":
            ranks = np.empty(len(d))
            ranks[np.argsort(d, kind="stable")] = np.arange(len(d))
            key = ranks / max(len(d) - 1, 1)
        else:
            key = d
        inside = np.flatnonzero((key >= lo) & (key <= hi))
        self.draws += 1
        if inside.size:
            k = int(inside[rng.integers(inside.size)])
            return PositiveDraw(int(others[k]), float(d[k]), False)
        gap = np.where(key < lo, lo - key, key - hi)
        nearest = np.flatnonzero(gap == gap.min())
        k = int(nearest[rng.integers(nearest.size)])
        self.fallbacks += 1
        return PositiveDraw(int(others[k]), float(d[k]), True)

    def state(self) -> dict[str, int]:
        return {"draws": self.draws, "fallbacks": self.fallbacks}

    def load_state(self, state: dict[str, int]) -> None:
        self.draws = int(state["draws"])
        self.fallbacks = int(state["fallbacks"])
