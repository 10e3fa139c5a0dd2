"""MSA distances against Biopython and closed forms; NJ against Biopython's NJ."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from Bio import AlignIO
from Bio.Phylo.TreeConstruction import DistanceCalculator, DistanceTreeConstructor

from phyloclr.evolution.distances import correct, msa_distances, p_distances
from phyloclr.evolution.nj import neighbor_joining
from phyloclr.evolution.patristic import patristic_distances
from phyloclr.io.newick import Tree


def _ungapped_block(protein: Path, n: int = 8) -> tuple[list[str], list[str]]:
    aln = AlignIO.read(protein / "ete" / "test_ete_build__P53.alg.fa", "fasta")
    rows = [str(r.seq) for r in aln][:n]
    cols = [j for j in range(len(rows[0])) if all(r[j] != "-" for r in rows)]
    block = ["".join(r[j] for j in cols) for r in rows]
    return [r.id for r in aln][:n], block


def test_p_distance_matches_biopython_identity(protein: Path) -> None:
    from Bio.Align import MultipleSeqAlignment
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    names, block = _ungapped_block(protein)
    msa = MultipleSeqAlignment([SeqRecord(Seq(s), id=n) for n, s in zip(names, block, strict=True)])
    dm = DistanceCalculator("identity").get_distance(msa)
    p, _ = p_distances(block)
    for i in range(len(names)):
        for j in range(len(names)):
            assert p[i, j] == pytest.approx(dm[names[i], names[j]], abs=1e-12)


def test_gapped_p_distance_by_hand() -> None:
    rows = ["MK-VLA", "MKLV-G", "----LA"]
    p, overlap = p_distances(rows)
    # a/b share columns 0,1,3,5 → M=M K=K V=V A≠G → 1/4
    assert overlap[0, 1] == 4 and p[0, 1] == pytest.approx(0.25)
    # a/c share 4,5 → L=L A=A
    assert p[0, 2] == 0 and overlap[0, 2] == 2
    # b/c share column 5 only → G≠A
    assert p[1, 2] == 1 and overlap[1, 2] == 1


@pytest.mark.parametrize("p", [0.0, 0.1, 0.3, 0.5, 0.7])
def test_corrections_closed_form(p: float) -> None:
    arr = np.array([[p]])
    assert correct(arr, "p")[0, 0] == pytest.approx(p)
    assert correct(arr, "poisson")[0, 0] == pytest.approx(-math.log(1 - p))
    assert correct(arr, "kimura")[0, 0] == pytest.approx(-math.log(1 - p - 0.2 * p * p))
    assert correct(arr, "jc69")[0, 0] == pytest.approx(-0.75 * math.log(1 - 4 * p / 3))


def test_saturation_is_capped_and_counted() -> None:
    res = msa_distances(["AAAAAAAAAA", "CCCCCCCCCC", "AAAAAAAAAC"], "dna", max_distance=3.0)
    assert res.model == "jc69"
    assert res.matrix[0, 1] == 3.0 and res.saturated == 2  # p=1 and p=0.9 are beyond JC
    assert res.matrix[0, 2] == pytest.approx(-0.75 * math.log(1 - 4 * 0.1 / 3))


def test_auto_model_by_alphabet() -> None:
    assert msa_distances(["MKV", "MKL"], "protein").model == "kimura"
    assert msa_distances(["ACG", "ACT"], "dna").model == "jc69"


def test_nj_recovers_additive_tree_and_agrees_with_biopython() -> None:
    truth = Tree.from_newick("(((A:1,B:2):1,(C:1.5,D:0.5):2):0.5,(E:1,(F:2,G:1):0.5):1);")
    d = patristic_distances(truth)
    names = truth.leaf_names
    nj = neighbor_joining(d, names)
    order = [nj.leaf_names.index(n) for n in names]
    assert np.allclose(patristic_distances(nj)[np.ix_(order, order)], d)

    rng = np.random.default_rng(0)
    noisy = d + np.triu(rng.uniform(0, 0.3, d.shape), 1)
    noisy = noisy + np.triu(noisy, 1).T - np.triu(noisy, 1) * 0
    noisy = np.triu(noisy, 1) + np.triu(noisy, 1).T
    from Bio.Phylo.TreeConstruction import DistanceMatrix

    lower = [[float(noisy[i, j]) for j in range(i + 1)] for i in range(len(names))]
    bio = DistanceTreeConstructor().nj(DistanceMatrix(names, lower))
    ours = neighbor_joining(noisy, names)
    ours_d = patristic_distances(ours)
    pos = {n: i for i, n in enumerate(ours.leaf_names)}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert ours_d[pos[a], pos[b]] == pytest.approx(bio.distance(a, b), abs=1e-6)


def _counts_by_loop(rows: list[str]) -> tuple[np.ndarray, np.ndarray]:
    n = len(rows)
    same, overlap = np.zeros((n, n), np.int64), np.zeros((n, n), np.int64)
    for i in range(n):
        for j in range(n):
            for a, b in zip(rows[i].upper(), rows[j].upper(), strict=True):
                if a not in "-." and b not in "-.":
                    overlap[i, j] += 1
                    same[i, j] += a == b
    return same, overlap


def _random_rows(rng: np.random.Generator, n: int, width: int, letters: str) -> list[str]:
    pool = np.array(list(letters + "--."))
    return ["".join(rng.choice(pool, width)) for _ in range(n)]


@pytest.mark.parametrize("int8", [True, False])
@pytest.mark.parametrize(
    ("n", "width", "letters"),
    [(1, 7, "ACDE"), (2, 1, "A"), (3, 40, "A"), (9, 33, "ACGT"), (11, 57, "MKVLAGSTwxyBZ*")],
)
def test_identity_counts_match_a_loop(
    monkeypatch: pytest.MonkeyPatch, n: int, width: int, letters: str, int8: bool
) -> None:
    """Identical and shared columns are exact, whichever product computes them, however the
    columns are cut into blocks (down to one column: a one-letter product) and the rows into
    blocks above the diagonal; lowercase counts as its capital, '.' as a gap."""
    from phyloclr.evolution import distances

    rows = _random_rows(np.random.default_rng(n * 100 + width), n, width, letters)
    want = _counts_by_loop(rows)
    if not int8:
        monkeypatch.setattr(distances, "_INT8", [False])
    elif not distances._int8_products():
        pytest.skip("torch has no exact int8 products on this machine")
    for chunk_bytes, gram_block in ((32 << 20, 512), (1, 2), (n * 40, 3)):
        monkeypatch.setattr(distances, "_CHUNK_BYTES", chunk_bytes)
        monkeypatch.setattr(distances, "_GRAM_BLOCK", gram_block)
        same, overlap = distances.identity_counts(distances._encode(rows))
        assert same.dtype == overlap.dtype == np.int64
        assert np.array_equal(same, want[0]) and np.array_equal(overlap, want[1])


def test_identity_counts_are_exact_past_int8_and_bfloat16_range() -> None:
    """Counts above 127 (int8), 256 (bfloat16's integers) and a block of columns stay exact."""
    from phyloclr.evolution.distances import p_distances

    rows = ["A" * 70_000, "A" * 69_999 + "C", "-" * 35_000 + "A" * 35_000]
    p, overlap = p_distances(rows)
    assert overlap[0, 1] == 70_000 and overlap[0, 2] == 35_000 and overlap[1, 2] == 35_000
    assert p[0, 1] == pytest.approx(1 / 70_000, abs=1e-15) and p[0, 2] == 0.0
    assert p[1, 2] == pytest.approx(1 / 35_000, abs=1e-15)
