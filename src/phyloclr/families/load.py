"""Turning input paths into families: alignments become families, corpora are split."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from phyloclr.errors import InputError
from phyloclr.io.fasta import open_text, read_a3m, read_aligned_fasta, read_fasta
from phyloclr.io.newick import TREE_SUFFIXES
from phyloclr.io.sequences import SeqRecord
from phyloclr.io.stockholm import read_stockholm

InputKind = Literal["stockholm", "a3m", "aligned_fasta", "fasta"]

SEQUENCE_SUFFIXES = (
    ".sto", ".sth", ".stk", ".stockholm", ".seed", ".ali",
    ".fa", ".fasta", ".fas", ".faa", ".fna", ".ffn", ".afa", ".afasta", ".aln", ".mfa",
    ".a3m", ".a2m",
)  # fmt: skip


@dataclass
class InputFile:
    """One sequence file to read, and whether it stands alone or sits in a directory."""

    path: Path
    in_directory: bool
    tree_path: Path | None = None


def _suffixes(path: Path) -> str:
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def family_id_from_path(path: Path) -> str:
    """File name without the sequence suffix (and .gz): ``fn3.sto`` → ``fn3``."""
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    for suffix in SEQUENCE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def sniff(path: Path) -> InputKind:
    """The format of a sequence file from its first non-blank line (and its name for A3M)."""
    with open_text(path) as fh:
        first = next((line for line in fh if line.strip()), None)
    if first is None:
        raise InputError(path, "empty file (no sequences)")
    if first.startswith("# STOCKHOLM"):
        return "stockholm"
    if not first.startswith(">"):
        raise InputError(
            path, "unrecognised format: expected FASTA ('>') or Stockholm ('# STOCKHOLM 1.0')"
        )
    if _suffixes(path).endswith((".a3m", ".a2m")):
        return "a3m"
    from phyloclr.io.fasta import looks_aligned

    return "aligned_fasta" if looks_aligned(path) else "fasta"


def expand_inputs(paths: list[Path], warnings: list[str]) -> list[InputFile]:
    """Files to read: files as given, directories expanded to their sequence files.

    In a directory, a tree file with the same stem as a sequence file is paired with it;
    files that are neither are reported in ``warnings`` by name.
    """
    out: list[InputFile] = []
    for path in paths:
        if not path.exists():
            raise InputError(path, "no such file or directory")
        if path.is_file():
            out.append(InputFile(path, in_directory=False))
            continue
        files = sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))
        seqs = [f for f in files if _suffixes(f).endswith(SEQUENCE_SUFFIXES)]
        trees = {f.stem: f for f in files if f.suffix.lower() in TREE_SUFFIXES}
        ignored = [f.name for f in files if f not in seqs and f.stem not in trees]
        ignored = [n for n in ignored if Path(n).suffix.lower() not in TREE_SUFFIXES]
        if not seqs:
            raise InputError(path, "directory holds no sequence or alignment files")
        paired: set[str] = set()
        for f in seqs:
            stem = family_id_from_path(f)
            tree = trees.get(stem)
            if tree is not None:
                paired.add(stem)
            out.append(InputFile(f, in_directory=True, tree_path=tree))
        unpaired = sorted(set(trees) - paired)
        if unpaired:
            warnings.append(
                f"{path}: tree file(s) with no sequence file of the same name: "
                + ", ".join(trees[s].name for s in unpaired)
            )
        if ignored:
            warnings.append(f"{path}: ignored files that are not sequences: {', '.join(ignored)}")
    return out


@dataclass
class LoadedAlignment:
    """An alignment or single family read from a file."""

    family_id: str
    records: list[SeqRecord]
    source: Path
    accession: str | None = None
    description: str | None = None


_SAFE = re.compile(r"\s+")


def read_alignments(item: InputFile, kind: InputKind) -> Iterator[LoadedAlignment]:
    """Families held by an aligned (or single-family FASTA) file."""
    path = item.path
    stem = family_id_from_path(path)
    if kind == "stockholm":
        alignments = read_stockholm(path)
        for aln in alignments:
            if aln.name:
                fam_id = _SAFE.sub("_", aln.name)
            elif len(alignments) == 1:
                fam_id = stem
            else:
                fam_id = f"{stem}#{aln.index + 1}"
            yield LoadedAlignment(fam_id, aln.records, path, aln.accession, aln.description)
    elif kind == "a3m":
        yield LoadedAlignment(stem, read_a3m(path), path)
    elif kind == "aligned_fasta":
        yield LoadedAlignment(stem, read_aligned_fasta(path), path)
    else:
        yield LoadedAlignment(stem, read_fasta(path), path)
