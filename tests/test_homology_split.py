"""benchmarks.homology_split: mAP over the same-label pairs alignment links, and the rest."""

import numpy as np
from benchmarks.bench_protein import score
from benchmarks.homology_split import same_label, set_summary, split_ap, split_rows

LABELS = ["a", "a", "a", "b", "b"]
#: 0-1 and 3-4 are linked (an alignment hit); 0-2 and 1-2 are same-label pairs without one
LINKED = np.zeros((5, 5), bool)
LINKED[0, 1] = LINKED[1, 0] = LINKED[3, 4] = LINKED[4, 3] = True
SIM = np.array(
    [
        [1.0, 0.9, 0.1, 0.5, 0.2],
        [0.9, 1.0, 0.3, 0.6, 0.1],
        [0.1, 0.3, 1.0, 0.4, 0.2],
        [0.5, 0.6, 0.4, 1.0, 0.8],
        [0.2, 0.1, 0.2, 0.8, 1.0],
    ]
)


def test_nothing_left_out_is_bench_protein_map() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8))
    sim = x @ x.T
    labels = [str(i % 6) for i in range(40)]
    same = same_label(labels)
    got = split_ap(sim, same, np.zeros_like(same))
    assert round(got, 4) == score(sim, labels)["map"]


def test_linked_and_unlinked_by_hand() -> None:
    rows = split_rows(SIM, LABELS, LINKED)
    # linked only: rows 0, 1, 3, 4 each find their one linked partner first (2 is left out)
    assert rows["map_linked"] == 1.0
    # unlinked only (the linked partner left out): row 0 ranks 3 (0.5), 4 (0.2), 2 (0.1): 1/3;
    # row 1 ranks 3 (0.6), 2 (0.3): 1/2; row 2 seeks 0 and 1 among 0.1, 0.3, 0.4, 0.2:
    # order 3, 1, 4, 0 -> (1/2 + 2/4) / 2 = 1/2
    assert rows["map_unlinked"] == round((1 / 3 + 1 / 2 + 1 / 2) / 3, 4)
    # the oracle lifts the linked partners first; here they already are, so it is the mAP:
    # rows 0-4: (1 + 2/4)/2, (1 + 2/3)/2, (1/2 + 2/4)/2, 1, 1
    expected = round((0.75 + 5 / 6 + 0.5 + 1 + 1) / 5, 4)
    assert rows["map_oracle"] == rows["map"] == expected
    swapped = SIM.copy()
    swapped[0, 1] = swapped[1, 0] = 0.0  # the linked pair now ranks last by similarity
    lifted = split_rows(swapped, LABELS, LINKED)
    assert lifted["map_oracle"] == expected > lifted["map"]


def test_ceiling_and_shares() -> None:
    summary = set_summary(LABELS, LINKED)
    assert summary["linked_share"] == round(4 / 8, 4)  # 8 ordered same-label pairs, 4 linked
    assert summary["groups"] == 2
    assert summary["groups_unlinked_at_least_0.5"] == 1  # group a: 4 of 6 pairs unlinked
    assert summary["groups_unlinked_below_0.1"] == 1  # group b: none
    every = same_label(LABELS)
    assert set_summary(LABELS, every)["homology_ceiling"] == 1.0
    assert set_summary(LABELS, np.zeros_like(every))["homology_ceiling"] < 1.0


def test_a_left_out_item_is_not_ranked() -> None:
    same = same_label(LABELS)
    sought = np.zeros_like(same)
    sought[0, 2] = True
    left = np.zeros_like(same)
    left[0, 3] = left[0, 4] = left[0, 1] = True
    # row 0 then holds 2 alone: AP 1 whatever its score
    assert split_ap(SIM, sought, left) == 1.0
