"""On-disk cache of built families and distances, keyed by input contents and config; what it
holds, and clearing it (``phyloclr cache``).

Layout under the cache directory: ``families/KEY/`` (one built family set: ``families.jsonl``,
``distances.npz``), ``edges/`` (the de novo homology search's work: one edge store per set of
search settings, and MMseqs2's work directory of a run not yet finished), ``locks/`` (the
empty lock files that let runs share the cache). Nothing is removed on its own: a cache grows
with every corpus and setting built, until :func:`clear_cache`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phyloclr import __version__
from phyloclr.families.model import Family, FamilySet
from phyloclr.fsutil import try_file_lock
from phyloclr.io.newick import Tree
from phyloclr.io.sequences import SeqRecord
from phyloclr.progress import Progress

#: 2: families.jsonl, a line per family (1: one families.json)
CACHE_FORMAT = 2
#: the cache's subdirectory of the de novo search's edge stores and MMseqs2 work directories
EDGES = "edges"


def default_cache_dir() -> Path:
    """``$PHYLOCLR_CACHE``, else ``$XDG_CACHE_HOME/phyloclr``, else ``~/.cache/phyloclr``."""
    env = os.environ.get("PHYLOCLR_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "phyloclr"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(files: Iterable[Path], config_json: str) -> str:
    """A digest of every input file's name and content, the config and the phyloclr version."""
    h = hashlib.sha256()
    h.update(f"phyloclr-families/{CACHE_FORMAT}/{__version__}\n{config_json}\n".encode())
    for f in files:
        h.update(f"{f.name}\t{_file_digest(f)}\n".encode())
    return h.hexdigest()[:32]


def _entry(cache_dir: Path, key: str) -> Path:
    return cache_dir / "families" / key


def discard(cache_dir: Path, key: str) -> None:
    """Remove the entry for ``key`` if there is one (say, one cut short by a full disk)."""
    shutil.rmtree(_entry(cache_dir, key), ignore_errors=True)


def save(fset: FamilySet, cache_dir: Path, key: str, progress: Progress | None = None) -> Path:
    """Write atomically: build in a temporary directory, then rename into place.

    Streamed a family at a time, so that a million proteins' families never sit in memory a
    second time as JSON text: ``families.jsonl`` holds a header line, then one line per
    family; ``distances.npz`` one array per family. ``progress`` counts each family twice
    (its line, then its distances)."""
    final = _entry(cache_dir, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
    n = len(fset.families)
    try:
        header = {
            "format": CACHE_FORMAT,
            "phyloclr_version": __version__,
            "config": json.loads(fset.config_json),
            "warnings": fset.warnings,
            "unassigned": fset.unassigned,
            "families": n,
            "inputs": sorted({str(f.source) for f in fset.families}),  # for `phyloclr cache`
        }
        with (tmp / "families.jsonl").open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(header) + "\n")
            for i, f in enumerate(fset.families, start=1):
                fh.write(json.dumps(_family_meta(f)) + "\n")
                if progress is not None:
                    progress("writing the family cache", i, 2 * n)
        with zipfile.ZipFile(
            tmp / "distances.npz", "w", zipfile.ZIP_DEFLATED, compresslevel=1
        ) as zf:
            for i, f in enumerate(fset.families):
                if f.distances is not None:  # an .npz that np.load reads, an array at a time
                    with zf.open(f"f{i}.npy", "w", force_zip64=True) as out:
                        np.lib.format.write_array(out, f.distances, allow_pickle=False)
                if progress is not None:
                    progress("writing the family cache", n + i + 1, 2 * n)
        try:
            os.replace(tmp, final)
        except OSError:  # another process won the race; its entry is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _family_meta(f: Family) -> dict[str, object]:
    return {
        "id": f.id,
        "alphabet": f.alphabet,
        "source": f.source,
        "accession": f.accession,
        "description": f.description,
        "alignment_origin": f.alignment_origin,
        "tree": None if f.tree is None else f.tree.to_newick(),
        "tree_has_lengths": None if f.tree is None else f.tree.has_branch_lengths,
        "tree_origin": f.tree_origin,
        "distance_method": f.distance_method,
        "hmm_name": f.hmm_name,
        "saturated_pairs": f.saturated_pairs,
        "notes": f.notes,
        "records": [[r.id, r.seq, r.description, r.aligned] for r in f.records],
    }


def _family_of(fm: dict[str, Any], distances: np.ndarray | None) -> Family:
    """The Family of one ``families.jsonl`` line."""
    tree = None
    if fm["tree"] is not None:
        tree = Tree.from_newick(fm["tree"])
        tree.has_branch_lengths = bool(fm["tree_has_lengths"])
    return Family(
        id=fm["id"],
        records=[SeqRecord(*r) for r in fm["records"]],
        alphabet=fm["alphabet"],
        source=fm["source"],
        accession=fm["accession"],
        description=fm["description"],
        alignment_origin=fm["alignment_origin"],
        tree=tree,
        tree_origin=fm["tree_origin"],
        distances=distances,
        distance_method=fm["distance_method"],
        hmm_name=fm["hmm_name"],
        saturated_pairs=int(fm["saturated_pairs"]),
        notes=list(fm["notes"]),
    )


