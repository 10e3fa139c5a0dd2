"""Build families from inputs: the one entry point the CLI and training use."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from os import PathLike
from pathlib import Path
from typing import TypeVar

import pyhmmer.plan7 as plan7

from phyloclr.config import config_to_json
from phyloclr.errors import ConfigError, InputError
from phyloclr.families import cache as family_cache
from phyloclr.families.align import available_threads
from phyloclr.families.config import FamiliesConfig, SearchSettings
from phyloclr.families.corpus import (
    Assignment,
    by_hmmscan,
    by_pattern,
    de_novo,
    de_novo_mmseqs,
    de_novo_prefilter,
    prefilter_search,
)
from phyloclr.families.distances import compute_distances
from phyloclr.families.load import InputFile, InputKind, expand_inputs, read_alignments, sniff
from phyloclr.families.mmseqs import MmseqsSettings
from phyloclr.families.model import Family, FamilySet
from phyloclr.families.split import split_groups
from phyloclr.families.trees import assign_trees, attach_tree
from phyloclr.fsutil import file_lock
from phyloclr.io.fasta import read_fasta
from phyloclr.io.newick import read_newick_file, read_trees
from phyloclr.io.sequences import detect_alphabet
from phyloclr.progress import Progress

S = TypeVar("S")

PathArg = str | PathLike[str]


def _key_files(items: list[InputFile], cfg: FamiliesConfig, trees: Path | None) -> list[Path]:
    files = [i.path for i in items] + [i.tree_path for i in items if i.tree_path is not None]
    if cfg.hmm_db is not None:
        files.append(Path(cfg.hmm_db))
    if trees is not None:
        files.extend(sorted(trees.iterdir()) if trees.is_dir() else [trees])
    return files


def build_families(
    inputs: Sequence[PathArg],
    config: FamiliesConfig | None = None,
    *,
    trees: PathArg | None = None,
    cache_dir: PathArg | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> FamilySet:
    """Families, alignments, trees and distances for ``inputs`` (files or directories).

    Alignments (Stockholm, aligned FASTA, A3M) are families as they stand; an unaligned FASTA
    is a corpus split into families (see :class:`FamiliesConfig`) or, inside a directory, one
    family. ``trees`` is a Newick file or a directory of them. Results are cached on disk under
    ``cache_dir`` (default :func:`cache.default_cache_dir`) keyed by input contents and config.
    """
    cfg = config or FamiliesConfig()
    if not inputs:
        raise InputError(None, "no input files given")
    warnings: list[str] = []
    items = expand_inputs([Path(p) for p in inputs], warnings)
    tree_path = None if trees is None else Path(trees)
    if tree_path is not None and not tree_path.exists():
        raise InputError(tree_path, "no such file or directory")
    config_json = config_to_json(cfg)
    cdir = Path(cache_dir) if cache_dir is not None else family_cache.default_cache_dir()
    key = family_cache.cache_key(_key_files(items, cfg, tree_path), config_json)
    if not use_cache:
        return _build(items, warnings, cfg, tree_path, config_json, key, None, progress)
    # one builder per cache entry: a concurrent run with the same inputs and config waits here,
    # then reads the entry the first one wrote
    with file_lock(cdir / "locks" / f"{key}.lock"):
        cached = family_cache.load(cdir, key)
        if cached is not None:
            return cached
        family_cache.discard(cdir, key)  # an unreadable entry would block the new one
        fset = _build(items, warnings, cfg, tree_path, config_json, key, cdir, progress)
        try:
            family_cache.save(fset, cdir, key, progress)
        except OSError as exc:  # the families are built: a cache that cannot grow costs a rerun
            why = os.strerror(exc.errno) if exc.errno else str(exc).splitlines()[0]
            fset.warnings.append(f"{cdir}: the families were not cached ({why})")
        return fset


def search_part(
    corpus: PathArg,
    part: int,
    parts: int,
    config: FamiliesConfig | None = None,
    *,
    cache_dir: PathArg | None = None,
    progress: Progress | None = None,
) -> int:
    """Search shard ``part`` (0-based) of ``parts`` of a protein corpus's de novo homology
    search into the edge store under ``cache_dir``, and return how many sequences it searched.

    For machines that share ``cache_dir``: each runs one shard (queries split by content
    digest, so the split does not depend on which shards are done); :func:`build_families`
    with the same corpus and config then searches nothing and builds the families. Only the
    prefilter engine splits this way (MMseqs2 has its own MPI runner).
    """
    cfg = config or FamiliesConfig()
    if cfg.denovo_method != "prefilter":
        raise ConfigError(
            f"a search in parts needs denovo_method 'prefilter', not {cfg.denovo_method!r}"
        )
    if not 0 <= part < parts:
        raise ConfigError(f"shard {part}/{parts}: the shard must lie in 0..{parts - 1}")
    path = Path(corpus)
    records = read_fasta(path)
    if detect_alphabet(records, path) != "protein":
        raise InputError(path, "a sharded search is for protein corpora")
    cdir = Path(cache_dir) if cache_dir is not None else family_cache.default_cache_dir()
    result = prefilter_search(
        records, search_settings(cfg), _edge_store(cdir), cfg.workers, progress, (part, parts)
    )
    return result.searched


def _edge_store(cache_dir: Path) -> Path:
    """Where the de novo homology search keeps its hits (and MMseqs2 its work) in a cache."""
    return cache_dir / family_cache.EDGES


def _build(
    items: list[InputFile],
    warnings: list[str],
    cfg: FamiliesConfig,
    tree_path: Path | None,
    config_json: str,
    key: str,
    cdir: Path | None,
    progress: Progress | None,
) -> FamilySet:
    families: list[Family] = []
    hmms: dict[str, plan7.HMM] = {}
    unassigned: list[str] = []
    origin: dict[str, Path] = {}

    def add(fam: Family) -> None:
        if fam.id in origin:
            raise InputError(
                fam.source, f"family id {fam.id!r} also comes from {origin[fam.id]}", None
            )
        origin[fam.id] = Path(fam.source)
        families.append(fam)

    for n_done, item in enumerate(items, start=1):
        kind = sniff(item.path)
        as_corpus = kind == "fasta" and (
            cfg.unaligned == "corpus" or (cfg.unaligned == "auto" and not item.in_directory)
        )
        if as_corpus:
            _corpus_families(item, cfg, cdir, progress, add, hmms, unassigned, warnings)
        else:
            _alignment_families(item, kind, add, warnings)
        if progress is not None:
            progress("reading inputs", n_done, len(items))
    if not families:
        raise InputError(None, "no families found in the inputs")

    if tree_path is not None:
        assign_trees(families, read_trees(tree_path), tree_path, warnings)

    families = _all_distances(families, cfg, hmms, progress)
    for fam in families:
        for note in fam.notes:
            warnings.append(f"family {fam.id!r}: {note}")
    _saturation_warning(families, cfg, warnings)

    return FamilySet(
        families=families,
        warnings=warnings,
        unassigned=unassigned,
        config_json=config_json,
        cache_key=key,
    )


def _corpus_families(
    item: InputFile, cfg: FamiliesConfig, cdir: Path | None, progress: Progress | None,
    add: Callable[[Family], None], hmms: dict[str, plan7.HMM], unassigned: list[str],
    warnings: list[str],
) -> None:  # fmt: skip
    """The families of an unaligned corpus (header pattern, hmmscan or de novo), each given to
    ``add``; their HMMs into ``hmms``; sequences in no family into ``unassigned``."""
    store = _edge_store(cdir) if cdir is not None else None
    assignment = _split_corpus(item.path, cfg, store, progress)
    by_homology = cfg.label_pattern is None and cfg.hmm_db is None
    if by_homology and cfg.max_family_size:
        assignment.groups, n_split = split_groups(assignment.groups, cfg.max_family_size)
        if n_split:
            warnings.append(f"{item.path}: {n_split} de novo families above {cfg.max_family_size} "
                            "members were split by k-mer similarity (max_family_size)")  # fmt: skip
    unassigned.extend(assignment.unassigned)
    if assignment.unassigned:
        shown = ", ".join(assignment.unassigned[:10])
        more = len(assignment.unassigned) - 10
        warnings.append(
            f"{item.path}: {len(assignment.unassigned)} sequences were assigned to no "
            f"family: {shown}" + (f" … ({more} more)" if more > 0 else "")
        )
    # one alphabet for the corpus: a family of ambiguous records alone (a protein such as
    # 'AATAAT…') must not read as nucleotide beside the rest
    alphabet = detect_alphabet((r for ms in assignment.groups.values() for r in ms), item.path)
    for label, members in assignment.groups.items():
        fam = Family(
            id=label,
            records=members,
            alphabet=alphabet,
            source=str(item.path),
            accession=assignment.accessions.get(label),
            description=assignment.descriptions.get(label),
            hmm_name=label if label in assignment.hmms else None,
        )
        add(fam)
        if label in assignment.hmms:
            hmms[label] = assignment.hmms[label]


def _alignment_families(
    item: InputFile, kind: InputKind, add: Callable[[Family], None], warnings: list[str]
) -> None:
    """The families of an alignment file (Stockholm, aligned FASTA, A3M), each given to
    ``add``, with the tree paired with the file attached."""
    for loaded in read_alignments(item, kind):
        fam = Family(
            id=loaded.family_id,
            records=loaded.records,
            alphabet=detect_alphabet(loaded.records, item.path),
            source=str(item.path),
            accession=loaded.accession,
            description=loaded.description,
            alignment_origin="input" if kind != "fasta" else None,
        )
        add(fam)
        if item.tree_path is not None:
            paired = read_newick_file(item.tree_path)
            if len(paired) != 1:
                raise InputError(item.tree_path, "expected exactly one tree in the file")
            attach_tree(fam, paired[0][1], item.tree_path, warnings)


def _saturation_warning(families: list[Family], cfg: FamiliesConfig, warnings: list[str]) -> None:
    """One warning naming the families (worst five) with pairs past ``max_distance``."""
    saturated = [f for f in families if f.saturated_pairs]
    if saturated:
        worst = sorted(saturated, key=lambda f: -f.saturated_pairs / max(1, f.size**2))[:5]
        warnings.append(
            f"{len(saturated)} families have pairs too divergent for their distance "
            f"correction (set to max_distance={cfg.max_distance:g}; see saturated_pairs): "
            + ", ".join(f"{f.id} ({f.saturated_pairs})" for f in worst)
            + (" …" if len(saturated) > 5 else "")
        )


def _all_distances(
    families: list[Family],
    cfg: FamiliesConfig,
    hmms: dict[str, plan7.HMM],
    progress: Progress | None,
) -> list[Family]:
    """Every family with its alignment and distances (set in place), in the same order.
    Unaligned families of two or more without a tree or HMM (the de novo ones) are aligned by
    FAMSA in ``cfg.workers`` processes, one thread each, most residues first; the rest in this
    process."""
    pooled = [
        i
        for i, f in enumerate(families)
        if cfg.align_unaligned and not f.aligned and f.size >= 2 and f.tree is None
        and f.id not in hmms
    ]  # fmt: skip
    processes = available_threads(cfg.workers)
    if processes < 2 or len(pooled) < 2:
        pooled = []
    done = 0
    for i in sorted(set(range(len(families))) - set(pooled)):
        compute_distances(families[i], cfg, hmms.get(families[i].id))
        done += 1
        if progress is not None:
            progress("distances", done, len(families))
    if pooled:
        # the most residues first: the giants' long alignments start while the other worker
        # can still fill in, and a few very long sequences (FAMSA's memory grows with length,
        # 1.2 GB for 8 titin-like proteins) align while the results held here are still few
        pooled.sort(key=lambda i: -sum(len(r.seq) for r in families[i].records))
        one_thread = replace(cfg, threads=1)
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(processes, _one_blas_thread) as pool:
            tasks = ((i, families[i], one_thread) for i in pooled)
            for i, computed, rows in pool.imap_unordered(_distances_task, tasks, chunksize=4):
                _take_computed(families[i], computed, rows)
                done += 1
                if progress is not None:
                    progress("distances", done, len(families))
    return families


#: the worker's BLAS thread limit, held for the life of the process
_BLAS_LIMIT: object = None


def _one_blas_thread() -> None:
    """Pool initializer: one BLAS thread and one torch thread in each worker.
    ``msa_distances`` sums matrix products (torch's), and a thread per core in every worker
    oversubscribes the cores: on 2 cores the alignment stage took 1.4× as long
    (benchmarks/RESULTS.md, "One BLAS thread per worker")."""
    global _BLAS_LIMIT
    import torch
    from threadpoolctl import threadpool_limits

    _BLAS_LIMIT = threadpool_limits(1, user_api="blas")
    torch.set_num_threads(1)


def _distances_task(
    task: tuple[int, Family, FamiliesConfig],
) -> tuple[int, Family, list[str] | None]:
    """One family's alignment and distances in a worker. The members go back as their
    aligned rows alone: the parent holds their ids and residues already (at a million proteins
    the parent ended the stage 0.65 GiB smaller)."""
    i, fam, cfg = task
    compute_distances(fam, cfg)
    rows = [r.aligned or "" for r in fam.records] if fam.aligned else None
    fam.records = []
    return i, fam, rows


def _take_computed(fam: Family, computed: Family, rows: list[str] | None) -> None:
    """Set on ``fam`` in place what a worker computed for it: every field but the members,
    and the members' aligned ``rows`` (member order)."""
    for f in fields(Family):
        if f.name != "records":
            setattr(fam, f.name, getattr(computed, f.name))
    if rows is not None:
        fam.records = [replace(r, aligned=row) for r, row in zip(fam.records, rows, strict=True)]


#: fields of the search settings that are the engine's own, not the families config's (the
#: MMseqs2 mode comes from ``denovo_method``: :data:`MMSEQS_METHODS`)
ENGINE_FIELDS = frozenset({"batch", "version", "mode"})
#: the ``denovo_method`` values that run MMseqs2, and its workflow for each
MMSEQS_METHODS = {"mmseqs": "search", "mmseqs-cluster": "cluster", "mmseqs-linclust": "linclust"}


def _settings_of(cls: type[S], cfg: FamiliesConfig, prefixes: tuple[str, ...]) -> S:
    """``cls`` built from ``cfg``'s fields named by a prefix + its field name (the first prefix
    that names one); :data:`ENGINE_FIELDS` keep their defaults."""
    values = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in ENGINE_FIELDS:
            continue
        name = next(p + f.name for p in prefixes if hasattr(cfg, p + f.name))
        values[f.name] = getattr(cfg, name)
    return cls(**values)


def search_settings(cfg: FamiliesConfig) -> SearchSettings:
    """The prefilter search settings a families config asks for (its ``denovo_*`` fields)."""
    return _settings_of(SearchSettings, cfg, ("denovo_",))


def mmseqs_settings(cfg: FamiliesConfig) -> MmseqsSettings:
    """The MMseqs2 search settings a families config asks for (its ``denovo_mmseqs_*``, else
    ``denovo_*`` fields; the mode from its ``denovo_method``)."""
    settings = _settings_of(MmseqsSettings, cfg, ("denovo_mmseqs_", "denovo_"))
    mode = MMSEQS_METHODS.get(cfg.denovo_method, "search")
    if mode != "cluster":
        settings = replace(settings, rejoin=0.0)
    if not settings.rejoin:
        settings = replace(settings, rejoin_identity=0.0)
    return replace(settings, mode=mode)


def _split_corpus(
    path: Path, cfg: FamiliesConfig, store: Path | None, progress: Progress | None
) -> Assignment:
    records = read_fasta(path)
    alphabet = detect_alphabet(records, path)
    if cfg.label_pattern is not None:
        return by_pattern(records, cfg.label_pattern)
    if cfg.hmm_db is not None:
        return by_hmmscan(
            records,
            cfg.hmm_db,
            alphabet,
            use_gathering=cfg.hmm_use_gathering,
            evalue=cfg.hmm_evalue,
            regions=cfg.hmm_regions,
            threads=cfg.threads,
            progress=progress,
        )
    if cfg.denovo_method in MMSEQS_METHODS:
        return de_novo_mmseqs(
            records,
            alphabet,
            mmseqs_settings(cfg),
            work_root=store,
            threads=cfg.workers,
            progress=progress,
        )
    if cfg.denovo_method == "prefilter" and alphabet == "protein":
        return de_novo_prefilter(
            records, search_settings(cfg), store_dir=store, workers=cfg.workers, progress=progress
        )
    return de_novo(
        records,
        alphabet,
        evalue=cfg.denovo_evalue,
        min_coverage=cfg.denovo_min_coverage,
        threads=cfg.threads,
        progress=progress,
    )
