"""Embedding sequences with a trained encoder: the core (``embed_sequences``) and the job that
streams a FASTA file into one HDF5 file (``embed_fasta``)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from phyloclr.config import check_literals, config_to_dict
from phyloclr.devices import resolve_device, resolve_precision
from phyloclr.errors import ConfigError, InputError
from phyloclr.fsutil import remove_stale_temporaries
from phyloclr.io import hdf5
from phyloclr.io.fasta import iter_fasta
from phyloclr.io.ids import SeenIds
from phyloclr.io.sequences import SeqRecord, fits_alphabet
from phyloclr.models.alphabet import Alphabet
from phyloclr.models.encoders import Encoder, use_bfloat16
from phyloclr.models.memory import detach_memory, sequence_keys
from phyloclr.models.store import load_model
from phyloclr.progress import Progress


def _windows(length: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Start/end of overlapping windows covering [0, length)."""
    if length <= window:
        return [(0, length)]
    step = max(1, window - overlap)
    starts = list(range(0, max(1, length - window) + 1, step))
    if starts[-1] + window < length:
        starts.append(length - window)
    return [(s, s + window) for s in starts]


@torch.no_grad()
def embed_sequences(
    encoder: Encoder,
    alphabet: Alphabet,
    seqs: Sequence[str],
    *,
    batch_tokens: int = 32768,
    window: int | None = None,
    overlap: int = 128,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    residues: list[np.ndarray] | None = None,
    precision: str = "float32",
) -> tuple[np.ndarray, int]:
    """Pooled embeddings (N, D) float32 in input order, and how many sequences were windowed.
    An encoder with a neighbour memory smooths them over it (:mod:`phyloclr.models.memory`).

    Sequences longer than ``window`` (default: the encoder's ``max_len``) are cut into
    overlapping windows whose pooled embeddings are averaged, weighted by residues, never
    truncated. Windows are batched by length under ``batch_tokens``. When ``residues`` is a
    list, per-residue features (L_i, D) float32 are appended to it in input order (averaged
    where windows overlap). ``precision`` 'bfloat16' runs the encoder's residue CNNs in
    bfloat16 (:func:`~phyloclr.models.encoders.use_bfloat16`; everything else stays float32),
    'auto' does so where ``device`` computes bfloat16 natively
    (:func:`~phyloclr.devices.resolve_precision`).
    """
    bf16 = resolve_precision(precision, torch.device(device)) == "bfloat16"
    encoder.eval()
    use_bfloat16(encoder, bf16)
    try:
        return _embed_pieces(encoder, alphabet, seqs, batch_tokens, window, overlap, device,
                             progress, residues)  # fmt: skip
    finally:
        use_bfloat16(encoder, False)


