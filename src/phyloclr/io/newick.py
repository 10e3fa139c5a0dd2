"""Newick trees behind one small adapter (ete3 today; ete4 could replace it here alone).

Everything outside this module sees :class:`Tree`: leaf names, branch lengths and flat
parent/length arrays in pre-order, never an ete3 object.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from phyloclr.errors import InputError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import ete3

TREE_SUFFIXES = (".nw", ".nwk", ".newick", ".tree", ".tre", ".treefile", ".dnd")


@dataclass
class TreeArrays:
    """A tree flattened in pre-order: node 0 is the root.

    ``parent``: (n_nodes,) int, -1 for the root; ``length``: (n_nodes,) float branch lengths;
    ``leaves``: (n_leaves,) node indices of the leaves, in ``Tree.leaf_names`` order.
    """

    parent: np.ndarray
    length: np.ndarray
    leaves: np.ndarray


class Tree:
    """A rooted phylogenetic tree with named leaves."""

    def __init__(self, node: ete3.Tree, has_branch_lengths: bool, source: str | None = None):
        self._node = node
        self.has_branch_lengths = has_branch_lengths
        self.source = source

    @classmethod
    def from_newick(
        cls, text: str, path: str | PathLike[str] | None = None, record: str | None = None
    ) -> Tree:
        """Parse one Newick string (ending in ';'); InputError naming the file if it fails."""
        text = text.strip()
        if not text:
            raise InputError(path, "empty Newick tree", record)
        if not text.endswith(";"):
            text += ";"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                node = ete3.Tree(text, format=1, quoted_node_names=True)
        except Exception as exc:  # ete3 raises NewickError and assorted others
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(path, f"Newick does not parse: {first}", record) from exc
        leaves = [leaf.name for leaf in node.iter_leaves()]
        if len(leaves) < 1 or any(not name for name in leaves):
            raise InputError(path, "Newick tree has unnamed leaves", record)
        dup = _first_duplicate(leaves)
        if dup is not None:
            raise InputError(path, f"Newick tree has the leaf name {dup!r} twice", record)
        return cls(node, _has_lengths(text), None if path is None else str(path))

    @property
    def leaf_names(self) -> list[str]:
        return [leaf.name for leaf in self._node.iter_leaves()]

    def __len__(self) -> int:
        return len(self._node)

    def renamed(self, mapping: dict[str, str]) -> Tree:
        """A copy with leaves renamed (names absent from ``mapping`` keep theirs)."""
        node = self._node.copy("newick")
        for leaf in node.iter_leaves():
            leaf.name = mapping.get(leaf.name, leaf.name)
        return Tree(node, self.has_branch_lengths, self.source)

    def pruned(self, keep: Iterable[str]) -> Tree:
        """A copy restricted to the leaves in ``keep``, branch lengths preserved."""
        node = self._node.copy("newick")
        node.prune(list(keep), preserve_branch_length=True)
        return Tree(node, self.has_branch_lengths, self.source)

    def to_newick(self) -> str:
        """Newick text; names are quoted only when one needs it."""
        fmt = 5 if self.has_branch_lengths else 9
        special = set(" ;,():[]'\t\"")
        quote = any(special & set(name) for name in self.leaf_names)
        return str(self._node.write(format=fmt, quoted_node_names=quote))

    def arrays(self) -> TreeArrays:
        """Flatten to pre-order parent/length arrays (iterative, safe for deep trees)."""
        index: dict[int, int] = {}
        parent: list[int] = []
        length: list[float] = []
        leaf_nodes: list[int] = []
        leaf_order = {id(leaf): i for i, leaf in enumerate(self._node.iter_leaves())}
        leaves_at = np.zeros(len(leaf_order), dtype=np.int64)
        for node in self._node.traverse("preorder"):
            i = len(parent)
            index[id(node)] = i
            parent.append(-1 if node.up is None else index[id(node.up)])
            length.append(0.0 if node.up is None else float(node.dist))
            if node.is_leaf():
                leaves_at[leaf_order[id(node)]] = i
                leaf_nodes.append(i)
        return TreeArrays(
            parent=np.asarray(parent, dtype=np.int64),
            length=np.asarray(length, dtype=np.float64),
            leaves=leaves_at,
        )


def _first_duplicate(names: list[str]) -> str | None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def _top_level(text: str) -> Iterator[tuple[str, bool]]:
    """Each character with whether it lies outside quoted names and [comments]."""
    quote = False
    depth = 0
    for ch in text:
        if ch == "'" and depth == 0:
            quote = not quote
            yield ch, False
        elif not quote and ch == "[":
            depth += 1
            yield ch, False
        elif not quote and ch == "]":
            depth = max(0, depth - 1)
            yield ch, False
        else:
            yield ch, not quote and depth == 0


def _has_lengths(text: str) -> bool:
    """True when the Newick text carries at least one ':length' outside quotes and comments."""
    return any(ch == ":" and top for ch, top in _top_level(text))


def split_newick(text: str) -> list[str]:
    """Split a text holding several Newick trees at the top-level ';' (quotes/comments aware)."""
    out: list[str] = []
    buf: list[str] = []
    for ch, top in _top_level(text):
        buf.append(ch)
        if ch == ";" and top:
            out.append("".join(buf).strip())
            buf = []
    rest = "".join(buf).strip()
    if rest:
        out.append(rest)
    return [t for t in out if t.strip(" ;\n\t")]


def _split_id(chunk: str) -> tuple[str | None, str]:
    """``ID<whitespace>(newick)`` → (ID, newick); a bare tree gives (None, newick)."""
    start = chunk.find("(")
    if start > 0:
        head = chunk[:start].strip()
        if head and not head.startswith("'") and len(head.split()) == 1:
            return head, chunk[start:]
    return None, chunk


def read_newick_file(path: str | PathLike[str]) -> list[tuple[str | None, Tree]]:
    """Every tree in a file: one bare tree, several trees, or lines ``FAMILY_ID<tab>(newick);``.

    Returns ``(family_id or None, Tree)`` pairs; a tree without an id is matched by its leaves.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(p, f"cannot open: {exc.strerror or exc}") from exc
    if not text.strip():
        raise InputError(p, "empty file (no Newick tree)")
    chunks = split_newick(text)
    if not chunks:
        raise InputError(p, "no Newick tree found")
    trees: list[tuple[str | None, Tree]] = []
    for i, chunk in enumerate(chunks, start=1):
        tree_id, body = _split_id(chunk)
        label = tree_id or (f"tree #{i}" if len(chunks) > 1 else None)
        trees.append((tree_id, Tree.from_newick(body, p, label)))
    return trees


def read_trees(path: str | PathLike[str]) -> list[tuple[str | None, Tree]]:
    """Trees from a file or a directory; in a directory each file's stem is the family id."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file or directory")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in TREE_SUFFIXES)
        if not files:
            raise InputError(p, f"no tree files ({', '.join(TREE_SUFFIXES)}) in directory")
        out: list[tuple[str | None, Tree]] = []
        for f in files:
            trees = read_newick_file(f)
            if len(trees) == 1 and trees[0][0] is None:
                out.append((f.stem, trees[0][1]))
            else:
                out.extend(trees)
        return out
    return read_newick_file(p)
