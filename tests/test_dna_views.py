"""Coded DNA mutation views: rates, ambiguity, indels, reverse complement, k-mer counts."""

from __future__ import annotations

import numpy as np

from phyloclr import dna
from phyloclr.kmers import kmer_counts as string_counts
from phyloclr.kmers import letter_index
from phyloclr.views import dna as dna_views
from phyloclr.views.mutation import MutationConfig

RNG_SEQ = "".join(np.random.default_rng(0).choice(list("ACGT"), 200_000))


def test_encode_and_counts_match_string_counter() -> None:
    seqs = ["ACGTNACGTTGCA", "acgu" * 10, "NNNN", "AC"]
    got = dna.kmer_counts([dna.encode(s) for s in seqs], 3)
    index = letter_index("ACGT", {"U": "T"})
    for row, s in zip(got, seqs, strict=True):
        assert np.array_equal(row, string_counts(s, 3, index, 4))


def test_substitution_rates_and_transition_share() -> None:
    cfg = MutationConfig(transition_rate=0.02, transversion_rate=0.01, mask_rate=0.0, crop_min=1.0)
    codes = dna.encode(RNG_SEQ)
    out = dna_views.mutate(codes, cfg, np.random.default_rng(1))
    changed = out != codes
    ts = ((out ^ codes) == 2) & changed
    assert abs(changed.mean() - 0.03) < 0.002
    assert abs(ts.sum() / changed.sum() - 2 / 3) < 0.03
    assert np.array_equal(codes, dna.encode(RNG_SEQ))  # input untouched


def test_ambiguous_bases_untouched_and_revcomp() -> None:
    cfg = MutationConfig(transition_rate=0.5, transversion_rate=0.5, mask_rate=0.0, crop_min=1.0)
    codes = dna.encode("N" * 1000)
    assert (dna_views.mutate(codes, cfg, np.random.default_rng(0)) == dna.AMBIGUOUS).all()
    rc = MutationConfig(transition_rate=0.0, transversion_rate=0.0, mask_rate=0.0, crop_min=1.0,
                        reverse_complement=1.0)  # fmt: skip
    out = dna_views.mutate(dna.encode("AACGTN"), rc, np.random.default_rng(0))
    assert out.tolist() == dna.encode("NACGTT").tolist()


def test_indels_crop_and_mask() -> None:
    codes = dna.encode(RNG_SEQ[:100_000])
    cfg = MutationConfig(transition_rate=0.0, transversion_rate=0.0, indel_rate=0.01,
                         mask_rate=0.0, crop_min=1.0)  # fmt: skip
    lengths = [len(dna_views.mutate(codes, cfg, np.random.default_rng(s))) for s in range(5)]
    assert all(abs(n - 100_000) < 600 for n in lengths) and len(set(lengths)) > 1
    crop = MutationConfig(transition_rate=0.0, transversion_rate=0.0, mask_rate=0.1, crop_min=0.5)
    out = dna_views.mutate(codes, crop, np.random.default_rng(2))
    assert 50_000 <= len(out) <= 100_000
    assert abs((out == dna.AMBIGUOUS).mean() - 0.1) < 0.01


def test_kmer_standardiser_matches_numpy_and_pools_strands() -> None:
    from phyloclr.dna import rc_kmer_index

    rng = np.random.default_rng(3)
    codes = [dna.encode("".join(rng.choice(list("ACGT"), 50))) for _ in range(7)]
    f = dna.kmer_frequencies(codes, 2)
    mean, scale = dna.kmer_standardiser(codes, 2, chunk=3)  # chunks of 3, 3 and 1
    assert np.allclose(mean, f.mean(0)) and np.allclose(scale, 1 / f.std(0), rtol=1e-4)
    pooled = dna.kmer_frequencies(codes, 2, rc_kmer_index(2))
    assert np.allclose(pooled.sum(1), 2.0)  # each k-mer counted with its reverse complement
    rc = [dna.reverse_complement(c) for c in codes]
    assert np.allclose(pooled, dna.kmer_frequencies(rc, 2, rc_kmer_index(2)))  # strand-free
