"""The HDF5 embedding store: one self-describing file, built from an on-disk journal of parts.

While a job runs, every block of sequences is written as its own small HDF5 part file
(``OUT.h5.parts/part-000000.h5``), to a temporary name and then renamed, so a part either
exists whole or not at all. When every sequence is embedded the parts are streamed into the
final file's chunked, resizable datasets, written to a temporary name and renamed, with
``complete = True``: killing the job at any moment loses no committed part and never leaves a
file that reads as complete; ``--resume`` continues after the last committed part.

Final layout (``format = "phyloclr-embeddings"``, ``format_version = 1``):
- ``embeddings`` (N, D) float32 or float16, ``ids`` (N,) UTF-8 strings verbatim, input order;
- with per-residue output: ``residues`` (ΣL, D) and ``offsets`` (N + 1,) int64, sequence i's
  rows being ``residues[offsets[i]:offsets[i + 1]]``;
- root attributes ``format``, ``format_version``, ``model`` (JSON: name, weights hash),
  ``config`` (JSON), ``phyloclr_version``, ``complete``, ``n_sequences``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from phyloclr import __version__
from phyloclr.errors import InputError
from phyloclr.fsutil import atomic_path, require_space
from phyloclr.io.ids import SeenIds

FORMAT = "phyloclr-embeddings"
FORMAT_VERSION = 1
STR = h5py.string_dtype("utf-8")


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def write_part(
    directory: Path,
    index: int,
    ids: Sequence[str],
    embeddings: np.ndarray,
    residues: Sequence[np.ndarray] | None = None,
) -> Path:
    """Write one committed block of rows (temporary file, then rename)."""
    final = directory / f"part-{index:06d}.h5"
    size = embeddings.nbytes + sum(len(i) + 16 for i in ids)
    if residues is not None:
        size += sum(r.size for r in residues) * embeddings.itemsize
    require_space(final, size)
    with atomic_path(final) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("embeddings", data=embeddings)
        f.create_dataset("ids", data=np.array(list(ids), dtype=object), dtype=STR)
        if residues is not None:
            lengths = np.array([len(r) for r in residues], dtype=np.int64)
            f.create_dataset("lengths", data=lengths)
            dim = embeddings.shape[1]
            stacked = np.concatenate(residues) if residues else np.zeros((0, dim))
            f.create_dataset("residues", data=stacked.astype(embeddings.dtype))
    return final


def committed_parts(directory: Path) -> list[Path]:
    """Committed parts in order; hidden temporaries of an interrupted write are removed."""
    if not directory.is_dir():
        return []
    for stray in directory.glob(".part-*"):
        stray.unlink(missing_ok=True)
    return sorted(directory.glob("part-*.h5"))


def part_rows(path: Path) -> int:
    with h5py.File(path, "r") as f:
        return int(f["ids"].shape[0])


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, sort_keys=True))
    os.replace(tmp, directory / "manifest.json")


def read_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((directory / "manifest.json").read_text()))
    except (OSError, ValueError):
        return None


def merge_parts(
    parts: Sequence[Path],
    out: Path,
    attrs: dict[str, Any],
    dim: int,
    dtype: str,
    per_residue: bool,
    residue_dim: int | None = None,
) -> int:
    """Stream parts into ``out`` (chunked, resizable datasets), then mark it complete; the
    per-residue rows are ``residue_dim`` wide (default ``dim``)."""
    rdim = dim if residue_dim is None else residue_dim
    n = 0
    require_space(out, sum(p.stat().st_size for p in parts))
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["phyloclr_version"] = __version__
        f.attrs["complete"] = False
        chunk = 1024
        emb = f.create_dataset(
            "embeddings", shape=(0, dim), maxshape=(None, dim), dtype=dtype, chunks=(chunk, dim)
        )
        ids = f.create_dataset("ids", shape=(0,), maxshape=(None,), dtype=STR, chunks=(chunk,))
        if per_residue:
            res = f.create_dataset(
                "residues", shape=(0, rdim), maxshape=(None, rdim), dtype=dtype,
                chunks=(4096, rdim),
            )  # fmt: skip
            offsets = f.create_dataset(
                "offsets", shape=(1,), maxshape=(None,), dtype="int64", chunks=(chunk,)
            )
            offsets[0] = 0
        for part in parts:
            with h5py.File(part, "r") as p:
                m = p["ids"].shape[0]
                emb.resize(n + m, axis=0)
                emb[n : n + m] = p["embeddings"][:]
                ids.resize(n + m, axis=0)
                ids[n : n + m] = p["ids"][:]
                if per_residue:
                    lengths = p["lengths"][:]
                    start = int(offsets[n])
                    total = int(lengths.sum())
                    res.resize(start + total, axis=0)
                    res[start : start + total] = p["residues"][:]
                    offsets.resize(n + m + 1, axis=0)
                    offsets[n + 1 : n + m + 1] = start + np.cumsum(lengths)
                n += m
        f.attrs["n_sequences"] = n
        f.attrs["complete"] = True
    return n


@dataclass
class EmbeddingFile:
    """An embedding file read back: ids, embeddings (N, D) and the root attributes; read with
    ``only``, the rows kept (``ids`` and ``embeddings``) and every id of the file (``all_ids``)."""

    ids: list[str]
    embeddings: np.ndarray
    attrs: dict[str, Any]
    all_ids: list[str] | None = None


def read_embeddings(
    path: str | os.PathLike[str], only: Container[str] | None = None, block: int = 65536,
    native: bool = False,
) -> EmbeddingFile:  # fmt: skip
    """Read a complete phyloclr embedding file (an error for anything else) as float32, or with
    ``native`` a float16 file as float16 (half the memory); with ``only``,
    just the rows whose id it holds, ``block`` rows at a time (memory: those rows and a block,
    however large the file)."""
    p = Path(path)
    try:
        with h5py.File(p, "r") as f:
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
            if attrs.get("format") != FORMAT:
                raise InputError(p, "not a phyloclr embedding file (no format attribute)")
            if not attrs.get("complete"):
                raise InputError(p, "embedding file is incomplete (the run did not finish)")
            for name in ("ids", "embeddings"):
                if not isinstance(f.get(name), h5py.Dataset):
                    raise InputError(p, f"no '{name}' dataset: not a phyloclr embedding file")
            raw_emb, raw_ids = f["embeddings"], f["ids"]
            if raw_emb.ndim != 2 or raw_emb.dtype.kind not in "fiu":
                raise InputError(
                    p, f"'embeddings' is {raw_emb.dtype} of shape {raw_emb.shape}, "
                    "expected a 2-D float array (sequences × dimensions)",
                )  # fmt: skip
            if raw_ids.ndim != 1 or raw_ids.shape[0] != raw_emb.shape[0]:
                raise InputError(
                    p, f"'ids' has shape {raw_ids.shape} but 'embeddings' has "
                    f"{raw_emb.shape[0]} rows",
                )  # fmt: skip
            ids = [x.decode() if isinstance(x, bytes) else str(x) for x in raw_ids[:]]
            if only is None:
                keep = native and raw_emb.dtype in (np.float16, np.float32)  # float64: float32
                emb = raw_emb[:] if keep else np.asarray(raw_emb[:], dtype=np.float32)
            else:
                rows = np.array([i for i, x in enumerate(ids) if x in only], dtype=np.int64)
                emb = np.zeros((len(rows), raw_emb.shape[1]), dtype=np.float32)
                for a in range(0, raw_emb.shape[0], block):
                    at = np.flatnonzero((rows >= a) & (rows < a + block))
                    if len(at):
                        emb[at] = raw_emb[a : a + block][rows[at] - a]
    except OSError as exc:
        raise InputError(p, f"cannot read HDF5: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(p, "'ids' are not UTF-8 strings") from exc
    n = attrs.get("n_sequences")
    if n is not None and int(n) != len(ids):
        raise InputError(p, f"holds {len(ids)} sequences, its n_sequences attribute says {n}")
    if only is None:
        return EmbeddingFile(ids, emb, attrs)
    return EmbeddingFile([ids[i] for i in rows], emb, attrs, all_ids=ids)


def remove_parts(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def _ordered_shards(shards: Sequence[Path], handles: list[Any]) -> list[Any]:
    """The open shard files in shard order, after checking they are complete, one for each i
    of one i/n, from one model and settings, and sized as one input split n ways."""
    infos = []
    for path, f in zip(shards, handles, strict=True):
        if f.attrs.get("format") != FORMAT or not f.attrs.get("complete"):
            raise InputError(path, "not a complete phyloclr embedding file")
        index, count = (int(x) for x in str(f.attrs.get("shard", "0/1")).split("/"))
        config = json.loads(f.attrs["config"])
        config["embed"].pop("shard_index", None)
        config["precision"] = str(f.attrs.get("precision", "float32"))  # as computed
        infos.append((index, count, f.attrs["model"], json.dumps(config, sort_keys=True)))
    counts = {i[1] for i in infos}
    if len(counts) != 1 or sorted(i[0] for i in infos) != list(range(counts.pop())):
        raise InputError(
            None, "shards must be exactly one file for each i of the same i/n: "
            + ", ".join(f"{p} ({i[0]}/{i[1]})" for p, i in zip(shards, infos, strict=True))
        )  # fmt: skip
    if len({(i[2], i[3]) for i in infos}) != 1:
        raise InputError(None, "shards come from different models or settings")
    order = sorted(range(len(shards)), key=lambda k: infos[k][0])
    files = [handles[k] for k in order]
    n_shards = len(files)
    sizes = [int(f["ids"].shape[0]) for f in files]
    total = sum(sizes)
    if any(sizes[i] != (total - i + n_shards - 1) // n_shards for i in range(n_shards)):
        raise InputError(None, f"shard sizes {sizes} do not fit one input split {n_shards} ways")
    return files


def merge_round_robin(shards: Sequence[Path], out: Path, block: int = 8192) -> int:
    """Interleave complete shard files (shard i holds rows i, i+n, ...) into ``out``."""
    if out.exists():
        raise InputError(out, "already exists; remove it or choose another --out")
    handles = []
    try:
        for path in shards:
            try:
                handles.append(h5py.File(path, "r"))
            except OSError as exc:
                raise InputError(path, f"cannot read HDF5: {exc}") from exc
        files = _ordered_shards(shards, handles)
        n_shards = len(files)
        sizes = [int(f["ids"].shape[0]) for f in files]
        total = sum(sizes)
        first = files[0]
        dim = int(first["embeddings"].shape[1])
        per_residue = "residues" in first
        attrs = {
            k: v for k, v in first.attrs.items() if k not in ("complete", "n_sequences", "shard")
        }
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            seen = SeenIds()
            step = block - block % n_shards or n_shards
            part = 0
            for start in range(0, total, step):
                end = min(total, start + step)
                emb = np.empty((end - start, dim), dtype=first["embeddings"].dtype)
                ids: list[str] = [""] * (end - start)
                res: list[np.ndarray] = [np.zeros((0, dim))] * (end - start)
                for s, f in enumerate(files):  # start is a multiple of n_shards
                    r0 = start // n_shards
                    count = len(range(start + s, end, n_shards))
                    if not count:
                        continue
                    emb[s::n_shards] = f["embeddings"][r0 : r0 + count]
                    names = f["ids"][r0 : r0 + count]
                    for j, rid in enumerate(names):
                        ids[s + j * n_shards] = rid.decode() if isinstance(rid, bytes) else str(rid)
                    if per_residue:
                        offs = f["offsets"][r0 : r0 + count + 1]
                        chunk = f["residues"][offs[0] : offs[-1]]
                        for j in range(count):
                            res[s + j * n_shards] = chunk[offs[j] - offs[0] : offs[j + 1] - offs[0]]
                for rid in ids:
                    if seen.add(rid):
                        raise InputError(None, "duplicate sequence id across shards", rid)
                write_part(tmp_dir, part, ids, emb, res if per_residue else None)
                part += 1
            n = merge_parts(
                committed_parts(tmp_dir), out, attrs, dim, str(first["embeddings"].dtype),
                per_residue, first["residues"].shape[1] if per_residue else None,
            )  # fmt: skip
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    finally:
        for f in handles:
            f.close()
    return n


def write_array_file(
    path: Path, ids: Sequence[str], embeddings: np.ndarray, attrs: dict[str, Any]
) -> int:
    """Write an in-memory (N, D) array as a complete embedding file (same layout as embed)."""
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        part = write_part(tmp_dir, 0, ids, embeddings.astype(np.float32))
        return merge_parts([part], path, attrs, embeddings.shape[1], "float32", False)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
