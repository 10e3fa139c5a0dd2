"""benchmarks.probe_profiles: family profile HMMs and the profile vectors built from their hits."""

from pathlib import Path

import numpy as np
from benchmarks.probe_profiles import build_profiles, profile_vectors, search_profiles

from phyloclr.io.fasta import read_fasta


def test_profile_vectors_keep_the_best_hit_under_the_evalue() -> None:
    hits = {
        "row": np.array([0, 0, 1, 2]),
        "col": np.array([1, 1, 0, 0]),
        "bits": np.array(
            [16.0, 4.0, 9.0, 25.0], dtype=np.float32
        ),  # protein 0 hits profile 1 twice
        "evalue": np.array([1e-5, 1e-2, 0.05, 0.5]),
        "profiles": np.asarray(2),
    }
    vec = profile_vectors(hits, 4, 0.1)
    assert vec.shape == (4, 2)
    assert np.allclose(vec[0], [0.0, 1.0])  # √16, not √16 + √4
    assert np.allclose(vec[1], [1.0, 0.0])
    assert not vec[2].any()  # its one hit is above the E-value
    assert not vec[3].any()  # no hit at all
    both = profile_vectors({**hits, "row": np.array([0, 0, 0, 3])}, 4, 0.1)
    assert np.allclose(both[0], np.array([3.0, 4.0]) / 5.0)  # √9 of profile 0, √16 of profile 1


def test_a_family_profile_finds_its_family(tmp_path: Path, protein: Path) -> None:
    globins = [r.seq for r in read_fasta(protein / "hmmer" / "tutorial" / "globins45.fa")]
    others = [r.seq for r in read_fasta(protein / "pyhmmer" / "seqs" / "LuxC.faa")]
    hmm = tmp_path / "p.h3m"
    build_profiles([globins[:8], others[:6]], hmm, max_members=5, threads=1)
    hits = search_profiles(hmm, globins[8:] + others[6:], 1e-3, threads=1)
    assert int(hits["profiles"]) == 2
    assert float(hits["searched_at"]) == 1e-3
    vec = profile_vectors(hits, len(globins) - 8 + len(others) - 6, 1e-3)
    n_glob = len(globins) - 8
    assert (vec[:n_glob, 0] > 0.9).mean() > 0.9  # the unseen globins hit the globin profile
    assert (vec[n_glob:, 1] > 0.9).all()  # the other LuxC proteins hit theirs
