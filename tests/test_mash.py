"""Mash-style distances and the relatives they choose for the strong DNA view."""

from __future__ import annotations

import numpy as np
import pytest

from phyloclr import dna
from phyloclr.cluster import ClusterConfig, mash_relatives
from phyloclr.errors import ConfigError
from phyloclr.evolution.mash import jaccard, kmer_set, mash_distance, pair_distances


def _mutant(a: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    b = a.copy()
    hit = rng.random(len(a)) < rate
    b[hit] = (b[hit] + rng.integers(1, 4, int(hit.sum()))) % 4
    return b


def test_kmer_sets_are_canonical_and_skip_ambiguous_bases() -> None:
    a = dna.encode("ACGTTGCAAC")
    assert np.array_equal(kmer_set(a, 4), kmer_set(dna.reverse_complement(a), 4))
    assert len(kmer_set(dna.encode("ACGTNACGT"), 4)) == 1  # ACGT twice; none over the N
    assert len(kmer_set(dna.encode("AC"), 4)) == 0
    with pytest.raises(ValueError):
        kmer_set(a, 32)


def test_mash_distance_tracks_substitutions() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 5000).astype(np.uint8)
    for rate in (0.01, 0.05, 0.1):
        d = float(mash_distance(jaccard(kmer_set(a, 12), kmer_set(_mutant(a, rate, rng), 12)), 12))
        assert abs(d - rate) < 0.25 * rate + 0.003
    assert float(mash_distance(0.0, 12)) == 1.0 and float(mash_distance(1.0, 12)) == 0.0
    unrelated = rng.integers(0, 4, 5000).astype(np.uint8)
    sets = [kmer_set(a, 12), kmer_set(unrelated, 12)]
    far, same = pair_distances(sets, np.array([[0, 1], [0, 0]]), 12)
    assert far > 0.5 and same == 0.0  # chance 12-mer matches only


def test_relatives_come_from_the_window() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, 3000).astype(np.uint8)
    codes = [a, _mutant(a, 0.005, rng), _mutant(a, 0.05, rng), rng.integers(0, 4, 3000)]
    codes = [c.astype(np.uint8) for c in codes]
    pool = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
    cfg = ClusterConfig(neighbours=2, relatives="mash", relative_window=(0.02, 0.2))
    rel, stats = mash_relatives(codes, pool, cfg)
    assert rel[0].tolist() == [2, 0]  # the 5 % relative; the 0.5 % one is too close: itself
    assert rel[3].tolist() == [3, 3]  # nothing related: mutation-only views of itself
    assert stats["with_relative"] == 0.75 and 0.02 <= stats["median_distance"] <= 0.2
    near = ClusterConfig(neighbours=2, relatives="mash", relative_window=(0.0, 0.02))
    assert mash_relatives(codes, pool, near)[0][0].tolist() == [1, 0]
    with pytest.raises(ConfigError, match="relative_window"):
        ClusterConfig(relative_window=(0.2, 0.1))
