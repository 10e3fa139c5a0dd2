"""Strand orientation: reverse complements, the k-mer map, and flipping by relatives."""

from __future__ import annotations

import numpy as np

from phyloclr import dna
from phyloclr.dna import rc_kmer_index, reverse_complement
from phyloclr.strand import orient_strands


def test_reverse_complement_and_kmer_map() -> None:
    codes = dna.encode("AACGTNGGT")
    assert np.array_equal(reverse_complement(codes), dna.encode("ACCNACGTT"))
    rng = np.random.default_rng(0)
    seq = dna.encode("".join(rng.choice(list("ACGT"), 500)))
    for k in (1, 3, 4):
        own, rc = dna.kmer_counts([seq, reverse_complement(seq)], k)
        # a k-mer's count in the reverse complement is its reverse complement's count here
        assert np.array_equal(rc, own[rc_kmer_index(k)])
    assert rc_kmer_index(2)[0b0001] == 0b1011  # AC ↔ GT


def _skewed_groups(rng: np.random.Generator) -> list[np.ndarray]:
    """4 groups × 12 copies (2% substitutions) of ancestors with strand-skewed composition."""
    out = []
    for probs in ([0.4, 0.3, 0.1, 0.2], [0.2, 0.4, 0.1, 0.3], [0.35, 0.1, 0.35, 0.2],
                  [0.1, 0.2, 0.3, 0.4]):  # fmt: skip
        ancestor = rng.choice(4, 3000, p=probs).astype(np.uint8)
        for _ in range(12):
            seq = ancestor.copy()
            sites = rng.random(len(seq)) < 0.02
            seq[sites] = rng.integers(0, 4, int(sites.sum()))
            out.append(seq)
    return out


def test_orient_flips_exactly_the_sequences_on_the_other_strand() -> None:
    rng = np.random.default_rng(3)
    codes = _skewed_groups(rng)
    assert not orient_strands(codes, k=4).any()  # all on one strand: nothing moves
    flipped = [2, 17, 30]
    mixed = [reverse_complement(c) if i in flipped else c for i, c in enumerate(codes)]
    found = orient_strands(mixed, k=4)
    assert np.flatnonzero(found).tolist() == flipped
    assert not orient_strands(mixed[:2], k=4).any()  # too few sequences to judge


def test_cluster_reports_and_undoes_the_flip() -> None:
    from phyloclr.cluster import ClusterConfig, cluster_sequences
    from phyloclr.io.sequences import SeqRecord

    rng = np.random.default_rng(5)
    codes = _skewed_groups(rng)[:36]  # three groups
    letters = np.array(list("ACGT"))
    records = []
    for i, c in enumerate(codes):
        c = reverse_complement(c) if i == 5 else c
        records.append(SeqRecord(f"s{i}", "".join(letters[c])))
    cfg = ClusterConfig(n_clusters=3, k=4, steps=30, batch_size=16, runs=1, heads=2, vote=1,
                        threads=1)  # fmt: skip
    result = cluster_sequences(records, cfg)
    assert result.summary["reverse_complemented"] == 1
    assert result.summary["reverse_complemented_ids"] == ["s5"]
    assert result.clusters[5] == result.clusters[0]  # back with its group
    plain = cluster_sequences(records, ClusterConfig(**{**cfg.__dict__, "orient": False}))
    assert plain.summary["reverse_complemented"] == 0
    assert plain.clusters[5] != plain.clusters[0]  # left on its strand it is misplaced
