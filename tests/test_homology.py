"""Scalable de novo families: two-hit prefilter + Opal alignment, sharded over 2 processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

from phyloclr.families.homology import SearchSettings, homology_components
from phyloclr.io.fasta import read_aligned_fasta
from tests.conftest import PROTEIN


def _pooled(n_files: int = 4) -> tuple[list[str], list[str]]:
    seqs, labels = [], []
    for f in sorted((PROTEIN / "trimal_eggnog").glob("*.fasta"))[:n_files]:
        for r in read_aligned_fasta(f):
            seqs.append(r.seq)
            labels.append(f.name)
    return seqs, labels


def test_two_processes_recover_eggnog_groups_and_store_is_reused(tmp_path: Path) -> None:
    seqs, labels = _pooled()
    res = homology_components(seqs, workers=2, shard_size=50, store_dir=tmp_path)
    assert adjusted_rand_score(labels, res.labels) > 0.9
    assert res.searched == len(set(seqs))
    # same corpus again: nothing is searched, same families
    again = homology_components(seqs, workers=1, store_dir=tmp_path)
    assert again.searched == 0 and adjusted_rand_score(res.labels, again.labels) == 1.0
    # a grown corpus: only the new sequences are searched
    more, more_labels = _pooled(5)
    grown = homology_components(more, workers=2, shard_size=50, store_dir=tmp_path)
    assert 0 < grown.searched == len(set(more)) - len(set(seqs))
    assert adjusted_rand_score(more_labels, grown.labels) > 0.9


def test_shards_skipping_known_members_give_the_same_families() -> None:
    seqs, _ = _pooled()
    sharded = homology_components(seqs, workers=2, shard_size=40)
    whole = homology_components(seqs, workers=1, shard_size=len(seqs))
    # a shard skips candidates already joined when it started, a single shard those joined by
    # its own earlier queries: different edges, the same families
    assert sharded.searched == whole.searched == len(set(seqs))
    assert adjusted_rand_score(whole.labels, sharded.labels) == 1.0


def test_unrelated_sequences_stay_singletons() -> None:
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 300)) for _ in range(30)]
    seqs += ["MKV", "XXXXXXXX", ""]  # no k-mer at all: singletons, not a crash
    res = homology_components(seqs, settings=SearchSettings())
    assert len(set(res.labels.tolist())) == 33


def test_long_queries_in_pieces_find_the_same_candidates(monkeypatch) -> None:
    from phyloclr.families import prefilter

    seqs, _ = _pooled(3)
    settings = SearchSettings(max_candidates=10**6)  # no cut: pieces may count a pair twice
    index = prefilter.kmer_index(seqs, settings.prefilter_k, settings.max_kmer_ratio)
    rows = np.arange(0, len(seqs), 7)
    whole = prefilter.candidates(index, rows, seqs, settings)
    monkeypatch.setattr(prefilter, "_MAX_HITS", 20)  # every query cut into many pieces
    pieces = prefilter.candidates(index, rows, seqs, settings)
    assert sum(len(c) for c in whole) > len(rows)
    for a, b in zip(whole, pieces, strict=True):
        assert set(a.tolist()) == set(b.tolist())


def test_index_lists_every_kept_occurrence() -> None:
    from phyloclr.families import prefilter

    seqs, _ = _pooled(2)
    index = prefilter.kmer_index(seqs, 5, 5.0)
    total = sum(len(prefilter._kmers(s, 5)[0]) for s in seqs)
    for code in np.unique(prefilter._kmers(seqs[0], 5)[0])[:50].tolist():
        got = {(int(s), int(p)) for s, p in zip(
            index.seq[index.start[code] : index.start[code + 1]],
            index.pos[index.start[code] : index.start[code + 1]], strict=True)}  # fmt: skip
        want = set()
        for i, s in enumerate(seqs):
            keys, pos = prefilter._kmers(s, 5)
            want |= {(i, int(p)) for p in pos[keys == code]}
        capped = len(want) > max(prefilter._MIN_CAP, 5.0 * total / 10**5)
        assert got == (set() if capped else want)
