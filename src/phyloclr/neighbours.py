"""Nearest neighbours of embeddings by cosine similarity: exact (blocked matrix products, memory
bounded by the block) or approximate (cells of a coarse k-means, scored exactly; or a faiss
HNSW index, when faiss-cpu is installed).

Exact search scores the database about 256 MB of float32 rows at a time (a float16 database
stays float16 in memory), ``block`` queries at a time; it is the default up to ``exact_limit``
database rows. ``ivf`` (an inverted file, as faiss's IVF indexes) splits the database into
cells by k-means of the unit rows (or of a PCA space of them), then scores each query exactly
against the rows of the ``ivf_probe`` cells nearest its own, one matrix product per cell: it
costs the probed cells' share of exact search. ``faiss`` is faiss's HNSW graph over inner
products of unit vectors, the rows stored as float32 (``IndexHNSWFlat``) or float16
or int8 (``IndexHNSWSQ``, half or a quarter of the memory; int8's scores are those of the
stored rows, a per-dimension 8-bit grid); rows are made unit and added or searched
:data:`FAISS_CHUNK` at a time, so a float16 database is never copied whole to float32.
A database searched against itself by either approximate method also offers each found pair
to the other row (cosine is symmetric, so a pair one row's search missed may be in the other's
list); ``symmetric: false`` turns that off. :func:`recall` measures either against exact search
on a sample of queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from phyloclr.errors import ConfigError
from phyloclr.progress import Progress

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class NeighbourConfig:
    """method: exact, ivf, faiss or auto (exact up to ``exact_limit`` database rows, then faiss if
    installed, else exact; the graph overtakes exact search near 50,000 rows, and exact costs
    2× at 82,153 × 4,224, benchmarks/RESULTS.md "Where exact search stops paying"); block:
    query rows per exact score block; hnsw_m / ef_search /
    hnsw_ef_construction: faiss HNSW graph degree, search breadth and build breadth (faiss's
    default 40; 120 made a 200,000-row self-search 1.6× slower and found 98 % of the neighbours
    above the noise instead of 88 %, benchmarks/RESULTS.md "Whose neighbours a graph can find");
    hnsw_storage: how the graph stores the rows
    (float16: half float32's memory, at the same recall and 1.4–1.6× faster on the default
    model's embeddings, benchmarks/RESULTS.md "faiss HNSW at the default model's width";
    int8: a quarter, faiss's 8-bit scalar quantizer fitted on :data:`INT8_FIT` rows, its
    scores off the cosine by a few thousandths, benchmarks/RESULTS.md "A million neighbours
    from an 8-bit graph");
    ivf_cells: k-means cells of ``ivf`` (0: about
    √N), ivf_probe: cells scored per query (its own and the nearest others), ivf_dims: PCA
    dimensions of the k-means (0: the unit rows themselves), ivf_sample: rows it is fitted on
    (at least 20 per cell), seed: its seed; precision: what ``ivf`` multiplies in (float32;
    bfloat16, whose products are about 5× faster where the CPU has AMX, the whole search 1.4×,
    scores then rounded to bfloat16's 8 significant bits; auto: bfloat16 where native, see
    :func:`phyloclr.devices.native_bfloat16`); symmetric: a database searched against itself
    by ``ivf`` or ``faiss`` also offers each pair found to the other row's list (at a million
    rows +0.026 of the neighbours above the noise, in 21 s; benchmarks/RESULTS.md "Why a graph
    loses neighbours at a million"); distinct: a database searched against itself by ``faiss``
    is indexed by its distinct rows only, and identical rows share one list, each other first
    (at a million rows, 9 % of which repeat another, +0.029 of the neighbours above the noise
    in 92 s more, 27.7 min; benchmarks/RESULTS.md "Identical rows in a graph")."""

    method: str = "auto"
    exact_limit: int = 200_000
    block: int = 1024
    hnsw_m: int = 32
    ef_search: int = 256
    hnsw_ef_construction: int = 40
    hnsw_storage: str = "float16"
    ivf_cells: int = 0
    ivf_probe: int = 16
    ivf_dims: int = 0
    ivf_sample: int = 50_000
    seed: int = 0
    precision: str = "float32"
    symmetric: bool = True
    distinct: bool = True

    def __post_init__(self) -> None:
        if self.method not in ("auto", "exact", "ivf", "faiss"):
            raise ConfigError(
                f"neighbours method must be auto, exact, ivf or faiss: {self.method!r}"
            )
        if (self.block < 1 or self.exact_limit < 0 or self.hnsw_m < 2 or self.ef_search < 1
                or self.hnsw_ef_construction < 1):  # fmt: skip
            raise ConfigError(
                "block ≥ 1, exact_limit ≥ 0, hnsw_m ≥ 2, ef_search ≥ 1 and hnsw_ef_construction ≥ 1"
            )
        if self.ivf_cells < 0 or self.ivf_probe < 1 or self.ivf_dims < 0 or self.ivf_sample < 1:
            raise ConfigError("ivf_cells ≥ 0, ivf_probe ≥ 1, ivf_dims ≥ 0 and ivf_sample ≥ 1")
        if self.hnsw_storage not in ("float32", "float16", "int8"):
            raise ConfigError(
                f"neighbours hnsw_storage must be float32, float16 or int8: {self.hnsw_storage!r}"
            )
        if self.precision not in ("float32", "bfloat16", "auto"):
            raise ConfigError(
                f"neighbours precision must be float32, bfloat16 or auto: {self.precision!r}"
            )


def unit_rows(x: np.ndarray) -> np.ndarray:
    """(N, D) → (N, D) float32 rows of unit length (zero rows stay zero)."""
    x = np.asarray(x)
    return _unit(x, _row_norms(x, 65536), np.arange(len(x)))


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


#: the settings, besides the method, that change what each approximate method finds
_SETTINGS = {
    "faiss": (
        "hnsw_m",
        "ef_search",
        "hnsw_ef_construction",
        "hnsw_storage",
        "seed",
        "symmetric",
        "distinct",
    ),
    "ivf": ("ivf_cells", "ivf_probe", "ivf_dims", "ivf_sample", "seed", "precision", "symmetric"),
}


def settings_key(n_db: int, config: NeighbourConfig) -> str:
    """The method ``config`` gives a database of ``n_db`` rows and the settings that change
    its lists, as a string (for results kept on disk: equal keys, equal lists)."""
    method = chosen_method(n_db, config)
    fields = _SETTINGS.get(method, ())
    return ";".join([method, *(f"{f}={getattr(config, f)}" for f in fields)])


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

    queries (Q, D), db (N, D) (any float dtype; ``ivf`` keeps a float16 database float16);
    ``exclude`` (Q,) database row to skip per query (-1: none), for
    leave-one-out searches of a database against itself. Given the same array as both
    (``queries is db``), ``ivf`` and ``faiss`` with ``symmetric`` also offer each pair found to
    the other row (:func:`with_reverse`). Returns scores (Q, k') float32 and
    indices (Q, k') int64, best first, k' = min(k, N); missing neighbours (approximate search)
    have index -1 and score -inf.
    """
    cfg = config or NeighbourConfig()
    same = queries is db
    queries, db = np.asarray(queries), np.asarray(db)
    if queries.ndim != 2 or db.ndim != 2 or queries.shape[1] != db.shape[1]:
        raise ConfigError(
            f"queries have shape {queries.shape}, the database {db.shape}: expected two 2-D "
            "arrays of the same number of dimensions"
        )
    kk = min(k + (exclude is not None), len(db))
    if kk == 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    method = chosen_method(len(db), cfg)
    distinct = same and method == "faiss" and cfg.distinct  # merges its reverse pairs itself
    if method == "ivf":
        scores, index = _ivf(db if same else queries, db, kk, cfg, progress)
    elif distinct:
        scores, index = _faiss_distinct(db, kk, cfg)
    elif method == "faiss":
        scores, index = _faiss(db if same else queries, db, kk, cfg)
    else:
        scores, index = _exact(db if same else queries, db, kk, cfg.block, progress)
    if same and method != "exact" and cfg.symmetric and not distinct:
        scores, index = with_reverse(scores, index)
    if exclude is not None:
        scores, index = _drop(scores, index, np.asarray(exclude), min(k, len(db)))
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
    """Every query against every row, the database a chunk of rows at a time (any dtype)."""
    norm_d = _row_norms(d, block)
    norm_q = norm_d if q is d else _row_norms(q, block)
    return _score(q, norm_q, np.arange(len(q)), d, norm_d, np.arange(len(d)), k, block,
                  bf16=False, progress=progress)  # fmt: skip


def _row_norms(x: np.ndarray, block: int) -> np.ndarray:
    """(N,) float32 row lengths, at least 1e-12 (zero rows stay zero), ``block`` rows at a
    time."""
    import torch

    out = np.empty(len(x), np.float32)
    for a in range(0, len(x), block):
        rows = torch.from_numpy(np.ascontiguousarray(x[a : a + block])).float().numpy()
        out[a : a + block] = np.maximum(np.linalg.norm(rows, axis=1), 1e-12)
    return out


def _unit(x: np.ndarray, norms: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(len(rows), D) float32 unit rows of ``x`` (any dtype; converted by torch, several times
    faster than NumPy from float16); :func:`unit_rows` is this of every row."""
    import torch

    picked = torch.from_numpy(np.ascontiguousarray(x[rows])).float()
    return picked.div_(torch.from_numpy(norms[rows])[:, None]).numpy()


@dataclass(frozen=True)
class _Cells:
    """A coarse k-means of unit rows in a PCA space: mean (D,), projection (D, p) or None (the
    rows themselves, p = D), centroids (C, p)."""

    mean: np.ndarray
    proj: np.ndarray | None
    centroids: np.ndarray

    def assign(self, x: np.ndarray, norms: np.ndarray, block: int) -> np.ndarray:
        """(N,) cell of every row of ``x`` (N, D)."""
        out = np.empty(len(x), np.int64)
        c2 = (self.centroids**2).sum(1)
        for a in range(0, len(x), block):
            rows = np.arange(a, min(a + block, len(x)))
            z = _unit(x, norms, rows) - self.mean
            if self.proj is not None:
                z = z @ self.proj
            out[rows] = np.argmin(c2[None, :] - 2.0 * z @ self.centroids.T, axis=1)
        return out


def _fit_cells(d: np.ndarray, norms: np.ndarray, cells: int, cfg: NeighbourConfig) -> _Cells:
    import warnings

    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils.extmath import randomized_svd

    rng = np.random.default_rng(cfg.seed)
    size = min(len(d), max(cfg.ivf_sample, 20 * cells))
    sample = np.sort(rng.choice(len(d), size, replace=False))
    xs = _unit(d, norms, sample)
    if cfg.ivf_dims == 0 or cfg.ivf_dims >= xs.shape[1]:  # k-means of the unit rows themselves
        mean, proj, z = np.zeros(xs.shape[1], np.float32), None, xs
    else:
        mean = xs.mean(0)
        xs -= mean
        dims = max(1, min(cfg.ivf_dims, len(xs) - 1))
        _, _, vt = randomized_svd(xs, dims, random_state=cfg.seed)
        proj = np.ascontiguousarray(vt.T, dtype=np.float32)  # (D, p)
        z = xs @ proj
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # fewer distinct rows than cells
        km = KMeans(cells, init="random", n_init=1, max_iter=20, random_state=cfg.seed).fit(z)
    return _Cells(mean, proj, km.cluster_centers_.astype(np.float32))


def _groups(cell: np.ndarray, cells: int) -> list[np.ndarray]:
    """Rows of each cell, ascending."""
    order = np.argsort(cell, kind="stable")
    return np.split(order, np.cumsum(np.bincount(cell, minlength=cells))[:-1])


def _ivf(
    q: np.ndarray, d: np.ndarray, k: int, cfg: NeighbourConfig, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    """Score each query exactly against the rows of the ``ivf_probe`` cells nearest (by
    centroid) the cell it falls in. ``q is d`` for a search of a database against itself."""
    import torch

    from phyloclr.devices import resolve_precision

    bf16 = resolve_precision(cfg.precision, torch.device("cpu")) == "bfloat16"
    norm_d = _row_norms(d, cfg.block)
    norm_q = norm_d if q is d else _row_norms(q, cfg.block)
    n_cells = min(len(d), cfg.ivf_cells or max(1, round(np.sqrt(len(d)))))
    cells = _fit_cells(d, norm_d, n_cells, cfg)
    d_cell = cells.assign(d, norm_d, cfg.block)
    q_cell = d_cell if q is d else cells.assign(q, norm_q, cfg.block)
    members, asked = _groups(d_cell, n_cells), _groups(q_cell, n_cells)
    cen = cells.centroids
    c2 = (cen**2).sum(1)
    gap = c2[:, None] + c2[None, :] - 2.0 * cen @ cen.T
    np.fill_diagonal(gap, -np.inf)  # a cell probes itself first
    n_probe = min(cfg.ivf_probe, n_cells)
    probes = np.argsort(gap, axis=1, kind="stable")[:, :n_probe]
    scores = np.full((len(q), k), -np.inf, np.float32)
    index = np.full((len(q), k), -1, np.int64)
    done = 0
    for c in np.flatnonzero([len(a) for a in asked]):
        cand = np.sort(np.concatenate([members[p] for p in probes[c]]))
        who = asked[c]
        scores[who], index[who] = _score(q, norm_q, who, d, norm_d, cand, k, cfg.block, bf16)
        done += len(who)
        if progress is not None:
            progress("searching", done, len(q))
    return scores, index


def _score(
    q: np.ndarray,
    norm_q: np.ndarray,
    who: np.ndarray,
    d: np.ndarray,
    norm_d: np.ndarray,
    cand: np.ndarray,
    k: int,
    block: int,
    bf16: bool,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of rows ``cand`` of ``d`` for queries ``who`` of ``q`` by cosine: scores
    (len(who), k) float32 and rows, best first, ties by row (-1 and -inf where fewer). The
    rows are taken about 256 MB of float32 at a time, the queries ``block`` at a time."""
    import torch  # float16 → float32 and bfloat16 products

    chunk = max(block, (256 << 20) // (4 * d.shape[1]))
    best_s = np.full((len(who), k), -np.inf, np.float32)
    best_i = np.full((len(who), k), -1, np.int64)
    total, done = len(who) * -(-len(cand) // chunk), 0  # query blocks × row chunks
    for a in range(0, len(cand), chunk):
        rows = cand[a : a + chunk]
        block_d = _unit(d, norm_d, rows)
        block_t = torch.from_numpy(block_d).bfloat16() if bf16 else None
        for b in range(0, len(who), block):
            qb = _unit(q, norm_q, who[b : b + block])
            if block_t is None:
                sims = torch.from_numpy(qb @ block_d.T)  # (b, m)
            else:
                sims = torch.from_numpy(qb).bfloat16() @ block_t.T
            best_s[b : b + block], best_i[b : b + block] = _merge(
                best_s[b : b + block], best_i[b : b + block], sims, rows, k
            )
            done += len(qb)
            if progress is not None:
                progress("searching", done, total)
    order = np.lexsort((best_i, -best_s), axis=1)  # best first, ties by row
    return np.take_along_axis(best_s, order, axis=1), np.take_along_axis(best_i, order, axis=1)


def _merge(
    best_s: np.ndarray, best_i: np.ndarray, sims: torch.Tensor, rows: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of a running top-k (b, k) and a new score block (b, m) over ``rows``
    (torch's top-k: about twice as fast as NumPy's partition, on either dtype)."""
    import torch

    if sims.shape[1] > k:
        top, part = torch.topk(sims, k, dim=1, sorted=False)
        new_s, new_i = top.float().numpy(), rows[part.numpy()]
    else:
        new_s, new_i = sims.float().numpy(), np.broadcast_to(rows, sims.shape)
    all_s = np.concatenate([best_s, new_s], axis=1)
    all_i = np.concatenate([best_i, new_i], axis=1)
    # the k largest scores, ties by the lower row (rows of -1 score -inf)
    order = np.lexsort((np.where(all_i < 0, np.iinfo(np.int64).max, all_i), -all_s), axis=1)
    order = order[:, :k]
    return np.take_along_axis(all_s, order, axis=1), np.take_along_axis(all_i, order, axis=1)


#: rows made unit and added to, or searched in, a faiss index at a time
FAISS_CHUNK = 65_536
#: rows drawn to fit the 8-bit grid of ``hnsw_storage: int8`` (its range in each dimension)
INT8_FIT = 65_536


def _faiss(
    q: np.ndarray, d: np.ndarray, k: int, cfg: NeighbourConfig, rows: np.ndarray | None = None,
    norm_d: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """faiss HNSW search of ``q`` (Q, D) in ``d`` (N, D) (any float dtype; ``q is d`` for a
    database against itself), rows made unit :data:`FAISS_CHUNK` at a time. With ``rows``
    (R,), ``q is d`` and the database is ``d[rows]`` searched against itself, without a copy;
    the indices returned are then positions in ``rows``. ``norm_d`` (N,): ``d``'s
    :func:`_row_norms`, when the caller has them."""
    import faiss

    db_rows = np.arange(len(d)) if rows is None else np.asarray(rows, np.int64)
    q_rows = db_rows if rows is not None else np.arange(len(q))

    index: Any
    if cfg.hnsw_storage == "float32":
        index = faiss.IndexHNSWFlat(d.shape[1], cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    else:
        sq = faiss.ScalarQuantizer  # its kinds are ints; faiss's stubs say otherwise
        kind: Any = sq.QT_fp16 if cfg.hnsw_storage == "float16" else sq.QT_8bit
        index = faiss.IndexHNSWSQ(d.shape[1], kind, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = cfg.hnsw_ef_construction
    norm_d = _row_norms(d, cfg.block) if norm_d is None else norm_d
    n = len(db_rows)
    if not index.is_trained:  # the 8-bit grid: each dimension's range over a sample of rows
        fit = np.random.default_rng(cfg.seed).choice(n, min(n, INT8_FIT), False)
        index.train(_unit(d, norm_d, np.sort(db_rows[fit])))
    for a in range(0, n, FAISS_CHUNK):
        index.add(_unit(d, norm_d, db_rows[a : a + FAISS_CHUNK]))
    index.hnsw.efSearch = max(cfg.ef_search, k)
    norm_q = norm_d if q is d else _row_norms(q, cfg.block)
    scores = np.empty((len(q_rows), k), np.float32)
    found = np.empty((len(q_rows), k), np.int64)
    for a in range(0, len(q_rows), FAISS_CHUNK):
        b = min(a + FAISS_CHUNK, len(q_rows))
        s, f = index.search(_unit(q, norm_q, q_rows[a:b]), k)
        scores[a:b] = np.where(f < 0, -np.inf, s)
        found[a:b] = f
    return scores, found


def identical_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` (N, D) whose bytes are equal: (N,) each row's group, groups numbered in
    the order of their first rows, and (G,) each group's first row (increasing)."""
    import hashlib

    seen: dict[bytes, int] = {}
    group = np.empty(len(x), np.int64)
    for i in range(len(x)):
        digest = hashlib.blake2b(np.ascontiguousarray(x[i]).tobytes(), digest_size=16).digest()
        group[i] = seen.setdefault(digest, len(seen))
    first = np.full(len(seen), len(x), np.int64)
    np.minimum.at(first, group, np.arange(len(x)))
    return group, first


def _faiss_distinct(d: np.ndarray, k: int, cfg: NeighbourConfig) -> tuple[np.ndarray, np.ndarray]:
    """A faiss self-search of ``d`` (N, D) over its distinct rows: each group of identical rows
    is indexed and searched once (with the reverse pairs when ``symmetric``), and each of its
    rows gets the list: itself and its twins (by row), then the members of the nearest groups
    (by row within a group). Returns (N, k) scores and indices as :func:`knn`'s."""
    group, first = identical_rows(d)
    if len(first) == len(d):  # nothing repeats: the plain search
        scores, index = _faiss(d, d, k, cfg)
        return with_reverse(scores, index) if cfg.symmetric else (scores, index)
    norms = _row_norms(d, cfg.block)
    g_scores, g_index = _faiss(d, d, k, cfg, rows=first, norm_d=norms)
    if cfg.symmetric:
        g_scores, g_index = with_reverse(g_scores, g_index)
    return expand_groups(g_scores, g_index, group, first, (norms[first] > 1e-12), k)


#: groups whose lists :func:`expand_groups` builds at a time
EXPAND_BLOCK = 65_536


def expand_groups(
    g_scores: np.ndarray, g_index: np.ndarray, group: np.ndarray, first: np.ndarray,
    nonzero: np.ndarray, k: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Row lists from a search of groups of identical rows (:func:`identical_rows`).

    g_scores, g_index (G, w): each group's found groups, best first (-1 / -inf where missing;
    a group's own entry is dropped); group (N,), first (G,): as ``identical_rows`` gives them;
    nonzero (G,): whether a group's rows are not zero (their cosine to themselves, 1, else 0).
    Each row of a group gets: the group's rows (itself and its twins, by row), then the rows
    of the groups found, in their order (by row within a group), the first ``k``. Returns
    (N, k) float32 scores and int64 rows (-inf / -1 past the end). Vectorised,
    :data:`EXPAND_BLOCK` groups at a time."""
    n, n_groups = len(group), len(first)
    sizes = np.bincount(group, minlength=n_groups)
    members = np.argsort(group, kind="stable")  # rows by group, by row within one
    starts = np.concatenate([[0], np.cumsum(sizes)])
    out_s = np.full((n, k), -np.inf, np.float32)
    out_i = np.full((n, k), -1, np.int64)
    width, slots = g_index.shape[1] + 1, np.arange(k)
    for a in range(0, n_groups, EXPAND_BLOCK):
        ids = np.arange(a, min(a + EXPAND_BLOCK, n_groups))
        g = len(ids)
        # each group's entries: itself first, then the groups found, less its own entry
        own = g_index[ids] == ids[:, None]
        c = np.concatenate([ids[:, None], np.where(own, -1, g_index[ids])], 1)
        found_s = np.where(own, -np.inf, g_scores[ids]).astype(np.float32)
        cs = np.concatenate([nonzero[ids].astype(np.float32)[:, None], found_s], 1)
        size = np.where(c >= 0, sizes[np.maximum(c, 0)], 0)  # (g, width) rows each entry gives
        cum = np.cumsum(size, 1)  # where each entry's rows end in the list
        ends = np.minimum(cum, k)
        # the entry that fills each slot: a search along each row's ends, all rows at once
        step = k + 1
        shift = step * np.arange(g)[:, None]  # each row's values apart from the others'
        found = np.searchsorted((ends + shift).ravel(), (slots[None, :] + shift).ravel(), "right")
        where = found.reshape(g, k) - width * np.arange(g)[:, None]
        filled = slots[None, :] < cum[:, -1:]
        where = np.minimum(where, width - 1)
        entry = np.take_along_axis(c, where, 1)
        offset = slots[None, :] - (np.take_along_axis(cum, where, 1)
                                   - np.take_along_axis(size, where, 1))  # fmt: skip
        rows = members[np.where(filled, starts[np.maximum(entry, 0)] + offset, 0)]
        lists = np.where(filled, rows, -1)
        scores = np.where(filled, np.take_along_axis(cs, where, 1), -np.inf)
        # every row of a group gets its group's list
        block_sizes = sizes[a : a + g]
        lead = members[starts[a] : starts[a + g]]
        rep = np.repeat(np.arange(g), block_sizes)
        out_i[lead], out_s[lead] = lists[rep], scores[rep]
    return out_s, out_i


#: rows of a self-search whose forward and reverse pairs :func:`with_reverse` merges at a time
REVERSE_BLOCK = 65_536


def with_reverse(scores: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A self-search's lists with each found pair also offered to the other row.

    scores, index (N, w): row i's found rows of the same N (-1 and -inf where missing). Each
    row keeps the best w of its own pairs and of the pairs (j, i) other rows found, a pair
    once (at the score row i's own search gave it, if it found it); best first, ties by row.
    Returns (N, w) float32 and int64. Memory: one (N · w,) sort order and
    :data:`REVERSE_BLOCK` rows' pairs at a time.
    """
    import torch  # its stable sorts: 3-4× NumPy's here

    def stable_order(key: np.ndarray) -> np.ndarray:
        return torch.sort(torch.from_numpy(key), stable=True).indices.numpy()

    index = np.asarray(index, np.int64)
    n, w = index.shape
    flat_i, flat_s = index.ravel(), scores.ravel()
    target = np.where(flat_i < 0, n, flat_i)  # missing pairs sort last and are never read
    order = stable_order(target)
    starts = np.concatenate([[0], np.cumsum(np.bincount(target, minlength=n + 1)[:n])])
    out_s = np.full((n, w), -np.inf, np.float32)
    out_i = np.full((n, w), -1, np.int64)
    for a in range(0, n, REVERSE_BLOCK):
        b = min(a + REVERSE_BLOCK, n)
        back = order[starts[a] : starts[b]]  # pairs (j, i) with i in [a, b)
        row = np.concatenate([np.repeat(np.arange(a, b), w), target[back]])
        cand = np.concatenate([index[a:b].ravel(), back // w])
        sc = np.concatenate([scores[a:b].ravel(), flat_s[back]]).astype(np.float32)
        keep = cand >= 0
        pair, sc = (row[keep] - a) * n + cand[keep], sc[keep]
        # each pair once, at the score of its first offer (its own row's search), by (row, cand)
        by_pair = stable_order(pair)
        pair, sc = pair[by_pair], sc[by_pair]
        first = np.ones(len(pair), bool)
        first[1:] = pair[1:] != pair[:-1]
        pair, sc = pair[first], sc[first]
        row, cand = pair // n + a, pair % n
        # by row, then best first; the stable sort keeps ties by row
        best = stable_order(((row - a) << 32) | _descending(sc))
        row, cand, sc = row[best], cand[best], sc[best]
        counts = np.bincount(row - a, minlength=b - a)
        rank = np.arange(len(row)) - (np.cumsum(counts) - counts)[row - a]  # place in its row
        top = rank < w
        out_s[row[top], rank[top]] = sc[top]
        out_i[row[top], rank[top]] = cand[top]
    return out_s, out_i


def _descending(scores: np.ndarray) -> np.ndarray:
    """(M,) float32 → (M,) int64 in [0, 2³²) that orders as the scores do, descending."""
    bits = np.ascontiguousarray(scores, np.float32).view(np.int32).astype(np.int64)
    ascending = np.where(bits < 0, ~bits & 0x7FFFFFFF, bits | 0x80000000)  # IEEE order
    return 0xFFFFFFFF - ascending


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
