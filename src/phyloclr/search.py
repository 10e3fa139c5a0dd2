"""Search a database of embeddings: nearest proteins of each query, realignment.

- Hits: the ``top`` database rows nearest each query by cosine similarity
  (:mod:`phyloclr.neighbours`: exact blocked search, or faiss HNSW for large databases), at or
  above ``min_score``. Queries are a FASTA file (embedded with the database's model; another
  model is an error naming both) or an embedding HDF5 made with that model.
- Hubness (``hubness`` k > 0): the hits are ranked by cosine − ``hubness_weight`` × the
  target's density, the mean cosine of its k nearest other database rows (the database side of
  CSLS, Conneau et al. 2018): a protein near many others (a hub) no longer crowds every
  query's list. The ``HUB_POOL`` × ``top`` nearest by cosine are re-ranked; the score column
  stays the cosine. Zero-shot with the default model, k = 100 and weight 0.5 (chosen on
  go-function) lift the full ranking's same-group mAP on the development sets by 0.011–0.020
  and the share of queries whose group is in the top 50 by up to 0.012 (benchmarks/RESULTS.md,
  "Hubness in search"); it costs one search of the database against itself, whose densities
  are kept beside the database file (``DB.h5.hubness-K.npz``) for the next search.
- Empty embeddings (all zeros: a k-mer model's row of a sequence with no word of its
  spectra) are left out of the hits, as queries and as targets, with a warning naming them
  (:func:`without_empty_rows`).
- Label transfer from the hits: :mod:`phyloclr.transfer`.
- Realignment: the hits are aligned to the query by Smith-Waterman (pyopal, BLOSUM62, gaps
  11/1) and get bit scores and BLAST-style E-values over the whole database's residues; the
  hits are then ranked by bit score. With ``realign_depth`` above ``top``, that many nearest
  proteins are aligned and the ``top`` best by bit score are kept: the embedding is then a
  prefilter, as MMseqs2's k-mer stage is for its alignments. ``prefilter`` chooses which
  proteins are aligned: the nearest by embedding, the best by the exact cosine of the
  database's spaced-word vectors (:mod:`phyloclr.wordsearch`), or both (their union).
"""

from __future__ import annotations

import json
import math
import os
import threading
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from phyloclr import __version__
from phyloclr.config import check_literals, config_to_json
from phyloclr.errors import ConfigError, InputError
from phyloclr.fsutil import atomic_path
from phyloclr.io.hdf5 import read_embeddings
from phyloclr.models.memory import detach_memory
from phyloclr.models.store import LoadedModel
from phyloclr.neighbours import NeighbourConfig, chosen_method, knn, settings_key
from phyloclr.progress import Progress

PathArg = str | os.PathLike[str]


@dataclass(frozen=True)
class SearchConfig:
    """top: hits per query; min_score: lowest cosine reported; realign_depth: with realign, the
    nearest proteins aligned per query (0 or ≤ top: the top hits), of which the ``top`` best by
    bit score are kept (400: on the development sets, 50 → 400 lifts the realigned mAP by
    0.04–0.06 at 4–5× the alignment time, benchmarks/RESULTS.md); prefilter: with realign,
    which proteins are aligned: the ``realign_depth`` nearest by embedding (``embedding``), the
    best by spaced-word cosine (``words``), or the union of both (``both``); calibration:
    labelled database rows used to fit the reliability of label transfer (a random sample above
    that); word_mix: with prefilter ``words`` or ``both`` and a model whose embedding holds a
    residue CNN's columns (the default model, or a ``pretrain`` model with ``model.append_cnn``),
    their cosine's weight in the words' ranking (0.05: chosen on go-function,
    benchmarks/RESULTS.md; 0: the words alone); hubness: k > 0 ranks hits by cosine −
    ``hubness_weight`` × the target's mean cosine to its k nearest other database rows (see
    the module doc; 0: plain cosine); hubness_keep: keep the database's densities beside it
    and reuse them while the file is unchanged (:func:`kept_density`)."""

    top: int = 50
    min_score: float = -1.0
    realign: bool = False
    realign_depth: int = 400
    prefilter: Literal["embedding", "words", "both"] = "embedding"
    batch_tokens: int = 32768
    threads: int = 0
    calibration: int = 20_000
    seed: int = 0
    word_mix: float = 0.05
    hubness: int = 0
    hubness_weight: float = 0.5
    hubness_keep: bool = True
    neighbours: NeighbourConfig = field(default_factory=NeighbourConfig)

    def __post_init__(self) -> None:
        check_literals(self)
        if self.top < 1:
            raise ConfigError("--top must be ≥ 1")
        if self.realign_depth < 0:
            raise ConfigError("--realign-depth must be ≥ 0")
        if not -1.0 <= self.min_score <= 1.0:
            raise ConfigError("--min-score is a cosine: between -1 and 1")
        if not 0.0 <= self.word_mix < 1.0:
            raise ConfigError("--word-mix is a weight: at least 0 and below 1")
        if self.hubness < 0:
            raise ConfigError("--hubness is a neighbour count: ≥ 0 (0: plain cosine ranking)")
        if not 0.0 < self.hubness_weight <= 1.0:
            raise ConfigError("--hubness-weight must lie in (0, 1]")


