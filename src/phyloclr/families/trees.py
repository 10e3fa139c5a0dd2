"""Matching trees to families and their leaves to members; nothing is dropped silently."""

from __future__ import annotations

import re
from pathlib import Path

from phyloclr.errors import InputError
from phyloclr.families.model import Family
from phyloclr.io.newick import Tree

_RANGE = re.compile(r"/\d+-\d+$")


def _names_preview(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" … ({len(names) - limit} more)" if len(names) > limit else "")


def match_leaves(leaves: list[str], members: list[str]) -> dict[str, str]:
    """Map leaf names to member ids: exact match first, then ignoring ``/start-end`` suffixes."""
    member_set = set(members)
    mapping = {leaf: leaf for leaf in leaves if leaf in member_set}
    stripped: dict[str, list[str]] = {}
    for m in members:
        stripped.setdefault(_RANGE.sub("", m), []).append(m)
    used = set(mapping.values())
    for leaf in leaves:
        if leaf in mapping:
            continue
        candidates = stripped.get(_RANGE.sub("", leaf), [])
        free = [c for c in candidates if c not in used]
        if len(candidates) == 1 and free:
            mapping[leaf] = free[0]
            used.add(free[0])
    return mapping


def attach_tree(fam: Family, tree: Tree, source: str | Path, warnings: list[str]) -> None:
    """Attach ``tree`` to ``fam`` with leaves renamed to member ids.

    Leaves matching no member are pruned and named in ``warnings``; members absent from the
    tree are named too (their distances then come from the alignment). A tree none of whose
    leaves match is an InputError.
    """
    leaves = tree.leaf_names
    mapping = match_leaves(leaves, fam.names)
    if not mapping:
        raise InputError(
            source,
            f"tree leaves match no member of family {fam.id!r} "
            f"(leaves: {_names_preview(leaves, 3)}; members: {_names_preview(fam.names, 3)})",
        )
    extra = [leaf for leaf in leaves if leaf not in mapping]
    if extra:
        warnings.append(
            f"{source}: {len(extra)} tree leaves match no member of family {fam.id!r} and were "
            f"pruned: {_names_preview(extra)}"
        )
        tree = tree.pruned(mapping)
    if any(k != v for k, v in mapping.items()):
        tree = tree.renamed(mapping)
    missing = sorted(set(fam.names) - set(mapping.values()))
    if missing:
        warnings.append(
            f"{source}: {len(missing)} members of family {fam.id!r} are not in its tree, so its "
            f"distances come from the alignment: {_names_preview(missing)}"
        )
    fam.tree = tree
    fam.tree_origin = "given"


def assign_trees(
    families: list[Family],
    trees: list[tuple[str | None, Tree]],
    source: str | Path,
    warnings: list[str],
) -> None:
    """Attach trees from one ``--trees`` file or directory.

    A tree with an id goes to the family with that id (or whose file stem it is); a tree
    without one goes to the family sharing most of its leaf names.
    """
    by_id = {f.id: f for f in families}
    by_stem = {Path(f.source).name.split(".")[0]: f for f in families}
    for tree_id, tree in trees:
        label = tree_id or "tree"
        if tree_id is not None:
            fam = by_id.get(tree_id) or by_stem.get(tree_id)
            if fam is None:
                warnings.append(f"{source}: tree {tree_id!r} matches no family id; not used")
                continue
        else:
            leaves = tree.leaf_names
            scored = [(len(match_leaves(leaves, f.names)), f) for f in families]
            best = max((s for s, _ in scored), default=0)
            if best == 0:
                raise InputError(
                    source,
                    "tree leaves match no member of any family "
                    f"(leaves: {_names_preview(leaves, 3)})",
                    None if tree_id is None else label,
                )
            winners = [f for s, f in scored if s == best]
            if len(winners) > 1:
                raise InputError(
                    source,
                    "tree matches several families equally well ("
                    + ", ".join(f.id for f in winners[:5])
                    + "); give trees as 'FAMILY_ID<tab>(newick);' lines or one file per family",
                )
            fam = winners[0]
        if fam.tree is not None and fam.tree_origin == "given":
            raise InputError(source, f"a second tree for family {fam.id!r}", label)
        attach_tree(fam, tree, source, warnings)