def load(cache_dir: Path, key: str) -> FamilySet | None:
    """The cached FamilySet for ``key``, or None (also when the entry is unreadable or cut
    short)."""
    entry = _entry(cache_dir, key)
    try:
        with np.load(entry / "distances.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        with (entry / "families.jsonl").open(encoding="utf-8") as fh:
            header = json.loads(fh.readline())
            if header.get("format") != CACHE_FORMAT:
                return None
            families = [
                _family_of(json.loads(line), arrays.pop(f"f{i}", None)) for i, line in enumerate(fh)
            ]
        if len(families) != header["families"]:  # cut short
            return None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return None
    with contextlib.suppress(OSError):  # its last use, for clear_cache(older_than_days=...)
        os.utime(entry)
    return FamilySet(
        families=families,
        warnings=list(header["warnings"]),
        unassigned=list(header["unassigned"]),
        config_json=json.dumps(header["config"], sort_keys=True, separators=(",", ":")),
        cache_key=key,
        from_cache=True,
    )


# ---- what the cache holds ----------------------------------------------------------------------


@dataclass(frozen=True)
class CacheEntry:
    """One entry: ``kind`` 'families' (a built family set, ``families`` of them) or 'search' (a
    de novo search's edge store, or the work directory of an MMseqs2 run not finished);
    ``size`` its bytes on disk; ``used`` when it was last written or read (seconds since the
    epoch); ``inputs`` the files a family set was built from (entries written before phyloclr
    recorded them: none)."""

    kind: str
    key: str
    path: Path
    size: int
    used: float
    families: int | None = None
    inputs: tuple[str, ...] = ()


def cache_entries(
    cache_dir: Path | None = None, older_than_days: float | None = None, now: float | None = None
) -> list[CacheEntry]:
    """Every entry of the cache at ``cache_dir`` (default :func:`default_cache_dir`), the most
    recently used first (with ``older_than_days``, those not used for that long before ``now``,
    default the present); an absent cache has none. Entries being written (hidden temporary
    directories) are not listed."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    now = time.time() if now is None else now
    found = []
    for kind, parent in (("families", root / "families"), ("search", root / EDGES)):
        if not parent.is_dir():
            continue
        for path in sorted(parent.iterdir()):
            if path.name.startswith(".") or not path.is_dir():
                continue
            size, used = _usage(path)
            if older_than_days is not None and now - used < older_than_days * 86400:
                continue
            n, inputs = _header(path) if kind == "families" else (None, ())
            found.append(CacheEntry(kind, path.name, path, size, used, n, inputs))
    return sorted(found, key=lambda e: (-e.used, e.kind, e.key))


def _usage(path: Path) -> tuple[int, float]:
    """Bytes under ``path`` and the latest modification time of it or anything in it."""
    size, used = 0, path.stat().st_mtime
    for dirpath, _, files in os.walk(path):
        with contextlib.suppress(OSError):
            used = max(used, os.stat(dirpath).st_mtime)
        for name in files:
            with contextlib.suppress(OSError):  # a file removed meanwhile
                st = os.stat(os.path.join(dirpath, name))
                size += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
                used = max(used, st.st_mtime)
    return size, used


def _header(entry: Path) -> tuple[int | None, tuple[str, ...]]:
    """A family set's count and input files, from its header line."""
    try:
        with (entry / "families.jsonl").open(encoding="utf-8") as fh:
            header = json.loads(fh.readline())
        return int(header["families"]), tuple(str(x) for x in header.get("inputs", ()))
    except (OSError, ValueError, KeyError, TypeError):
        return None, ()


def _entry_lock(entry: CacheEntry, root: Path) -> Path:
    """The lock a run holds while it uses ``entry``: a family set's key lock, an MMseqs2 work
    directory's own (an edge store has none: its parts are written atomically, so a search
    that loses it mid-run only searches again what it had)."""
    if entry.kind == "families":
        return root / "locks" / f"{entry.key}.lock"
    return entry.path / ".lock"


def clear_cache(
    cache_dir: Path | None = None, older_than_days: float | None = None, now: float | None = None
) -> tuple[list[CacheEntry], list[tuple[CacheEntry, str]]]:
    """Remove the cache's entries (with ``older_than_days``, those not used for that long) and
    return (removed, kept with the reason): an entry a run holds (building or reading
    families, MMseqs2 working) is kept, and so is one the file system would not let go (its
    files then partly removed: the next run that needs it rebuilds it). Every entry removed is
    rebuilt when next needed."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    removed: list[CacheEntry] = []
    kept: list[tuple[CacheEntry, str]] = []

    def remove(entry: CacheEntry) -> None:
        shutil.rmtree(entry.path, ignore_errors=True)
        if entry.path.exists():
            kept.append((entry, "could not be removed (permissions?)"))
        else:
            removed.append(entry)

    for entry in cache_entries(root, older_than_days, now):
        lock = _entry_lock(entry, root)
        if entry.kind == "search" and not lock.exists():  # an edge store
            remove(entry)
            continue
        with try_file_lock(lock) as free:
            if free:
                remove(entry)
            else:
                kept.append((entry, "in use by a run"))
    return removed, kept