@dataclass
class SearchResult:
    """Hits of every query, best first: ``index`` (Q, k) database rows (-1: no hit),
    ``scores`` (Q, k) cosines; with realignment ``bits`` and ``evalues`` (Q, k) too; with
    ``hubness`` the database rows' ``density`` (:func:`db_density`)."""

    query_ids: list[str]
    db_ids: list[str]
    index: np.ndarray
    scores: np.ndarray
    model: dict[str, str]
    method: str
    bits: np.ndarray | None = None
    evalues: np.ndarray | None = None
    db_embeddings: np.ndarray | None = field(default=None, repr=False)
    density: np.ndarray | None = field(default=None, repr=False)  # (N,) with hubness
    warnings: list[str] = field(default_factory=list)

    def hits(self) -> Iterator[tuple[int, int, int, int]]:
        """(query row, column, database row, rank from 1) of every hit, queries in input order,
        skipping the empty (-1) columns."""
        for qi in range(len(self.query_ids)):
            rank = 0
            for j, t in enumerate(self.index[qi].tolist()):
                if t >= 0:
                    rank += 1
                    yield qi, j, t, rank

    def rows(self) -> list[tuple[str, str, float, int]]:
        """(query, target, score, rank) of every hit, queries in input order."""
        return [(self.query_ids[qi], self.db_ids[t], float(self.scores[qi, j]), rank)
                for qi, j, t, rank in self.hits()]  # fmt: skip


# ---- the model -------------------------------------------------------------------------------


def _db_model(attrs: dict[str, object], path: Path) -> dict[str, str]:
    """The model an embedding file records, and whether its memory smoothed the rows ('memory':
    'yes' or 'no'; ``embed --no-memory`` writes 'no')."""
    try:
        model = json.loads(str(attrs["model"]))
        found = {"name": str(model["name"]), "weights_sha256": str(model["weights_sha256"]),
                 "path": str(model.get("path", ""))}  # fmt: skip
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(path, "the embedding file does not record its model") from exc
    try:
        smoothed = bool(json.loads(str(attrs["config"]))["embed"].get("memory", True))
    except (KeyError, ValueError, TypeError, AttributeError):
        smoothed = True
    return {**found, "memory": "yes" if smoothed else "no"}


def resolve_model(db_model: dict[str, str], db_path: Path, model: PathArg | None) -> LoadedModel:
    """The model that embedded the database: ``model`` if given (it must be the same weights),
    else the path the database recorded, else a model that ships with phyloclr if it matches."""
    from phyloclr.embed import BUNDLED, bundled_model_path, resolve_model_path
    from phyloclr.models.store import load_model

    want = db_model["weights_sha256"]
    if model is not None:
        loaded = load_model(resolve_model_path(model))
        if loaded.weights_sha256 != want:
            raise InputError(
                model,
                f"model {loaded.name!r} (weights {loaded.weights_sha256}) is not the model of "
                f"the database {db_path}: {db_model['name']!r} (weights {want})",
            )
        return loaded
    recorded = [Path(db_model["path"])] if db_model["path"] else []
    for candidate in recorded + [bundled_model_path(name) for name in BUNDLED]:
        if candidate.exists():
            loaded = load_model(candidate)
            if loaded.weights_sha256 == want:
                return loaded
    raise InputError(
        db_path,
        f"embedded with model {db_model['name']!r} (weights {want}), which is not at its "
        f"recorded path {db_model['path'] or '(none)'}: pass --model",
    )


# ---- search ----------------------------------------------------------------------------------


