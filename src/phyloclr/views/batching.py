"""Batches of positive pairs: m anchors per family, many families, bucketed by length under a
token budget. The sampler's state (RNG and queued batches) is saved in checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from phyloclr.families.model import Family


@dataclass
class TrainingFamily:
    """What training needs of a family: member sequences and their distance matrix."""

    id: str
    sequences: list[str]
    distances: np.ndarray | None

    @classmethod
    def from_family(cls, fam: Family) -> TrainingFamily:
        return cls(fam.id, [r.seq for r in fam.records], fam.distances)

    @property
    def size(self) -> int:
        return len(self.sequences)


@dataclass
class Pair:
    """One positive pair to build: family index and anchor member (positive drawn later)."""

    family: int
    anchor: int


class FamilyBatchSampler:
    """Yields batches (lists of Pair) forever.

    A pool is one pass over the families in random order, ``m`` anchors from each (without
    replacement where the family is large enough). Pool entries are sorted by length (with
    ±20% jitter, so that batches still mix lengths somewhat) and cut into batches whose padded
    size, 2 views × pairs × longest sequence, stays within ``batch_tokens`` and whose pair count
    is at most ``max_pairs``. Batch order is shuffled.

    Hard negatives: with probability ``hard_negatives`` × progress (annealed from 0 at the start
    of training), a family is placed next to its nearest family (cosine of mean 3-mer
    composition, a cheap profile) so that the two share a batch and serve as each other's
    negatives.
    """

    def __init__(
        self,
        families: list[TrainingFamily],
        m: int,
        batch_tokens: int,
        max_len: int,
        seed: int,
        max_pairs: int = 512,
        min_pairs: int = 4,
        hard_negatives: float = 0.0,
        alphabet: str = "protein",
    ):
        if not families:
            raise ValueError("no families to sample from")
        if m < 1:
            raise ValueError("m (anchors per family) must be ≥ 1")
        self.families = families
        self.m = m
        self.batch_tokens = batch_tokens
        self.max_len = max_len
        self.max_pairs = max_pairs
        self.min_pairs = min_pairs
        self.rng = np.random.default_rng(seed)
        self.queue: list[list[tuple[int, int]]] = []
        self.pools = 0
        self._length = np.array(
            [min(max_len, max(len(s) for s in f.sequences)) for f in families], dtype=np.float64
        )
        if not 0.0 <= hard_negatives <= 1.0:
            raise ValueError("hard_negatives must lie in [0, 1]")
        self.hard_negatives = hard_negatives
        self.neighbour = (
            nearest_families(families, alphabet)
            if hard_negatives > 0 and len(families) > 1
            else None
        )

    def _refill(self, progress: float) -> None:
        order = self.rng.permutation(len(self.families))
        keys = self._length * self.rng.uniform(0.8, 1.2, len(self.families))
        if self.neighbour is not None:
            p_hard = self.hard_negatives * min(max(progress, 0.0), 1.0)
            pulled = np.flatnonzero(self.rng.random(len(self.families)) < p_hard)
            for fp in pulled.tolist():  # one at a time: mutual neighbours end up side by side
                keys[fp] = keys[self.neighbour[fp]] + 1e-6
        entries: list[tuple[float, int, list[int]]] = []
        for fi in order.tolist():
            fam = self.families[fi]
            anchors = self.rng.choice(fam.size, size=self.m, replace=fam.size < self.m).tolist()
            entries.append((float(keys[fi]), fi, anchors))
        entries.sort(key=lambda e: e[0])
        batches: list[list[tuple[int, int]]] = []
        current: list[tuple[int, int]] = []
        longest = 0.0
        for _, f, anchors in entries:
            new_longest = max(longest, self._length[f])
            n_pairs = len(current) + len(anchors)
            if current and (
                2 * n_pairs * new_longest > self.batch_tokens or n_pairs > self.max_pairs
            ):
                batches.append(current)
                current, new_longest = [], self._length[f]
            current.extend((f, a) for a in anchors)
            longest = new_longest
        if current:
            if batches and len(current) < self.min_pairs:
                batches[-1].extend(current)
            else:
                batches.append(current)
        self.rng.shuffle(batches)
        self.queue.extend(batches)
        self.pools += 1

    def next_batch(self, progress: float = 0.0) -> list[Pair]:
        """The next batch; ``progress`` ∈ [0, 1] anneals the hard-negative rate."""
        while not self.queue:
            self._refill(progress)
        return [Pair(f, a) for f, a in self.queue.pop(0)]

    def state(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "queue": [list(batch) for batch in self.queue],
            "pools": self.pools,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.queue = [[(int(f), int(a)) for f, a in batch] for batch in state["queue"]]
        self.pools = int(state["pools"])


#: families whose cosines to all others :func:`nearest_families` holds at a time
NEAREST_BLOCK = 4096


def nearest_families(families: list[TrainingFamily], alphabet: str, sample: int = 20) -> np.ndarray:
    """(F,) index of each family's nearest other family by mean 3-mer composition (cosine)."""
    from phyloclr.metrics import kmer_composition

    letters = "ACGT" if alphabet == "dna" else "ACDEFGHIKLMNPQRSTVWY"
    profiles = np.stack(
        [kmer_composition(f.sequences[:sample], 3, letters).mean(0) for f in families]
    )
    profiles /= np.maximum(np.linalg.norm(profiles, axis=1, keepdims=True), 1e-12)
    nearest = np.empty(len(families), np.int64)
    for a in range(0, len(families), NEAREST_BLOCK):  # (block, F) cosines at a time, not (F, F)
        sim = profiles[a : a + NEAREST_BLOCK] @ profiles.T
        sim[np.arange(len(sim)), np.arange(a, a + len(sim))] = -np.inf
        nearest[a : a + len(sim)] = sim.argmax(1)
    return nearest