def _embed_pieces(
    encoder: Encoder,
    alphabet: Alphabet,
    seqs: Sequence[str],
    batch_tokens: int,
    window: int | None,
    overlap: int,
    device: str | torch.device,
    progress: Progress | None,
    residues: list[np.ndarray] | None,
) -> tuple[np.ndarray, int]:
    if not encoder.windowed:
        window = max((len(s) for s in seqs), default=1)
    window = window or encoder.spec.max_len
    pieces: list[tuple[int, int, int]] = []  # (sequence index, start, end)
    n_windowed = 0
    for i, s in enumerate(seqs):
        spans = _windows(len(s), window, min(overlap, window // 2))
        n_windowed += len(spans) > 1
        pieces.extend((i, a, b) for a, b in spans)
    order = sorted(range(len(pieces)), key=lambda k: pieces[k][2] - pieces[k][1])
    dim = encoder.dim
    sums = np.zeros((len(seqs), dim), dtype=np.float32)  # float32: a block of wide rows is large
    counts = np.zeros(len(seqs), dtype=np.float64)
    width = encoder.residue_dim
    per_res = (
        [np.zeros((len(s), width), dtype=np.float32) for s in seqs]
        if residues is not None
        else None
    )
    per_cnt = [np.zeros(len(s), dtype=np.float32) for s in seqs] if residues is not None else None
    done = 0
    k = 0
    while k < len(order):
        longest = pieces[order[k]][2] - pieces[order[k]][1]
        batch = [order[k]]
        k += 1
        while k < len(order):
            length = pieces[order[k]][2] - pieces[order[k]][1]
            if (len(batch) + 1) * max(longest, length) > batch_tokens:
                break
            batch.append(order[k])
            longest = max(longest, length)
            k += 1
        texts = [seqs[pieces[j][0]][pieces[j][1] : pieces[j][2]] for j in batch]
        tokens = alphabet.batch(texts).to(device)
        mask = tokens != 0
        pooled = encoder(tokens, mask).float().cpu().numpy()
        weights = mask.sum(1).cpu().numpy().astype(np.float64)
        feats = (
            encoder.residues(tokens, mask).float().cpu().numpy() if per_res is not None else None
        )
        for row, j in enumerate(batch):
            idx, start, end = pieces[j]
            sums[idx] += pooled[row] * np.float32(weights[row])
            counts[idx] += weights[row]
            if feats is not None and per_res is not None and per_cnt is not None:
                per_res[idx][start:end] += feats[row, : end - start]
                per_cnt[idx][start:end] += 1.0
        done += len(batch)
        if progress is not None:
            progress("embedding", done, len(pieces))
    sums /= np.maximum(counts, 1.0)[:, None]  # in place: a block of wide rows is large
    emb = sums
    memory = getattr(encoder, "memory", None)
    if memory is not None:  # a model pretrained with a neighbour memory (models/memory.py)
        keys = sequence_keys(seqs) if memory.keyed else None  # a second-order memory's
        emb = memory.smooth(emb, keys)  # float32 already: no copy of the block
    if residues is not None and per_res is not None and per_cnt is not None:
        residues.extend(
            r / np.maximum(c, 1.0)[:, None] for r, c in zip(per_res, per_cnt, strict=True)
        )
    return emb, n_windowed


@dataclass(frozen=True)
class EmbedConfig:
    """Settings of an embedding job (saved as JSON in the output file). ``dtype``: how the
    embeddings are stored; ``precision``: how residue CNNs compute them (float32; bfloat16; or
    auto: bfloat16 where the device computes it natively, see
    :func:`~phyloclr.devices.resolve_precision`; the one used is saved as the output's
    ``precision`` attribute); ``memory``: smooth over the model's neighbour memory where it
    has one (:mod:`phyloclr.models.memory`; False: the unsmoothed embeddings)."""

    batch_tokens: int = 32768
    dtype: Literal["float32", "float16"] = "float32"
    precision: Literal["auto", "float32", "bfloat16"] = "float32"
    per_residue: bool = False
    overlap: int = 128
    part_size: int = 4096
    dedupe: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0
    shard_index: int = 0
    shard_count: int = 1
    memory: bool = True

    def __post_init__(self) -> None:
        check_literals(self)
        if self.batch_tokens < 16 or self.part_size < 1 or self.overlap < 0:
            raise ConfigError("batch_tokens ≥ 16, part_size ≥ 1 and overlap ≥ 0 are required")
        if not 0 <= self.shard_index < self.shard_count:
            raise ConfigError("a shard i/n needs 0 ≤ i < n")


@dataclass
class EmbedResult:
    out: Path
    n_sequences: int
    n_windowed: int
    n_duplicates_skipped: int
    resumed_rows: int
    elapsed_s: float


#: the models that ship inside the package, by the name ``--model`` accepts
BUNDLED = {"default": "default_model.pt", "sketch": "sketch_model.pt"}


def bundled_model_path(name: str) -> Path:
    """A model that ships inside the package: ``default`` (a residue CNN with a k-mer sketch
    appended) or ``sketch`` (the k-mer sketch alone: about 9× faster, less sensitive)."""
    return Path(str(resources.files("phyloclr") / "data" / BUNDLED[name]))


def default_model_path() -> Path:
    """The model ``embed`` uses when none is given."""
    return bundled_model_path("default")


def resolve_model_path(model: str | os.PathLike[str] | None) -> Path:
    """A run directory or model file; a bundled model's name (``BUNDLED``) unless a path of that
    name exists; None: the default model."""
    if model is None:
        return default_model_path()
    if str(model) in BUNDLED and not Path(model).exists():
        return bundled_model_path(str(model))
    return Path(model)


def _finished(out: Path, weights: str, cfg: EmbedConfig) -> int | None:
    """The rows of ``out`` when it is a complete embedding file of this model and these
    settings (read from its attributes only), else None."""
    import h5py

    try:
        with h5py.File(out, "r") as f:
            attrs = dict(f.attrs)
    except OSError:
        return None
    if attrs.get("format") != hdf5.FORMAT or not attrs.get("complete"):
        return None
    model = json.loads(str(attrs.get("model", "{}")))
    config = json.loads(str(attrs.get("config", "{}")))
    if model.get("weights_sha256") != weights or config.get("embed") != config_to_dict(cfg):
        return None
    return int(attrs["n_sequences"])


# long (≈ 100 lines) because the streaming loop and its part flushes share the run's counters;
# split further they would pass eight values back and forth
def embed_fasta(
    fasta: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    config: EmbedConfig | None = None,
    *,
    resume: bool = False,
    progress: Progress | None = None,
) -> EmbedResult:
    """Embed every sequence of a FASTA file (plain or gzipped) into one HDF5 file.

    Streams the input in blocks of ``part_size`` sequences, so memory does not grow with the
    file; rows are written in input order. See :mod:`phyloclr.io.hdf5` for the layout and for
    why an interrupted run loses nothing. ``model`` is a run directory, a ``model.pt`` or the
    name of a bundled model (``default``, ``sketch``); None uses the default model.
    """
    cfg = config or EmbedConfig()
    t0 = time.perf_counter()
    out_path = Path(out)
    fasta_path = Path(fasta)
    model_path = resolve_model_path(model)
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    loaded = load_model(model_path, device)
    if not cfg.memory:
        detach_memory(loaded.encoder)
    precision = resolve_precision(cfg.precision, device)
    if cfg.per_residue and not loaded.encoder.per_residue:
        raise ConfigError(
            f"{model_path}: --per-residue needs a residue-level encoder (cnn, transformer); "
            f"this model is a {loaded.encoder.spec.name!r} encoder"
        )
    parts = hdf5.parts_dir(out_path)
    if out_path.exists():
        n_done = _finished(out_path, loaded.weights_sha256, cfg) if resume else None
        if n_done is not None:
            # the run was killed after writing its output (before or after removing the parts)
            hdf5.remove_parts(parts)
            return EmbedResult(out_path, n_done, 0, 0, n_done, time.perf_counter() - t0)
        raise InputError(out_path, "already exists; remove it or choose another --out")
    manifest = {
        "fasta": str(fasta_path.resolve()),
        "fasta_bytes": fasta_path.stat().st_size if fasta_path.exists() else None,
        "model": loaded.weights_sha256,
        "config": config_to_dict(cfg),
        "precision": precision,
    }
    committed = _open_parts(parts, out_path, manifest, resume)
    done_rows = sum(hdf5.part_rows(p) for p in committed)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    block_ids: list[str] = []
    block_seqs: list[str] = []
    n_rows = n_windowed = 0
    dups = [0]
    part_index = len(committed)
    alphabet = loaded.alphabet

    def flush() -> None:
        nonlocal part_index, n_windowed
        if not block_ids:
            return
        residues: list[np.ndarray] | None = [] if cfg.per_residue else None
        emb, windowed = embed_sequences(
            loaded.encoder, alphabet, block_seqs, batch_tokens=cfg.batch_tokens,
            overlap=cfg.overlap, device=device, residues=residues, precision=precision,
        )  # fmt: skip
        n_windowed += windowed
        hdf5.write_part(
            parts, part_index, block_ids, emb.astype(cfg.dtype, copy=False),
            None if residues is None else [r.astype(cfg.dtype) for r in residues],
        )  # fmt: skip
        part_index += 1
        block_ids.clear()
        block_seqs.clear()

    for rec in _shard_records(fasta_path, cfg, alphabet.name, dups):
        n_rows += 1
        if n_rows <= done_rows:
            continue  # already in a committed part
        block_ids.append(rec.id)
        block_seqs.append(rec.seq)
        if len(block_ids) >= cfg.part_size:
            flush()
            if progress is not None:
                progress("embedding", n_rows, None)
    flush()
    if progress is not None:
        progress("embedding", n_rows, n_rows)
    attrs = {
        "model": json.dumps(
            {"name": loaded.name, "weights_sha256": loaded.weights_sha256, "path": str(model_path)}
        ),
        "config": json.dumps({"embed": config_to_dict(cfg), "model": loaded.config}),
        "shard": f"{cfg.shard_index}/{cfg.shard_count}",
        "precision": precision,
    }
    n = hdf5.merge_parts(
        hdf5.committed_parts(parts), out_path, attrs, loaded.encoder.dim, cfg.dtype,
        cfg.per_residue, loaded.encoder.residue_dim,
    )  # fmt: skip
    hdf5.remove_parts(parts)
    return EmbedResult(out_path, n, n_windowed, dups[0], done_rows, time.perf_counter() - t0)


def _open_parts(parts: Path, out_path: Path, manifest: dict[str, Any], resume: bool) -> list[Path]:
    """The committed parts a resumed run keeps (refusing leftovers without ``resume``, and a
    different input, model or settings with it); the manifest written, temporaries removed."""
    committed = hdf5.committed_parts(parts)
    if committed:  # a directory holding no committed part has nothing to resume
        if not resume:
            raise InputError(
                parts, "an interrupted run left its parts here: pass --resume, or delete them"
            )
        previous = hdf5.read_manifest(parts)
        if previous is not None and previous != manifest:
            raise InputError(
                parts, "--resume with a different input, model or settings than the interrupted run"
            )
    hdf5.write_manifest(parts, manifest)
    remove_stale_temporaries(parts)
    remove_stale_temporaries(out_path.parent, out_path.name)
    return committed


def _shard_records(
    fasta: Path, cfg: EmbedConfig, alphabet: str, dups: list[int]
) -> Iterator[SeqRecord]:
    """This shard's records of ``fasta`` in input order; a repeated id is an error, or with
    ``cfg.dedupe`` skipped and counted in ``dups[0]``; a sequence of the other alphabet is an
    error naming it."""
    seen = SeenIds()
    position = -1
    for rec in iter_fasta(fasta):
        if seen.add(rec.id):
            if not cfg.dedupe:
                raise InputError(
                    fasta, "duplicate sequence id (pass --dedupe to keep the first)", rec.id
                )
            dups[0] += 1
            continue
        if not fits_alphabet(rec.seq, alphabet):
            kind = "nucleotide" if alphabet == "protein" else "protein"
            raise InputError(
                fasta, f"{kind} sequence, but the model was trained on {alphabet}", rec.id
            )
        position += 1
        if position % cfg.shard_count == cfg.shard_index:  # else another shard's sequence
            yield rec


def merge_shards(shards: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> int:
    """Merge the files of ``--shard i/n`` runs (one per i) into one file in input order.

    Shard i holds input rows i, i + n, i + 2n, ... (counting after deduplication), so the
    merged row k is row k // n of shard k % n. Shards must be complete and come from the same
    input, model and settings; ids must stay unique across shards.
    """
    return hdf5.merge_round_robin([Path(s) for s in shards], Path(out))


def shard_path(out: Path, index: int, count: int) -> Path:
    return out.with_name(f"{out.name}.shard-{index}-of-{count}.h5")


def embed_fasta_torchrun(
    fasta: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    config: EmbedConfig | None = None,
    *,
    resume: bool = False,
    progress: Progress | None = None,
) -> EmbedResult:
    """``embed_fasta`` for a run launched by torchrun: rank r of n embeds shard r/n into
    ``OUT.shard-r-of-n.h5``; after a barrier rank 0 merges the shards into ``OUT`` in input
    order and removes them. Without torchrun (WORLD_SIZE unset or 1) it is ``embed_fasta``."""
    import dataclasses

    import torch.distributed as dist

    from phyloclr.train import distributed

    world = int(os.environ.get("WORLD_SIZE", "1"))
    cfg = config or EmbedConfig()
    if world <= 1:
        return embed_fasta(fasta, out, model, cfg, resume=resume, progress=progress)
    rank = int(os.environ["RANK"])
    distributed.join_group("gloo")
    if cfg.device in ("auto", "cuda") and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    out_path = Path(out)
    shard_cfg = dataclasses.replace(cfg, shard_index=rank, shard_count=world)
    part = shard_path(out_path, rank, world)
    result = None
    if not (resume and part.exists()):
        result = embed_fasta(fasta, part, model, shard_cfg, resume=resume, progress=progress)
    dist.barrier()
    if rank == 0:
        shards = [shard_path(out_path, r, world) for r in range(world)]
        n = merge_shards(shards, out_path)
        for s in shards:
            s.unlink()
    else:
        n = result.n_sequences if result else 0
    dist.barrier()
    distributed.leave_group()
    return EmbedResult(
        out_path, n, result.n_windowed if result else 0,
        result.n_duplicates_skipped if result else 0, result.resumed_rows if result else 0,
        result.elapsed_s if result else 0.0,
    )  # fmt: skip
