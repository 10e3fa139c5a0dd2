"""De novo protein families at corpus scale: k-mer prefilter, SIMD alignment, components.

1. Prefilter. Each protein is read in Murphy's 10-letter reduced alphabet (LVIM, C, A, G, ST,
   P, FYW, EDNQ, KR, H; other letters break k-mers); its k-mers (``prefilter_k``, default 5)
   go into a positional index, leaving out k-mers occurring more than ``max_kmer_ratio``
   times as often as the average one and more than 100 times (low complexity, repeats).
   A protein is a candidate for a query when two k-mer hits lie on one diagonal, not
   overlapping and starting at most ``two_hit_window`` (40) residues apart (BLAST's two-hit
   rule); the ``max_candidates`` with most such pairs are kept.
2. Confirmation. Each query is aligned to its candidates by Smith-Waterman (pyopal's SIMD
   Opal, BLOSUM62, gaps 11 + 1 per residue as BLAST), and the raw score S turned into a
   BLAST-style E-value E = K·m·n·exp(−λS) with λ = 0.267, K = 0.041 (BLOSUM62 11/1), m the
   query length and n the residues of the whole corpus. An edge needs E ≤ ``evalue`` and an
   alignment covering at least ``min_coverage`` of both proteins. Candidates are aligned in
   batches, best first; one already joined to the query is skipped, whether by edges found
   earlier in the shard or by the components known when the shard started (every finished
   shard and the edge store): the components are the same as with every candidate aligned,
   and a family of F members costs about F queries' worth of batches, not F².
3. Families are the connected components of the edges; singletons stay families of one.

Queries are cut into shards that run in a pool of processes (a fresh process per shard);
each finished shard is written to an edge store on disk (atomic files under the cache
directory, keyed by the search settings), holding for every searched sequence (by content
digest) its hits with scores and coverages. A later run, after an interruption or on a
corpus that grew, searches only the sequences the store has not seen (their hits reach the
old ones, and edges are undirected) and re-applies the E-value and coverage thresholds with
the current corpus size. (A pair skipped because its proteins were already joined is not
searched again if a larger corpus later pushes the joining edge over the E-value cut-off.)

Across machines: ``part=(i, n)`` searches only the sequences whose content digest is i modulo
n (the same split on every machine, whatever the store holds when each starts) into the
store; machines sharing the store each run one part, and a final run without a part finds
every sequence searched and only joins the components.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import queue
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phyloclr.families.config import SearchSettings
from phyloclr.families.prefilter import KmerIndex, candidates, kmer_index
from phyloclr.fsutil import atomic_path
from phyloclr.io.ids import digest64
from phyloclr.progress import Progress

LAMBDA, K_STAT = 0.267, 0.041  # BLOSUM62, gap open 11, extend 1 (NCBI BLAST gapped values)
GAP_OPEN, GAP_EXTEND = 12, 1  # Opal charges gap_open for a gap's first residue: 11 + 1


def digests(seqs: Sequence[str]) -> np.ndarray:
    """(N,) uint64 content digests (BLAKE2b, 8 bytes) of the sequences."""
    return np.array([digest64(s) for s in seqs], dtype=np.uint64)


def evalue(score: np.ndarray, query_length: int | np.ndarray, corpus_residues: int) -> np.ndarray:
    """BLAST-style E-value of raw Smith-Waterman scores (BLOSUM62, 11/1)."""
    return K_STAT * query_length * corpus_residues * np.exp(-LAMBDA * np.asarray(score, float))


# ---- worker side: the corpus lives in module globals set once per process --------------------
_W: dict[str, object] = {}


def _init_worker(seqs: list[str], index: KmerIndex, settings: SearchSettings) -> None:
    import pyopal

    _W["seqs"] = seqs
    _W["index"] = index
    _W["settings"] = settings
    _W["residues"] = sum(len(s) for s in seqs)
    _W["db"] = pyopal.Database(seqs)
    _W["aligner"] = pyopal.Aligner("BLOSUM62", gap_open=GAP_OPEN, gap_extend=GAP_EXTEND)


def _search_rows(task: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rows, known = task
    return rows, _search_shard(rows, known)


def _search_shard(rows: np.ndarray, known: np.ndarray) -> dict[str, np.ndarray]:
    """Edges found for the query rows: arrays q, t (row numbers), score, q_cov, t_cov.

    Candidates are aligned in batches, best first, and a candidate already joined to the
    query is skipped: joined by the components ``known`` when the shard started ((N,) label
    of each row, from the edges of finished shards and of the store) or by edges found
    earlier in this shard. The components come out the same as with every candidate
    aligned, at a fraction of the alignments.
    """
    seqs: list[str] = _W["seqs"]  # type: ignore[assignment]
    settings: SearchSettings = _W["settings"]  # type: ignore[assignment]
    db, aligner = _W["db"], _W["aligner"]
    residues: int = _W["residues"]  # type: ignore[assignment]
    cand = candidates(_W["index"], rows, seqs, settings)  # type: ignore[arg-type]
    label = known.tolist()
    joined = UnionFind(len(seqs))  # over the known components' labels (row numbers)
    out: dict[str, list[float]] = {c: [] for c in ("q", "t", "score", "q_cov", "t_cov")}
    for q, cols in zip(rows.tolist(), cand, strict=True):
        m = len(seqs[q])
        if len(cols) == 0:
            continue
        min_score = (math.log(K_STAT * m * residues) - math.log(settings.evalue)) / LAMBDA
        todo = cols.tolist()
        while todo:
            root = joined.find(label[q])
            batch: list[int] = []
            while todo and len(batch) < settings.batch:
                c = todo.pop(0)
                if joined.find(label[c]) != root:
                    batch.append(c)
            if not batch:
                break
            ends = aligner.align(seqs[q], db.extract(batch), mode="end")  # type: ignore[attr-defined]
            good = [batch[r.target_index] for r in ends if r.score >= min_score]
            if not good:
                continue
            for r in aligner.align(seqs[q], db.extract(good), mode="full"):  # type: ignore[attr-defined]
                t = good[r.target_index]
                q_cov = (r.query_end - r.query_start + 1) / m
                t_cov = (r.target_end - r.target_start + 1) / len(seqs[t])
                if min(q_cov, t_cov) < settings.min_coverage:
                    continue
                for c, v in zip(out, (q, t, r.score, q_cov, t_cov), strict=True):
                    out[c].append(v)
                joined.union(label[q], label[t])
    return {
        "q": np.array(out["q"], dtype=np.int64), "t": np.array(out["t"], dtype=np.int64),
        "score": np.array(out["score"], dtype=np.float32),
        "q_cov": np.array(out["q_cov"], dtype=np.float32),
        "t_cov": np.array(out["t_cov"], dtype=np.float32),
    }  # fmt: skip


class UnionFind:
    """Union-find over the rows 0..n-1 (joining u and v makes v's root u's root's parent).
    Used for the families (fed with edges as shards finish) and, inside a shard, over the
    components known when it started."""

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)

    def find(self, x: int) -> int:
        """The root of x (with path halving)."""
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return int(x)

    def union(self, u: int, v: int) -> None:
        """Join the sets of u and v."""
        ru, rv = self.find(u), self.find(v)
        if ru != rv:
            self.parent[ru] = rv

    def join(self, a: np.ndarray, b: np.ndarray) -> None:
        """Join rows a[i] and b[i] (arrays of equal length)."""
        for u, v in zip(a.tolist(), b.tolist(), strict=True):
            self.union(u, v)

    def labels(self) -> np.ndarray:
        """(N,) int32 root of every row (and the parents compressed to it)."""
        x = self.parent
        while not np.array_equal(up := x[x], x):
            x = up
        self.parent = x
        return x.astype(np.int32)


# ---- edge store ------------------------------------------------------------------------------


class EdgeStore:
    """Hits per searched sequence (by digest), in ``part-*.npz`` files under ``root``."""

    def __init__(self, root: Path):
        self.root = root

    def load(self) -> tuple[set[int], dict[str, np.ndarray]]:
        """(digests already searched, hits: q, t digests, score, q_len, q_cov, t_cov)."""
        searched: set[int] = set()
        cols: dict[str, list[np.ndarray]] = {n: [] for n in _STORE_COLS}
        if self.root.is_dir():
            for part in sorted(self.root.glob("part-*.npz")):
                with np.load(part) as z:
                    searched.update(z["searched"].tolist())
                    for n in _STORE_COLS:
                        cols[n].append(z[n])
        merged = {
            n: np.concatenate(v) if v else np.zeros(0, dtype=_STORE_COLS[n])
            for n, v in cols.items()
        }
        return searched, merged

    def save(self, name: str, searched: np.ndarray, hits: dict[str, np.ndarray]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.root / f"part-{name}.npz") as tmp, tmp.open("wb") as fh:
            np.savez(fh, searched=searched, **hits)  # type: ignore[arg-type]


_STORE_COLS = {"q": np.uint64, "t": np.uint64, "score": np.float32, "q_len": np.int64,
               "q_cov": np.float32, "t_cov": np.float32}  # fmt: skip


@dataclass
class HomologyResult:
    labels: np.ndarray  # (N,) component of each sequence, 0.. by decreasing size
    n_edges: int
    searched: int  # sequences searched in this run (the rest came from the store)


def homology_components(
    seqs: Sequence[str],
    *,
    settings: SearchSettings | None = None,
    store_dir: Path | None = None,
    workers: int = 1,
    shard_size: int = 1000,
    progress: Progress | None = None,
    part: tuple[int, int] | None = None,
) -> HomologyResult:
    """Families of ``seqs`` (proteins) as connected components; see the module docstring.
    With ``part`` = (i, n) only that part of the queries is searched (the labels then hold
    the components known so far)."""
    settings = settings or SearchSettings()
    seqs = list(seqs)
    n = len(seqs)
    dig = digests(seqs)
    store = EdgeStore(store_dir / settings.key()) if store_dir is not None else None
    searched, stored = store.load() if store is not None else (set(), None)
    first_of: dict[int, int] = {}
    for i, d in enumerate(dig.tolist()):
        first_of.setdefault(d, i)
    todo = sorted(i for d, i in first_of.items() if d not in searched)
    if part is not None:
        todo = [i for i in todo if int(dig[i]) % part[1] == part[0]]
    pending = np.array(todo, dtype=np.int64)
    shards = [pending[s : s + shard_size] for s in range(0, len(pending), shard_size)]
    residues = sum(len(s) for s in seqs)
    # identical sequences join the first copy
    dup = np.array([i for i in range(n) if first_of[int(dig[i])] != i], dtype=np.int64)
    copy_of = np.array([first_of[int(dig[i])] for i in dup], dtype=np.int64)
    components = UnionFind(n)  # fed with every edge as it is known; the families in the end
    components.join(dup, copy_of)
    from_store = [stored] if stored is not None and len(stored["q"]) else []
    qi, ti = _edges(from_store, first_of, residues, settings)
    components.join(qi, ti)
    n_edges = len(qi)
    if shards:
        index = kmer_index(seqs, settings.prefilter_k, settings.max_kmer_ratio)
        runs = _run_shards(shards, components, seqs, index, settings, workers)
        for done, (rows, hits) in enumerate(runs, 1):
            new = _record(store, dig, seqs, rows, hits)
            qi, ti = _edges([new], first_of, residues, settings)
            components.join(qi, ti)
            n_edges += len(qi)
            if progress is not None:
                progress("homology search", done, len(shards))
    _, comp = np.unique(components.labels(), return_inverse=True)
    sizes = np.bincount(comp)
    _, first = np.unique(comp, return_index=True)  # first member of each component
    order = np.lexsort((first, -sizes))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return HomologyResult(rank[comp], n_edges, len(pending))


def _edges(pieces: list[dict[str, np.ndarray]], first_of: dict[int, int], residues: int,
           settings: SearchSettings) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Rows (q, t) joined by the hits that pass the thresholds, for this corpus's size."""
    if not pieces:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cols = {c: np.concatenate([p[c] for p in pieces]) for c in _STORE_COLS}
    e = evalue(cols["score"], cols["q_len"], residues)
    cov = np.minimum(cols["q_cov"], cols["t_cov"])
    ok = (e <= settings.evalue) & (cov >= settings.min_coverage)
    qi = np.array([first_of.get(int(d), -1) for d in cols["q"][ok]], dtype=np.int64)
    ti = np.array([first_of.get(int(d), -1) for d in cols["t"][ok]], dtype=np.int64)
    inside = (qi >= 0) & (ti >= 0)
    return qi[inside], ti[inside]


def _run_shards(shards: list[np.ndarray], components: UnionFind, seqs: list[str],
                index: KmerIndex, settings: SearchSettings,
                workers: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:  # fmt: skip
    """Search the shards, each handed the components known when it starts (a shard is
    submitted only when a worker is free, so it sees every shard finished before it)."""
    if len(shards) == 1:
        _init_worker(seqs, index, settings)
        yield _search_rows((shards[0], components.labels()))
        return
    # a fresh process per shard: pyopal leaks a little memory on every high-scoring
    # alignment (about 8 kB), which would add up over a long-lived worker
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    workers = max(1, workers)
    pool = multiprocessing.get_context(method).Pool(
        workers, _init_worker, (seqs, index, settings), maxtasksperchild=1
    )
    done: queue.Queue = queue.Queue()
    todo = list(reversed(shards))
    running = 0
    try:
        while todo or running:
            while todo and running < workers:
                task = (todo.pop(), components.labels())
                pool.apply_async(_search_rows, (task,), callback=done.put, error_callback=done.put)
                running += 1
            result = done.get()
            running -= 1
            if isinstance(result, BaseException):
                raise result
            yield result
    finally:
        pool.terminate()
        pool.join()


def _record(store: EdgeStore | None, dig: np.ndarray, seqs: Sequence[str], rows: np.ndarray,
            hits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # fmt: skip
    """Hits by digest (and saved to the store under a name derived from the queries)."""
    out = {
        "q": dig[hits["q"]], "t": dig[hits["t"]], "score": hits["score"],
        "q_len": np.array([len(seqs[i]) for i in hits["q"]], dtype=np.int64),
        "q_cov": hits["q_cov"], "t_cov": hits["t_cov"],
    }  # fmt: skip
    if store is not None:
        searched = np.unique(dig[rows])
        name = hashlib.sha256(searched.tobytes()).hexdigest()[:16] + f"-{os.getpid()}"
        store.save(name, searched, out)
    return out
