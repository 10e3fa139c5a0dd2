"""On-disk cache of built families and distances, keyed by input contents and config."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from phyloclr import __version__
from phyloclr.families.model import Family, FamilySet
from phyloclr.io.newick import Tree
from phyloclr.io.sequences import SeqRecord

CACHE_FORMAT = 1


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


def save(fset: FamilySet, cache_dir: Path, key: str) -> Path:
    """Write atomically: build in a temporary directory, then rename into place."""
    final = _entry(cache_dir, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
    try:
        meta = {
            "format": CACHE_FORMAT,
            "phyloclr_version": __version__,
            "config": json.loads(fset.config_json),
            "warnings": fset.warnings,
            "unassigned": fset.unassigned,
            "families": [_family_meta(f) for f in fset.families],
        }
        (tmp / "families.json").write_text(json.dumps(meta))
        arrays = {
            f"f{i}": f.distances for i, f in enumerate(fset.families) if f.distances is not None
        }
        np.savez_compressed(tmp / "distances.npz", **arrays)  # type: ignore[arg-type]
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


def load(cache_dir: Path, key: str) -> FamilySet | None:
    """The cached FamilySet for ``key``, or None (also when the entry is unreadable)."""
    entry = _entry(cache_dir, key)
    try:
        meta = json.loads((entry / "families.json").read_text())
        with np.load(entry / "distances.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, KeyError):
        return None
    if meta.get("format") != CACHE_FORMAT:
        return None
    families = []
    for i, fm in enumerate(meta["families"]):
        tree = None
        if fm["tree"] is not None:
            tree = Tree.from_newick(fm["tree"])
            tree.has_branch_lengths = bool(fm["tree_has_lengths"])
        families.append(
            Family(
                id=fm["id"],
                records=[SeqRecord(*r) for r in fm["records"]],
                alphabet=fm["alphabet"],
                source=fm["source"],
                accession=fm["accession"],
                description=fm["description"],
                alignment_origin=fm["alignment_origin"],
                tree=tree,
                tree_origin=fm["tree_origin"],
                distances=arrays.get(f"f{i}"),
                distance_method=fm["distance_method"],
                hmm_name=fm["hmm_name"],
                saturated_pairs=int(fm["saturated_pairs"]),
                notes=list(fm["notes"]),
            )
        )
    return FamilySet(
        families=families,
        warnings=list(meta["warnings"]),
        unassigned=list(meta["unassigned"]),
        config_json=json.dumps(meta["config"], sort_keys=True, separators=(",", ":")),
        cache_key=key,
        from_cache=True,
    )
