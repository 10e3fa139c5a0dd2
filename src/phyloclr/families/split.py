"""Giant de novo families split into parts of bounded size, by k-mer similarity.

Connected components chain: at 200,000 UniProt proteins the largest de novo family holds
6,511 members, joined through multi-domain proteins, and its MSA and n² distances dominate the
build. A family above ``max_size`` is split top-down along the average-linkage tree of its
members' Murphy-10 4-mer log-tf-idf cosine distances (idf fitted on the family): a node too
large is replaced by its two children until every part fits. Average linkage peels outliers
off one at a time, so parts under a tenth of ``max_size`` then join the larger part whose mean
vector is nearest theirs, where it has room (the component said they have a homolog in it).
A family above
:data:`LINKAGE_MAX` members (the tree costs n² memory) is first bisected by 2-means on a
16-dimension SVD of those vectors. Each part is a family of its own (``ID.1``, ``ID.2``, … in
order of their first member); the split is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from phyloclr.io.sequences import SeqRecord

#: members above which a family is bisected by 2-means before the average-linkage tree
LINKAGE_MAX = 8000
#: parts under max_size / MIN_PART members are joined to the nearest larger part that has room
MIN_PART = 10


def split_members(seqs: Sequence[str], max_size: int, seed: int = 0) -> list[np.ndarray]:
    """Row numbers of ``seqs`` in parts of at most ``max_size`` (≥ 2), each sorted, ordered by
    their first row; one part holding every row when it already fits."""
    if max_size < 2:
        raise ValueError("max_size must be ≥ 2")
    rows = np.arange(len(seqs))
    if len(seqs) <= max_size:
        return [rows]
    from phyloclr.kmers import inverse_document_frequency, log_tfidf, spectrum_counts

    counts = spectrum_counts(list(seqs), 4, "murphy10")
    x = log_tfidf(counts, inverse_document_frequency(counts))
    parts: list[np.ndarray] = []
    for block in _bisect(x, rows, LINKAGE_MAX, seed):
        parts.extend(_tree_parts(x[block], max_size, block))
    parts = _reattach(x, parts, max_size, max(2, max_size // MIN_PART))
    return sorted((np.sort(p) for p in parts), key=lambda p: int(p[0]))


def _reattach(x: Any, parts: list[np.ndarray], max_size: int, small: int) -> list[np.ndarray]:
    """Parts under ``small`` members (the outliers a top-down cut peels off one by one) joined,
    largest first, to the larger part whose mean vector is nearest theirs, where it still fits;
    a part that fits nowhere stays."""
    big = [p for p in parts if len(p) >= small]
    if not big:
        return parts
    from sklearn.preprocessing import normalize

    def centre(rows: np.ndarray) -> np.ndarray:
        return normalize(np.asarray(x[rows].mean(0)))[0]

    centres = np.stack([centre(p) for p in big])
    kept = []
    for part in sorted((p for p in parts if len(p) < small), key=len, reverse=True):
        room = np.array([len(b) + len(part) <= max_size for b in big])
        if not room.any():
            kept.append(part)
            continue
        sims = np.where(room, centres @ centre(part), -np.inf)
        j = int(np.argmax(sims))
        big[j] = np.concatenate([big[j], part])
    return big + kept


def _bisect(x: Any, rows: np.ndarray, limit: int, seed: int) -> list[np.ndarray]:
    """``rows`` in blocks of at most ``limit`` by recursive 2-means on a 16-dim SVD of x."""
    if len(rows) <= limit:
        return [rows]
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.preprocessing import normalize

    z = normalize(TruncatedSVD(16, random_state=seed).fit_transform(x[rows]))
    labels = KMeans(n_clusters=2, n_init=3, random_state=seed).fit(z).labels_
    halves = [rows[labels == c] for c in (0, 1)]
    if min(len(h) for h in halves) == 0:  # identical vectors: cut in order instead
        halves = [rows[: len(rows) // 2], rows[len(rows) // 2 :]]
    return [b for h in halves for b in _bisect(x, h, limit, seed)]


def _tree_parts(x: Any, max_size: int, rows: np.ndarray) -> list[np.ndarray]:
    """``rows`` cut top-down along the average-linkage tree of x's cosine distances."""
    if len(rows) <= max_size:
        return [rows]
    from scipy.cluster.hierarchy import linkage, to_tree
    from scipy.spatial.distance import squareform

    dist = np.clip(1.0 - (x @ x.T).toarray(), 0.0, None)
    np.fill_diagonal(dist, 0.0)
    root = to_tree(linkage(squareform(dist, checks=False), "average"))
    parts, todo = [], [root]
    while todo:
        node = todo.pop()
        if node.count <= max_size:
            parts.append(rows[np.array(node.pre_order())])
        else:
            todo.extend((node.right, node.left))
    return parts


def split_groups(
    groups: dict[str, list[SeqRecord]], max_size: int, seed: int = 0
) -> tuple[dict[str, list[SeqRecord]], int]:
    """``groups`` with every group above ``max_size`` replaced by its parts (``ID.1``, …, in
    place of the group, order kept), and how many groups were split."""
    out: dict[str, list[SeqRecord]] = {}
    split = 0
    for label, members in groups.items():
        if len(members) <= max_size:
            out[label] = members
            continue
        split += 1
        for k, rows in enumerate(split_members([m.seq for m in members], max_size, seed), 1):
            out[f"{label}.{k}"] = [members[i] for i in rows]
    return out, split
