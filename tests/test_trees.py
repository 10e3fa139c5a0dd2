"""Newick adapter and patristic distances: hand-checked values, ete3 agreement, errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from phyloclr.errors import InputError
from phyloclr.evolution.patristic import patristic_distances
from phyloclr.io.newick import Tree, read_newick_file, read_trees
from tests.conftest import write

HAND = "((A:1,B:2):0.5,(C:3,D:1):1.5,E:4);"
# worked by hand along the paths through the root
HAND_EXPECTED = {
    ("A", "B"): 3.0, ("A", "C"): 6.0, ("A", "D"): 4.0, ("A", "E"): 5.5,
    ("B", "C"): 7.0, ("B", "D"): 5.0, ("B", "E"): 6.5,
    ("C", "D"): 4.0, ("C", "E"): 8.5, ("D", "E"): 6.5,
}  # fmt: skip


def test_hand_checked_tree() -> None:
    tree = Tree.from_newick(HAND)
    assert tree.has_branch_lengths
    d = patristic_distances(tree)
    idx = {n: i for i, n in enumerate(tree.leaf_names)}
    for (a, b), expected in HAND_EXPECTED.items():
        assert d[idx[a], idx[b]] == pytest.approx(expected)
        assert d[idx[b], idx[a]] == pytest.approx(expected)
    assert np.all(np.diag(d) == 0)


@pytest.mark.parametrize("n_leaves", [2, 17, 300])
def test_matches_ete3_pair_by_pair(n_leaves: int) -> None:
    import ete3

    random.seed(n_leaves)
    t = ete3.Tree()
    t.populate(n_leaves, random_branches=True)
    t = ete3.Tree(t.write(format=5))  # the same rounding of branch lengths on both sides
    tree = Tree.from_newick(t.write(format=5))
    d = patristic_distances(tree)
    names = tree.leaf_names
    for _ in range(50):
        a, b = random.sample(range(n_leaves), 2)
        assert d[a, b] == pytest.approx(t.get_distance(names[a], names[b]), abs=1e-9)
    assert np.all(np.diag(d) == 0)


def test_polytomy_and_quoted_names() -> None:
    tree = Tree.from_newick("('P1;1hxn':1,B:2,'C d':3);")
    assert tree.leaf_names == ["P1;1hxn", "B", "C d"]
    d = patristic_distances(tree)
    assert d[0, 1] == 3 and d[0, 2] == 4 and d[1, 2] == 5
    again = Tree.from_newick(tree.to_newick())
    assert again.leaf_names == tree.leaf_names


def test_topology_only_detected() -> None:
    assert not Tree.from_newick("((A,B),C);").has_branch_lengths
    assert Tree.from_newick("((A,B):1,C);").has_branch_lengths


def test_newick_that_does_not_parse(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.nw", "((A:1,B:2):0.5,C:3;\n")
    with pytest.raises(InputError) as info:
        read_newick_file(path)
    msg = str(info.value)
    assert str(path) in msg and "Newick does not parse" in msg and "\n" not in msg


def test_empty_tree_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty file"):
        read_newick_file(write(tmp_path / "e.nw", "  \n"))


def test_file_with_ids_and_directory(tmp_path: Path) -> None:
    path = write(tmp_path / "all.nwk", "famA\t(a:1,b:2);\nfamB (c:1,(d:1,e:1):1);\n")
    trees = read_newick_file(path)
    assert [t[0] for t in trees] == ["famA", "famB"]
    assert trees[1][1].leaf_names == ["c", "d", "e"]
    d = tmp_path / "trees"
    d.mkdir()
    write(d / "famC.nw", "(x:1,y:1);")
    assert [t[0] for t in read_trees(d)] == ["famC"]


def test_patristic_thousands_of_leaves_is_one_pass() -> None:
    import ete3

    t = ete3.Tree()
    t.populate(3000, random_branches=True)
    d = patristic_distances(Tree.from_newick(t.write(format=5)))
    assert d.shape == (3000, 3000)
    assert np.allclose(d, d.T)
    assert (d[~np.eye(3000, dtype=bool)] > 0).all()
