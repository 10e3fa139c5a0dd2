"""The protein harness's background-corrected rows: expected counts under a sequence's own
composition, column for column as the counts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from benchmarks.bench_protein import expected_counts

from phyloclr.kmers import reduced_index, spectrum_counts, word_offsets


@pytest.mark.parametrize("word", [3, "11011", "1101"])
def test_expected_counts_are_windows_times_letter_frequencies(word: int | str) -> None:
    seqs = ["MKVLAAGIILLSTPQRDEEWYHHCKV", "GGGGSGGGGS", "MK"]
    e = expected_counts(seqs, word, "murphy10")
    counts = spectrum_counts(seqs, word, "murphy10").toarray()
    assert e.shape == counts.shape
    assert np.allclose(e.sum(1), counts.sum(1))  # as many expected words as windows
    index, size = reduced_index("murphy10")
    for s, seq in enumerate(seqs):
        p = np.bincount([index[ord(c)] for c in seq], minlength=size) / len(seq)
        weight = len(word_offsets(word))
        for letters in itertools.islice(itertools.product(range(size), repeat=weight), 0, None, 37):
            key = int(np.dot(letters, size ** np.arange(weight)[::-1]))
            assert e[s, key] == pytest.approx(counts[s].sum() * np.prod(p[list(letters)]))
