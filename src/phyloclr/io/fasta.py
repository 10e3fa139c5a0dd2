"""FASTA readers (plain or gzipped): unaligned, aligned and A3M. Parsing by Biopython."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import IO

from Bio.SeqIO.FastaIO import SimpleFastaParser

from phyloclr.errors import InputError
from phyloclr.io.sequences import SeqRecord, check_unique_ids, clean_sequence

PathLikeStr = str | PathLike[str]


def open_text(path: PathLikeStr) -> IO[str]:
    """Open a text file, transparently gunzipping it (detected by magic bytes, not by name)."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            magic = fh.read(2)
    except OSError as exc:
        raise InputError(p, f"cannot open: {exc.strerror or exc}") from exc
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8", errors="replace")
    return open(p, encoding="utf-8", errors="replace")


def _first_content_line(handle: IO[str]) -> str | None:
    for line in handle:
        if line.strip():
            return line
    return None


def _check_start(path: PathLikeStr) -> None:
    """Empty file / not FASTA errors, read from the first non-blank line only."""
    try:
        with open_text(path) as fh:
            first = _first_content_line(fh)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(path, f"cannot read: {exc}") from exc
    if first is None:
        raise InputError(path, "empty file (no FASTA records)")
    if not first.startswith(">"):
        raise InputError(path, f"not FASTA: first line does not start with '>' ({first[:40]!r})")


def iter_fasta_raw(path: PathLikeStr) -> Iterator[tuple[int, str, str, str]]:
    """Stream ``(index, id, description, raw_sequence)``; an empty id is an error."""
    _check_start(path)
    n = 0
    try:
        with open_text(path) as fh:
            for n, (title, seq) in enumerate(SimpleFastaParser(fh), start=1):
                parts = title.strip().split(None, 1)
                if not parts:
                    raise InputError(path, "empty header line (no sequence id)", f"#{n}")
                yield n, parts[0], parts[1] if len(parts) > 1 else "", seq
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise InputError(path, f"cannot read: {exc}") from exc
    if n == 0:
        raise InputError(path, "no FASTA records found")


def iter_fasta(path: PathLikeStr) -> Iterator[SeqRecord]:
    """Stream validated, unaligned records (upper case, trailing '*' removed)."""
    for _, rid, desc, raw in iter_fasta_raw(path):
        seq, _ = clean_sequence(raw, path, rid)
        yield SeqRecord(rid, seq, desc)


def read_fasta(path: PathLikeStr, unique: bool = True) -> list[SeqRecord]:
    """All records of an unaligned FASTA file; duplicate ids are an error if ``unique``."""
    records = list(iter_fasta(path))
    if unique:
        check_unique_ids(records, path)
    return records


def _alignment(path: PathLikeStr, records: list[SeqRecord], what: str) -> list[SeqRecord]:
    """Check that every aligned row has the first row's width and that ids are unique."""
    width = len(records[0].aligned or "") if records else 0
    for rec in records:
        if len(rec.aligned or "") != width:
            raise InputError(
                path, f"{what} has {len(rec.aligned or '')} columns, the first row has {width}",
                rec.id,
            )  # fmt: skip
    check_unique_ids(records, path)
    return records


def read_aligned_fasta(path: PathLikeStr) -> list[SeqRecord]:
    """An aligned FASTA file: gaps '-' or '.', every row the same length."""
    records = []
    for _, rid, desc, raw in iter_fasta_raw(path):
        seq, row = clean_sequence(raw, path, rid, aligned=True)
        records.append(SeqRecord(rid, seq, desc, row))
    return _alignment(path, records, "aligned row")


def a3m_to_row(raw: str) -> str:
    """Drop A3M insertions (lower-case letters and '.') to leave the match-column row."""
    return "".join(ch for ch in raw if not (ch.islower() or ch == "."))


def read_a3m(path: PathLikeStr) -> list[SeqRecord]:
    """An A3M file (HHblits/ColabFold): upper case and '-' are match columns, lower case inserts.

    Rows hold the match columns only; ``seq`` keeps every residue, inserts included.
    """
    records = []
    for _, rid, desc, raw in iter_fasta_raw(path):
        compact = "".join(raw.split())
        # validating the residues validates the row too: it holds a subset of them, plus '-'
        seq, _ = clean_sequence(compact.replace("-", "").replace(".", ""), path, rid)
        records.append(SeqRecord(rid, seq, desc, a3m_to_row(compact).rstrip("*")))
    return _alignment(path, records, "A3M row (match columns)")


def looks_aligned(path: PathLikeStr, sample: int = 200) -> bool:
    """True when a FASTA file's first records contain gaps and share one length."""
    lengths = set()
    gapped = False
    for i, (_, _, _, raw) in enumerate(iter_fasta_raw(path)):
        compact = "".join(raw.split())
        lengths.add(len(compact))
        gapped = gapped or "-" in compact or "." in compact
        if i + 1 >= sample:
            break
    return gapped and len(lengths) == 1
