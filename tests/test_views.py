"""View samplers: distance windows and schedules, mutation rates, batching under a budget."""

from __future__ import annotations

import numpy as np
import pytest

from phyloclr.models.alphabet import MASK, PROTEIN
from phyloclr.views.batching import FamilyBatchSampler, TrainingFamily
from phyloclr.views.mutation import MutationConfig, MutationViews
from phyloclr.views.phylo import PhyloViewSampler, WindowSchedule

D = np.array(
    [
        [0.0, 0.1, 0.5, 1.0, 2.0],
        [0.1, 0.0, 0.5, 1.0, 2.0],
        [0.5, 0.5, 0.0, 1.0, 2.0],
        [1.0, 1.0, 1.0, 0.0, 2.0],
        [2.0, 2.0, 2.0, 2.0, 0.0],
    ]
)


def test_schedules() -> None:
    s = WindowSchedule(start=(0.0, 0.2), end=(0.8, 1.0), units="quantile", kind="linear")
    assert s.window(0.0) == (0.0, 0.2) and s.window(1.0) == (0.8, 1.0)
    assert s.window(0.5) == pytest.approx((0.4, 0.6))
    c = WindowSchedule(start=(0.0, 0.2), end=(0.8, 1.0), units="quantile", kind="cosine")
    assert c.window(0.5) == pytest.approx((0.4, 0.6)) and c.window(0.25)[0] < 0.2
    assert WindowSchedule(start=(0, 1), end=(2, 3), units="absolute").window(0.7) == (0, 1)
    with pytest.raises(ValueError):
        WindowSchedule(start=(0.5, 0.2))


def test_absolute_window_draws_inside() -> None:
    rng = np.random.default_rng(0)
    sampler = PhyloViewSampler(WindowSchedule(start=(0.4, 1.2), units="absolute"))
    members = {sampler.draw(D, 0, 0.0, rng).member for _ in range(200)}
    assert members == {2, 3}
    assert sampler.fallbacks == 0 and sampler.draws == 200


def test_fallback_to_nearest_and_counted() -> None:
    rng = np.random.default_rng(0)
    sampler = PhyloViewSampler(WindowSchedule(start=(3.0, 4.0), units="absolute"))
    draw = sampler.draw(D, 0, 0.0, rng)
    assert draw.fell_back and draw.member == 4 and draw.distance == 2.0
    assert sampler.fallbacks == 1


def test_quantile_window_moves_near_to_far() -> None:
    rng = np.random.default_rng(0)
    sched = WindowSchedule(start=(0.0, 0.0), end=(1.0, 1.0), units="quantile", kind="linear")
    sampler = PhyloViewSampler(sched)
    assert sampler.draw(D, 0, 0.0, rng).member == 1  # nearest homolog first
    assert sampler.draw(D, 0, 1.0, rng).member == 4  # farthest at the end


def test_protein_mutation_rate_and_blosum_bias() -> None:
    seq = "ACDEFGHIKLMNPQRSTVWY" * 200
    views = MutationViews(
        MutationConfig(substitution_rate=0.2, mask_rate=0.0, crop_min=1.0), "protein"
    )
    out = views(seq, np.random.default_rng(0))
    changed = np.mean([a != b for a, b in zip(seq, out, strict=True)])
    assert changed == pytest.approx(0.2, abs=0.03)
    # BLOSUM62 favours I→V/L/M over I→W
    subs = [
        b
        for a, b in zip(seq * 5, views(seq * 5, np.random.default_rng(1)), strict=True)
        if a == "I" and b != "I"
    ]
    assert sum(s in "VLM" for s in subs) > 5 * max(1, sum(s == "W" for s in subs))


