"""benchmarks.probe_profile_variants: co-hit links, a jackhmmer-like round, centroid ranks."""

from pathlib import Path

import numpy as np
from benchmarks.probe_profile_variants import centroid_ranks, cohit_links, iterate_profiles
from benchmarks.probe_profiles import build_profiles, hit_matrix, search_profiles

from phyloclr.io.fasta import read_fasta


def test_hit_matrix_keeps_the_best_value_under_the_evalue() -> None:
    hits = {"row": np.array([0, 0, 1]), "col": np.array([1, 1, 0]),
            "bits": np.array([16.0, 4.0, 9.0], dtype=np.float32),
            "evalue": np.array([1e-5, 1e-2, 0.5]), "profiles": np.asarray(2)}  # fmt: skip
    assert np.allclose(hit_matrix(hits, 3, 0.1), [[0, 4], [0, 0], [0, 0]])
    assert np.allclose(hit_matrix(hits, 3, 1.0, lambda b: b), [[0, 16], [9, 0], [0, 0]])


def test_cohit_links_join_profiles_that_one_protein_hits() -> None:
    dense = np.array([[1.0, 2.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 5.0]], dtype=np.float32)
    links = cohit_links(dense)
    assert np.allclose(np.diag(links), 0.0)
    assert np.allclose(links, links.T)
    assert np.isclose(links[0, 1], 1 / np.sqrt(2))  # protein 0 hits both; profile 1 has 2 hits
    assert links[0, 2] == 0 and links[1, 2] == 0  # nobody hits profile 2 with another


def test_centroid_ranks_put_a_members_own_family_first() -> None:
    raw = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    members = [np.array([0, 1]), np.array([2, 3])]
    ranks = centroid_ranks(raw, members, np.array([0, 0, 3]), np.array([0, 1, 1]), block=3)
    assert ranks.tolist() == [0, 1, 0]


def test_an_iterated_profile_keeps_finding_its_family(tmp_path: Path, protein: Path) -> None:
    globins = [r.seq for r in read_fasta(protein / "hmmer" / "tutorial" / "globins45.fa")]
    luxc = [r.seq for r in read_fasta(protein / "pyhmmer" / "seqs" / "LuxC.faa")]
    corpus = globins + luxc
    first = tmp_path / "p.h3m"
    build_profiles([globins[:4], luxc[:1]], first, max_members=5, threads=1)
    hits = search_profiles(first, corpus, 1.0, threads=1)
    again = tmp_path / "it.h3m"
    assert iterate_profiles(first, hits, corpus, again) == 2  # the singleton's profile too
    found = hit_matrix(search_profiles(again, corpus, 1e-3, threads=1), len(corpus), 1e-3)
    assert (found[: len(globins), 0] > 0).mean() > 0.9
    assert (found[len(globins) :, 1] > 0).all() and not found[len(globins) :, 0].any()
