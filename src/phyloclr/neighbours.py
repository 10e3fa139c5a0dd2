"""Nearest neighbours of embeddings by cosine similarity: exact (blocked matrix products, memory
bounded by the block) or approximate (a faiss HNSW index, when faiss-cpu is installed).

Exact search holds the database (N, D) float32 and one (block, N) score block; it is the
default up to ``exact_limit`` database rows. Approximate search is faiss's
``IndexHNSWFlat`` over inner products of unit vectors; :func:`recall` measures it against
exact search on a sample of queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phyloclr.errors import ConfigError
from phyloclr.progress import Progress


@dataclass(frozen=True)
class NeighbourConfig:
    """method: exact, faiss or auto (exact up to ``exact_limit`` database rows, then faiss if
    installed, else exact); block: query rows per exact score block; hnsw_m / ef_search:
    faiss HNSW graph degree and search breadth."""

    method: str = "auto"
    exact_limit: int = 200_000
    block: int = 1024
    hnsw_m: int = 32
    ef_search: int = 256

    def __post_init__(self) -> None:
        if self.method not in ("auto", "exact", "faiss"):
            raise ConfigError(f"neighbours method must be auto, exact or faiss: {self.method!r}")
        if self.block < 1 or self.exact_limit < 0 or self.hnsw_m < 2 or self.ef_search < 1:
            raise ConfigError("block ≥ 1, exact_limit ≥ 0, hnsw_m ≥ 2 and ef_search ≥ 1")


def unit_rows(x: np.ndarray) -> np.ndarray:
    """(N, D) → (N, D) float32 rows of unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def have_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def chosen_method(n_db: int, config: NeighbourConfig) -> str:
    """The method ``config`` gives for a database of ``n_db`` rows."""
    if config.method == "faiss" and not have_faiss():
        raise ConfigError("neighbours method 'faiss' needs faiss-cpu: pip install faiss-cpu")
    if config.method != "auto":
        return config.method
    return "faiss" if n_db > config.exact_limit and have_faiss() else "exact"


def knn(
    queries: np.ndarray,
    db: np.ndarray,
    k: int,
    config: NeighbourConfig | None = None,
    *,
    exclude: np.ndarray | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest database rows of every query by cosine similarity.

    queries (Q, D), db (N, D); ``exclude`` (Q,) database row to skip per query (-1: none), for
    leave-one-out searches of a database against itself. Returns scores (Q, k') float32 and
    indices (Q, k') int64, best first, k' = min(k, N); missing neighbours (approximate search)
    have index -1 and score -inf.
    """
    cfg = config or NeighbourConfig()
    q, d = unit_rows(queries), unit_rows(db)
    if q.shape[1] != d.shape[1]:
        raise ConfigError(f"queries have {q.shape[1]} dimensions, the database {d.shape[1]}")
    kk = min(k + (exclude is not None), len(d))
    if kk == 0 or len(q) == 0:
        return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
    if chosen_method(len(d), cfg) == "faiss":
        scores, index = _faiss(q, d, kk, cfg)
    else:
        scores, index = _exact(q, d, kk, cfg.block, progress)
    if exclude is not None:
        scores, index = _drop(scores, index, np.asarray(exclude), min(k, len(d)))
    return scores, index


def neighbour_graph(x: np.ndarray, n: int, config: NeighbourConfig | None = None) -> np.ndarray:
    """(N, n') indices of each row's n' = min(n, N - 1) nearest other rows of ``x`` (N, D) by
    cosine similarity, nearest first (ties by row), itself left out."""
    m = min(n, len(x) - 1)
    if m <= 0:
        return np.zeros((len(x), 0), np.int64)
    _, index = knn(x, x, m, config, exclude=np.arange(len(x)))
    return index


def _exact(
    q: np.ndarray, d: np.ndarray, k: int, block: int, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    scores = np.empty((len(q), k), np.float32)
    index = np.empty((len(q), k), np.int64)
    for start in range(0, len(q), block):
        sims = q[start : start + block] @ d.T  # (b, N)
        if k < sims.shape[1]:
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(sims.shape[1]), (len(sims), sims.shape[1]))
        top = np.take_along_axis(sims, part, axis=1)
        # best first; ties by database row, so results do not depend on the block size
        order = np.lexsort((part, -top), axis=1)
        index[start : start + block] = np.take_along_axis(part, order, axis=1)
        scores[start : start + block] = np.take_along_axis(top, order, axis=1)
        if progress is not None:
            progress("searching", min(start + block, len(q)), len(q))
    return scores, index


def _faiss(
    q: np.ndarray, d: np.ndarray, k: int, cfg: NeighbourConfig
) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexHNSWFlat(d.shape[1], cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.add(d)
    index.hnsw.efSearch = max(cfg.ef_search, k)
    scores, found = index.search(q, k)
    scores = np.where(found < 0, -np.inf, scores).astype(np.float32)
    return scores, found.astype(np.int64)


def _drop(
    scores: np.ndarray, index: np.ndarray, exclude: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's excluded database row and keep ``k`` columns."""
    keep = index != exclude[:, None]
    # rows that did not contain the excluded row lose their last column instead
    missing = keep.all(axis=1)
    keep[missing, -1] = False
    width = index.shape[1] - 1
    return scores[keep].reshape(-1, width)[:, :k], index[keep].reshape(-1, width)[:, :k]


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-k (Q, k) that the approximate top-k (Q, k) found."""
    if exact.size == 0:
        return 1.0
    hits = [
        len(set(a.tolist()) & set(e.tolist())) / len(e) for a, e in zip(approx, exact, strict=True)
    ]
    return float(np.mean(hits))