def test_dna_transitions_and_transversions() -> None:
    seq = "ACGT" * 5000
    cfg = MutationConfig(transition_rate=0.1, transversion_rate=0.05, mask_rate=0.0, crop_min=1.0)
    out = MutationViews(cfg, "dna")(seq, np.random.default_rng(0))
    ti = sum((a + b) in ("AG", "GA", "CT", "TC") for a, b in zip(seq, out, strict=True))
    tv = sum(a != b for a, b in zip(seq, out, strict=True)) - ti
    assert ti / len(seq) == pytest.approx(0.1, abs=0.01)
    assert tv / len(seq) == pytest.approx(0.05, abs=0.01)


def test_masking_cropping_reverse_complement() -> None:
    cfg = MutationConfig(substitution_rate=0.0, mask_rate=0.5, crop_min=0.5)
    out = MutationViews(cfg, "protein")("M" * 1000, np.random.default_rng(0))
    assert 500 <= len(out) <= 1000
    assert (PROTEIN.encode(out) == MASK).mean() == pytest.approx(0.5, abs=0.06)
    rc = MutationConfig(
        transition_rate=0, transversion_rate=0, mask_rate=0, crop_min=1.0, reverse_complement=1.0
    )
    assert MutationViews(rc, "dna")("AACG", np.random.default_rng(0)) == "CGTT"


def _families(n: int = 12) -> list[TrainingFamily]:
    rng = np.random.default_rng(0)
    fams = []
    for i in range(n):
        length = int(rng.integers(50, 400))
        fams.append(TrainingFamily(f"f{i}", ["A" * length] * 4, np.ones((4, 4)) - np.eye(4)))
    return fams


def test_batches_respect_token_budget_and_m_per_family() -> None:
    fams = _families()
    sampler = FamilyBatchSampler(fams, m=2, batch_tokens=4000, max_len=300, seed=0, min_pairs=1)
    seen = 0
    for _ in range(30):
        batch = sampler.next_batch()
        longest = max(min(300, len(fams[p.family].sequences[0])) for p in batch)
        assert 2 * len(batch) * longest <= 4000 or len(batch) <= 2
        counts = np.bincount([p.family for p in batch])
        assert set(counts[counts > 0]) == {2}
        seen += len(batch)
    assert sampler.pools >= 2


def test_sampler_state_round_trip() -> None:
    fams = _families()
    a = FamilyBatchSampler(fams, m=2, batch_tokens=4000, max_len=300, seed=3)
    for _ in range(5):
        a.next_batch()
    state = a.state()
    expected = [a.next_batch() for _ in range(10)]
    b = FamilyBatchSampler(fams, m=2, batch_tokens=4000, max_len=300, seed=99)
    b.load_state(state)
    assert [b.next_batch() for _ in range(10)] == expected


def test_hard_negatives_batch_neighbours_together_as_training_goes_on(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    base = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 100)) for _ in range(10)]
    fams = []
    for i, s in enumerate(base):  # two near-identical families per base, lengths spread apart
        for j in range(2):
            length = 50 + 40 * (2 * i + j) % 300
            fams.append(
                TrainingFamily(
                    f"f{i}{j}", [(s * 4)[j : j + length]] * 3, np.ones((3, 3)) - np.eye(3)
                )
            )
    sampler = FamilyBatchSampler(
        fams, m=1, batch_tokens=1200, max_len=400, seed=0, hard_negatives=1.0
    )
    assert sampler.neighbour is not None
    assert all(sampler.neighbour[2 * i] == 2 * i + 1 for i in range(10))
    # the same nearest families when the cosines are held a few families at a time
    import phyloclr.views.batching as batching

    monkeypatch.setattr(batching, "NEAREST_BLOCK", 3)
    assert np.array_equal(batching.nearest_families(fams, "protein"), sampler.neighbour)

    def together(progress: float) -> float:
        hits = total = 0
        for _ in range(200):
            fam_ids = {p.family for p in sampler.next_batch(progress)}
            for f in fam_ids:
                total += 1
                hits += int(sampler.neighbour[f]) in fam_ids
        return hits / total

    assert together(1.0) > together(0.0) + 0.2
