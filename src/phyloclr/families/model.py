"""The Family / FamilySet model: members, optional alignment and tree, pairwise distances."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from phyloclr.io.newick import Tree
from phyloclr.io.sequences import Alphabet, SeqRecord

TreeOrigin = Literal["given", "nj"]
AlignmentOrigin = Literal["input", "famsa", "hmmalign"]


@dataclass
class Family:
    """A family of homologous sequences.

    ``records`` hold the members (ungapped ``seq``; ``aligned`` rows when an alignment exists).
    ``distances`` is (n, n) float32 in member order, computed by ``distance_method``
    ('patristic' from the tree, or an MSA model such as 'kimura' or 'jc69').
    """

    id: str
    records: list[SeqRecord]
    alphabet: Alphabet
    source: str
    accession: str | None = None
    description: str | None = None
    alignment_origin: AlignmentOrigin | None = None
    tree: Tree | None = None
    tree_origin: TreeOrigin | None = None
    distances: np.ndarray | None = None
    distance_method: str | None = None
    hmm_name: str | None = None
    saturated_pairs: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [r.id for r in self.records]

    @property
    def size(self) -> int:
        return len(self.records)

    @property
    def aligned(self) -> bool:
        return bool(self.records) and all(r.aligned is not None for r in self.records)

    @property
    def rows(self) -> list[str]:
        """Aligned rows in member order (raises if the family is not aligned)."""
        if not self.aligned:
            raise ValueError(f"family {self.id!r} is not aligned")
        return [r.aligned or "" for r in self.records]

    def pair_distances(self) -> np.ndarray:
        """Upper-triangle pairwise distances, (n(n-1)/2,); empty when none are known."""
        if self.distances is None or self.size < 2:
            return np.zeros(0)
        iu = np.triu_indices(self.size, 1)
        return np.asarray(self.distances[iu], dtype=np.float64)

    @property
    def median_distance(self) -> float:
        d = self.pair_distances()
        return float(np.median(d)) if d.size else float("nan")

    @property
    def max_distance(self) -> float:
        d = self.pair_distances()
        return float(d.max()) if d.size else float("nan")

    def tree_label(self) -> str:
        if self.tree is None:
            return "no"
        if self.tree_origin == "nj":
            return "nj"
        return "given" if self.tree.has_branch_lengths else "given (topology only)"

    def alignment_label(self) -> str:
        if not self.aligned:
            return "no"
        return (
            "yes" if self.alignment_origin in (None, "input") else f"yes ({self.alignment_origin})"
        )


@dataclass
class FamilySet:
    """Families built from a set of inputs, with what was reported along the way."""

    families: list[Family]
    warnings: list[str] = field(default_factory=list)
    unassigned: list[str] = field(default_factory=list)
    config_json: str = "{}"
    cache_key: str | None = None
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.families)

    def __iter__(self) -> Iterator[Family]:
        return iter(self.families)

    def __getitem__(self, family_id: str) -> Family:
        for fam in self.families:
            if fam.id == family_id:
                return fam
        raise KeyError(family_id)

    @property
    def n_sequences(self) -> int:
        return sum(f.size for f in self.families)

    def table(self) -> list[dict[str, object]]:
        """One row per family: what ``phyloclr families`` prints and writes."""
        rows = []
        for fam in self.families:
            rows.append(
                {
                    "family": fam.id,
                    "members": fam.size,
                    "alphabet": fam.alphabet,
                    "aligned": fam.alignment_label(),
                    "tree": fam.tree_label(),
                    "distance": fam.distance_method or "-",
                    "median_distance": fam.median_distance,
                    "max_distance": fam.max_distance,
                    "saturated_pairs": fam.saturated_pairs,
                    "accession": fam.accession or "",
                    "source": fam.source,
                }
            )
        return rows


def exclude(fset: FamilySet, family_ids: list[str]) -> tuple[FamilySet, list[str]]:
    """A copy of ``fset`` without the given families, and the ids that matched none."""
    drop = set(family_ids)
    present = {f.id for f in fset.families}
    kept = [f for f in fset.families if f.id not in drop]
    return (
        FamilySet(kept, list(fset.warnings), list(fset.unassigned), fset.config_json, None, False),
        sorted(drop - present),
    )