def _queries(
    queries: PathArg, db_model: dict[str, str], db_path: Path, model: PathArg | None,
    cfg: SearchConfig, progress: Progress | None, precision: str = "float32",
) -> tuple[list[str], np.ndarray, list[str] | None, slice | None]:  # fmt: skip
    """Query ids, embeddings (Q, D), for a FASTA sequences, and the embedding columns of a
    residue CNN (``learned_columns``; None for an HDF5 of queries). FASTA queries are embedded
    at the database's ``precision``."""
    import h5py

    path = Path(queries)
    if h5py.is_hdf5(path):
        store = read_embeddings(path)
        qmodel = _db_model(store.attrs, path)
        if qmodel["weights_sha256"] != db_model["weights_sha256"]:
            raise InputError(
                path,
                f"queries embedded with model {qmodel['name']!r} (weights "
                f"{qmodel['weights_sha256']}), the database {db_path} with "
                f"{db_model['name']!r} (weights {db_model['weights_sha256']})",
            )
        if qmodel["memory"] != db_model["memory"]:
            said = {"yes": "smoothed over the model's memory", "no": "with --no-memory"}
            raise InputError(
                path,
                f"queries embedded {said[qmodel['memory']]}, the database {db_path} "
                f"{said[db_model['memory']]}: embed both the same way",
            )
        return store.ids, store.embeddings, None, None
    import torch

    from phyloclr.embed import embed_sequences
    from phyloclr.io.fasta import read_fasta
    from phyloclr.io.sequences import fits_alphabet

    records = read_fasta(path)
    loaded = resolve_model(db_model, db_path, model)
    if db_model.get("memory") == "no":  # embedded as the database was (embed --no-memory)
        detach_memory(loaded.encoder)
    for rec in records:
        if not fits_alphabet(rec.seq, loaded.alphabet.name):
            raise InputError(
                path, f"not {loaded.alphabet.name}, the alphabet of the database's model", rec.id
            )
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seqs = [r.seq for r in records]
    emb, _ = embed_sequences(loaded.encoder, loaded.alphabet, seqs,
                             batch_tokens=cfg.batch_tokens, progress=progress,
                             precision=precision)  # fmt: skip
    return [r.id for r in records], emb, seqs, learned_columns(loaded)


def learned_columns(loaded: LoadedModel) -> slice | None:
    """The embedding columns a model's residue CNN fills beside k-mer columns: a
    :class:`~phyloclr.models.hybrid.SketchedCNN`'s first, or the last of a k-mer model with a CNN
    appended (``model.append_cnn``); None for other models."""
    from phyloclr.models.hybrid import SketchedCNN
    from phyloclr.models.spectrum import KmerSpectrum

    enc = loaded.encoder
    if isinstance(enc, SketchedCNN):
        return slice(0, enc.spec.dim)
    if isinstance(enc, KmerSpectrum) and enc.cnn is not None:
        return slice(enc.dim - enc.spec.appended_cnn_dim, enc.dim)
    return None


