"""Stockholm reader (single or multi-record, e.g. Pfam-A.seed), parsed by HMMER's Easel via pyhmmer.

Easel is the reference Stockholm parser: it reads ``#=GF`` headers when present, interleaved
blocks, ``.`` and ``-`` gaps and lower-case insert columns, and rejects duplicate names and a
missing ``//`` terminator. Names are kept verbatim, ``/start-end`` suffixes included.
"""

from __future__ import annotations

import gzip
import io
import re
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import pyhmmer.easel as easel

from phyloclr.errors import InputError
from phyloclr.io.sequences import SeqRecord, clean_sequence


@dataclass(frozen=True)
class StockholmAlignment:
    """One alignment record of a Stockholm file, with its ``#=GF`` ID/AC/DE when present."""

    name: str | None
    accession: str | None
    description: str | None
    records: list[SeqRecord]
    index: int  # 0-based position of this record in its file


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value) or None


_DUP = re.compile(r"duplicate seq name (\S+)")


def read_stockholm(path: str | PathLike[str]) -> list[StockholmAlignment]:
    """All alignments of a Stockholm file (plain or gzipped)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(p, f"cannot open: {exc.strerror or exc}") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(p, f"cannot read: {exc}") from exc
    if not raw.strip():
        raise InputError(p, "empty file (no Stockholm alignment)")
    if not raw.lstrip().startswith(b"# STOCKHOLM"):
        raise InputError(p, "not Stockholm: the file does not start with '# STOCKHOLM 1.0'")
    alignments: list[StockholmAlignment] = []
    try:
        with easel.MSAFile(io.BytesIO(raw), format="stockholm") as msa_file:
            for index, msa in enumerate(msa_file):
                alignments.append(_convert(p, msa, index))
    except InputError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        message = str(exc).replace("Could not parse file: ", "").strip()
        message = message or _diagnose(raw, len(alignments))
        dup = _DUP.search(message)
        where = f"alignment #{len(alignments) + 1}"
        if dup:
            raise InputError(
                p, f"duplicate sequence name in {where} (names must be unique)", dup.group(1)
            ) from exc
        raise InputError(p, f"invalid Stockholm in {where}: {message}") from exc
    if not alignments:
        raise InputError(p, "no Stockholm alignment found")
    return alignments


def _diagnose(raw: bytes, index: int) -> str:
    """What Easel rejected in alignment ``index`` (0-based) of ``raw``, found by our own reading:
    used when its message comes back empty (pyhmmer 0.12 leaves it blank in some processes,
    e.g. a job left running in the background after its shell exits)."""
    records = re.split(r"(?m)^//[ \t]*\r?$", raw.decode("utf-8", "replace"))
    if index >= len(records) - 1 and records[-1].strip():
        return "missing // terminator after MSA"
    for block in re.split(r"\n[ \t]*\r?\n", records[min(index, len(records) - 1)]):
        seen: set[str] = set()
        for line in block.splitlines():
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if fields[0] in seen:
                return f"duplicate seq name {fields[0]}"
            seen.add(fields[0])
    return "the parser gave no reason"


def _convert(path: Path, msa: easel.TextMSA, index: int) -> StockholmAlignment:
    names = [_text(n) or "" for n in msa.names]
    rows = list(msa.alignment)
    label = _text(msa.name) or f"alignment #{index + 1}"
    if not names:
        raise InputError(path, f"alignment {label!r} has no sequences")
    records = []
    for name, row_text in zip(names, rows, strict=True):
        seq, row = clean_sequence(row_text, path, name, aligned=True)
        records.append(SeqRecord(name, seq, "", row))
    return StockholmAlignment(
        name=_text(msa.name),
        accession=_text(msa.accession),
        description=_text(msa.description),
        records=records,
        index=index,
    )
