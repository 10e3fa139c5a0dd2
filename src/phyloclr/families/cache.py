"""On-disk cache of built families and distances, keyed by input contents and config."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from phyloclr import __version__
from phyloclr.families.model import Family, FamilySet
from phyloclr.io.newick import Tree
from phyloclr.io.sequences import SeqRecord
from phyloclr.progress import Progress

#: 2: families.jsonl, a line per family (1: one families.json)
CACHE_FORMAT = 2


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
    return FamilySet(
        families=families,
        warnings=list(header["warnings"]),
        unassigned=list(header["unassigned"]),
        config_json=json.dumps(header["config"], sort_keys=True, separators=(",", ":")),
        cache_key=key,
        from_cache=True,
    )