def search(
    queries: PathArg,
    db: PathArg,
    *,
    model: PathArg | None = None,
    config: SearchConfig | None = None,
    db_fasta: PathArg | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """The ``config.top`` nearest database proteins of every query (see the module doc)."""
    cfg = config or SearchConfig()
    db_path = Path(db)
    store = read_embeddings(db_path, native=True)  # a float16 database stays float16
    db_model = _db_model(store.attrs, db_path)
    if cfg.realign and db_fasta is None:
        raise ConfigError("--realign needs --db-fasta (the database's sequences)")
    precision = str(store.attrs.get("precision", "float32"))  # files before it: float32
    qids, qemb, qseqs, learned = _queries(queries, db_model, db_path, model, cfg, progress,
                                          precision)  # fmt: skip
    if cfg.realign and qseqs is None:
        raise ConfigError("--realign needs the queries as FASTA (their sequences)")
    if cfg.hubness and cfg.realign and cfg.prefilter != "embedding":
        raise ConfigError("--hubness re-ranks the embedding's hits: use it with --prefilter "
                          "embedding")  # fmt: skip
    depth = max(cfg.top, cfg.realign_depth) if cfg.realign else cfg.top
    db_seqs, density = None, None
    if cfg.realign and cfg.prefilter != "embedding":
        assert qseqs is not None and db_fasta is not None
        db_seqs = read_db_sequences(Path(db_fasta), store.ids)  # all of it, read once
        scores, index = _word_candidates(qemb, qseqs, store.embeddings, store.ids, db_seqs,
                                         depth, cfg, progress, learned)  # fmt: skip
    elif cfg.hubness:
        pool = min(len(store.ids), HUB_POOL * depth)
        scores, index = knn(qemb, store.embeddings, pool, cfg.neighbours, progress=progress)
        density = kept_density(db_path, store.embeddings, cfg, progress,
                               db_model["weights_sha256"])  # fmt: skip
        scores, index = rank_by_hubness(scores, index, density, cfg.hubness_weight, depth)
    else:
        scores, index = knn(qemb, store.embeddings, depth, cfg.neighbours, progress=progress)
    index = np.where(scores >= cfg.min_score, index, -1)
    index, warnings = without_empty_rows(index, qids, qemb, store.ids, store.embeddings)
    result = SearchResult(qids, store.ids, index, scores, db_model,
                          chosen_method(len(store.ids), cfg.neighbours),
                          db_embeddings=store.embeddings, density=density,
                          warnings=warnings)  # fmt: skip
    if cfg.realign:
        assert qseqs is not None and db_fasta is not None
        realign(result, qseqs, Path(db_fasta), cfg.threads, progress, db_seqs)
        if depth > cfg.top:  # keep the best by bit score
            assert result.bits is not None and result.evalues is not None
            result.index, result.scores = result.index[:, : cfg.top], result.scores[:, : cfg.top]
            result.bits, result.evalues = result.bits[:, : cfg.top], result.evalues[:, : cfg.top]
    return result


#: with ``hubness``, the nearest rows by cosine re-ranked per hit kept
HUB_POOL = 4


def empty_rows(x: np.ndarray, block: int = 65_536) -> np.ndarray:
    """(N,) bool: the rows of ``x`` (N, D) that are all zeros, a block of rows at a time."""
    out = np.zeros(len(x), dtype=bool)
    for start in range(0, len(x), block):
        out[start : start + block] = ~np.asarray(x[start : start + block]).any(axis=1)
    return out


def without_empty_rows(
    index: np.ndarray, qids: Sequence[str], qemb: np.ndarray, db_ids: Sequence[str],
    db: np.ndarray,
) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """``index`` (Q, k) with -1 for every hit of an all-zero query row and every all-zero
    database row among the hits, and a warning naming each kind found. A k-mer model embeds a
    sequence with no word of its spectra (shorter than every word, or of unknown letters) as
    zeros: no evidence of homology, whose cosine, 0, would still rank it above every negative
    one and fill a query's list with arbitrary proteins."""
    index = index.copy()
    warnings = []
    empty_q = empty_rows(qemb)
    if empty_q.any():
        index[empty_q] = -1
        empty_ids = [qids[i] for i in np.flatnonzero(empty_q).tolist()]
        warnings.append(_empty_warning("queries", empty_ids))
    hit = np.unique(index[index >= 0])
    empty_t = hit[empty_rows(db[hit])] if len(hit) else hit
    if len(empty_t):
        index[np.isin(index, empty_t)] = -1
        warnings.append(_empty_warning("database proteins among the hits",
                                       [db_ids[i] for i in empty_t.tolist()]))  # fmt: skip
    return index, warnings


def _empty_warning(kind: str, ids: list[str], shown: int = 5) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return (f"{len(ids)} {kind} have an empty embedding (no word of the model's k-mer "
            f"spectra: too short, or unknown letters) and are left out of the hits: "
            f"{', '.join(ids[:shown])}{more}")  # fmt: skip


def db_density(
    db: np.ndarray, k: int, config: NeighbourConfig | None = None,
    progress: Progress | None = None,
) -> np.ndarray:  # fmt: skip
    """(N,) float32: each database row's mean cosine to its ``k`` nearest other rows (fewer
    where the database is smaller; 0 for a database of one row)."""
    n = len(db)
    if n < 2:
        return np.zeros(n, np.float32)
    scores, _ = knn(db, db, k, config, exclude=np.arange(n), progress=progress)
    found = np.isfinite(scores)
    total = np.where(found, scores, 0.0).sum(1)
    return (total / np.maximum(found.sum(1), 1)).astype(np.float32)


def density_path(db: PathArg, k: int) -> Path:
    """Where :func:`kept_density` keeps the densities of ``db`` for ``k`` neighbours."""
    path = Path(db)
    return path.with_name(f"{path.name}.hubness-{k}.npz")


def kept_density(
    db_path: Path, db: np.ndarray, cfg: SearchConfig, progress: Progress | None = None,
    model: str = "",
) -> np.ndarray:  # fmt: skip
    """:func:`db_density` of the database file ``db_path`` (rows ``db``, embedded by ``model``:
    its weights' digest) for ``cfg.hubness`` neighbours, kept beside it (:func:`density_path`,
    with the file's size and modification time, the row count, the model and the neighbour
    method with its settings, :func:`phyloclr.neighbours.settings_key`) and reused while those
    match. With ``cfg.hubness_keep`` off, or where the file cannot be written, it is computed
    each time."""
    method = settings_key(len(db), cfg.neighbours)
    stat = db_path.stat()
    key = np.array([stat.st_size, stat.st_mtime_ns, len(db), cfg.hubness], np.int64)
    kept = density_path(db_path, cfg.hubness)
    if cfg.hubness_keep and kept.exists():
        try:
            with np.load(kept, allow_pickle=False) as z:
                same = str(z["method"]) == method and str(z["model"]) == model
                if same and np.array_equal(z["key"], key):
                    density = np.asarray(z["density"], np.float32)
                    if density.shape == (len(db),):
                        return density
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # unreadable or of another format: computed again below
    density = db_density(db, cfg.hubness, cfg.neighbours, progress)
    if cfg.hubness_keep:
        try:
            with atomic_path(kept) as tmp, tmp.open("wb") as fh:
                np.savez(fh, key=key, method=np.array(method), model=np.array(model),
                         density=density)  # fmt: skip
        except OSError:
            pass  # a read-only database directory: nothing kept, the search goes on
    return density


def rank_by_hubness(
    scores: np.ndarray, index: np.ndarray, density: np.ndarray, weight: float, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates (Q, P) cosines and database rows (-1: none), best first by cosine → the
    ``k`` best by cosine − ``weight`` × density[row]: (Q, k') cosines and rows, k' = min(k, P)."""
    valid = index >= 0
    adjusted = np.where(valid, scores - weight * density[np.where(valid, index, 0)], -np.inf)
    order = np.argsort(-adjusted, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(index, order, 1)


def _word_candidates(
    qemb: np.ndarray, qseqs: Sequence[str], db_emb: np.ndarray, db_ids: list[str],
    db_seqs: tuple[dict[str, str], int], depth: int, cfg: SearchConfig,
    progress: Progress | None, learned: slice | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Candidates for realignment by ``cfg.prefilter`` 'words' (the ``depth`` best by
    spaced-word cosine, mixed with the cosine of the ``learned`` embedding columns at
    ``cfg.word_mix``) or 'both' (those and the ``depth`` nearest by embedding, up to 2 ×
    ``depth`` a query, -1 padded): (embedding cosines (Q, C), database rows (Q, C))."""
    from phyloclr.wordsearch import WordIndex

    by_id = db_seqs[0]
    words = WordIndex([by_id[i] for i in db_ids])
    mix = (qemb[:, learned], db_emb[:, learned]) if learned is not None else None
    index = words.top(qseqs, depth, threads=cfg.threads, progress=progress, learned=mix,
                      learned_weight=cfg.word_mix)[1]  # fmt: skip
    if cfg.prefilter == "both":
        near = knn(qemb, db_emb, depth, cfg.neighbours, progress=progress)[1]
        both = np.full((len(qseqs), 2 * index.shape[1]), -1, dtype=np.int64)
        for q in range(len(qseqs)):
            rows = near[q][near[q] >= 0]
            union = np.concatenate([rows, index[q][~np.isin(index[q], rows)]])
            both[q, : len(union)] = union
        index = both
    scores = np.full(index.shape, -np.inf, dtype=np.float32)
    for q in range(len(qseqs)):  # the embedding cosine of each candidate
        cols = np.flatnonzero(index[q] >= 0)
        x = db_emb[index[q, cols]].astype(np.float32)  # (C, D)
        norms = np.linalg.norm(x, axis=1) * max(float(np.linalg.norm(qemb[q])), 1e-12)
        scores[q, cols] = x @ qemb[q].astype(np.float32) / np.maximum(norms, 1e-12)
    return scores, index


def read_db_sequences(
    db_fasta: Path, db_ids: Sequence[str], wanted: set[str] | None = None
) -> tuple[dict[str, str], int]:
    """({id: sequence} of the ``wanted`` database ids (every one when None), residues of the
    whole file), checking that the FASTA holds the embedding database's proteins."""
    from phyloclr.io.fasta import iter_fasta

    wanted = set(db_ids) if wanted is None else wanted
    seqs: dict[str, str] = {}
    residues = 0
    n_db = 0
    for rec in iter_fasta(db_fasta):
        n_db += 1
        residues += len(rec.seq)
        if rec.id in wanted:
            seqs[rec.id] = rec.seq
    if n_db != len(db_ids):
        raise InputError(db_fasta, f"holds {n_db} sequences, the embedding database {len(db_ids)}")
    missing = wanted - seqs.keys()
    if missing:
        raise InputError(db_fasta, "has no sequence for a database hit", sorted(missing)[0])
    return seqs, residues


def realign(
    result: SearchResult, query_seqs: Sequence[str], db_fasta: Path, threads: int = 0,
    progress: Progress | None = None, db_seqs: tuple[dict[str, str], int] | None = None,
) -> None:  # fmt: skip
    """Give every hit a Smith-Waterman bit score and E-value, and rank each query's hits by
    bit score (in place); queries are aligned on ``threads`` threads (0: every core).
    ``db_seqs``: :func:`read_db_sequences` of ``db_fasta`` when already read."""
    import pyopal

    from phyloclr.families.align import available_threads
    from phyloclr.families.homology import GAP_EXTEND, GAP_OPEN, K_STAT, LAMBDA, evalue

    if db_seqs is None:
        wanted = {result.db_ids[t] for t in np.unique(result.index) if t >= 0}
        db_seqs = read_db_sequences(db_fasta, result.db_ids, wanted)
    seqs, residues = db_seqs
    local = threading.local()

    def raw_scores(qi: int) -> tuple[int, np.ndarray, np.ndarray]:
        if not hasattr(local, "aligner"):  # one aligner per thread
            local.aligner = pyopal.Aligner("BLOSUM62", gap_open=GAP_OPEN, gap_extend=GAP_EXTEND)
        cols = np.flatnonzero(result.index[qi] >= 0)
        if len(cols) == 0:
            return qi, cols, np.zeros(0)
        targets = [seqs[result.db_ids[int(result.index[qi, c])]] for c in cols]
        found = local.aligner.align(query_seqs[qi], pyopal.Database(targets))
        return qi, cols, np.array([r.score for r in found], float)

    bits = np.full(result.index.shape, np.nan, np.float32)
    evals = np.full(result.index.shape, np.nan, np.float64)
    with ThreadPoolExecutor(available_threads(threads)) as pool:
        for done, (qi, cols, raw) in enumerate(pool.map(raw_scores, range(len(query_seqs))), 1):
            bits[qi, cols] = (LAMBDA * raw - math.log(K_STAT)) / math.log(2)
            evals[qi, cols] = evalue(raw, len(query_seqs[qi]), residues)
            key = np.where(result.index[qi] >= 0, bits[qi], -np.inf)
            order = np.argsort(-key, kind="stable")
            for arr in (result.index, result.scores, bits, evals):
                arr[qi] = arr[qi][order]
            if progress is not None:
                progress("realigning", done, len(query_seqs))
    result.bits, result.evalues = bits, evals


# ---- output ----------------------------------------------------------------------------------


def header(kind: str, cfg: SearchConfig, result: SearchResult, db: PathArg) -> str:
    settings = json.loads(config_to_json(cfg))
    settings.update({"db": str(db), "model": result.model, "method": result.method})
    return f"# phyloclr {__version__} {kind} config={json.dumps(settings, sort_keys=True)}\n"


def write_hits(path: PathArg, result: SearchResult, cfg: SearchConfig, db: PathArg) -> int:
    """``query target score rank`` (+ ``bits evalue``) TSV, written atomically; returns rows."""
    n = 0
    with atomic_path(path) as tmp, tmp.open("w") as fh:
        fh.write(header("search", cfg, result, db))
        realigned = result.bits is not None and result.evalues is not None
        fh.write("query\ttarget\tscore\trank" + ("\tbits\tevalue" if realigned else "") + "\n")
        for qi, j, t, rank in result.hits():
            qid = result.query_ids[qi]
            line = f"{qid}\t{result.db_ids[t]}\t{result.scores[qi, j]:.6f}\t{rank}"
            if realigned:
                assert result.bits is not None and result.evalues is not None
                line += f"\t{result.bits[qi, j]:.1f}\t{result.evalues[qi, j]:.3g}"
            fh.write(line + "\n")
            n += 1
    return n


__all__ = [
    "SearchConfig",
    "SearchResult",
    "density_path",
    "header",
    "kept_density",
    "read_db_sequences",
    "realign",
    "search",
    "write_hits",
]
