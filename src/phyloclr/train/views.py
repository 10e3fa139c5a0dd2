"""Turning a batch plan (family, anchor) into the two views' sequences."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phyloclr.train.config import ViewsConfig
from phyloclr.views.batching import Pair, TrainingFamily
from phyloclr.views.mutation import MutationViews
from phyloclr.views.phylo import PhyloViewSampler, WindowSchedule


@dataclass
class ViewBatch:
    """Two lists of sequences (row i of each is a positive pair) and their bookkeeping."""

    first: list[str]
    second: list[str]
    groups: np.ndarray  # (N,) family index of each pair
    distances: list[float]  # evolutionary distance of each phylogenetic pair
    mutation_fallbacks: int  # pairs that needed mutation views in phylo mode


class ViewMaker:
    """Builds views for batches; holds the phylo sampler (and its fallback counts)."""

    def __init__(self, families: list[TrainingFamily], cfg: ViewsConfig, alphabet: str):
        self.families = families
        self.cfg = cfg
        schedule = WindowSchedule(
            start=(cfg.window_start[0], cfg.window_start[1]),
            end=(cfg.window_end[0], cfg.window_end[1]),
            units=cfg.window_units,
            kind=cfg.schedule,
        )
        self.phylo = PhyloViewSampler(schedule)
        self.mutate = MutationViews(cfg.mutation, alphabet)
        self.mutation_fallbacks = 0

    def _crop_pair(self, a: str, b: str, rng: np.random.Generator) -> tuple[str, str]:
        """Crop both to ``crop_len`` at the same relative position (homologous regions)."""
        n = self.cfg.crop_len
        if len(a) <= n and len(b) <= n:
            return a, b
        frac = rng.random()
        a = a[int(frac * max(0, len(a) - n)) :][:n]
        b = b[int(frac * max(0, len(b) - n)) :][:n]
        return a, b

    def make(self, batch: list[Pair], progress: float, rng: np.random.Generator) -> ViewBatch:
        first, second, groups, dists = [], [], [], []
        fallbacks = 0
        for pair in batch:
            fam = self.families[pair.family]
            anchor = fam.sequences[pair.anchor]
            phylo_ok = fam.size >= 2 and fam.distances is not None
            if self.cfg.mode == "phylo" and phylo_ok:
                assert fam.distances is not None
                draw = self.phylo.draw(fam.distances, pair.anchor, progress, rng)
                a, b = anchor, fam.sequences[draw.member]
                dists.append(draw.distance)
                if self.cfg.augment_phylo:
                    a, b = self.mutate(a, rng), self.mutate(b, rng)
            else:
                if self.cfg.mode == "phylo":
                    fallbacks += 1
                a, b = self.mutate(anchor, rng), self.mutate(anchor, rng)
            a, b = self._crop_pair(a, b, rng)
            first.append(a)
            second.append(b)
            groups.append(pair.family)
        self.mutation_fallbacks += fallbacks
        return ViewBatch(first, second, np.asarray(groups), dists, fallbacks)
