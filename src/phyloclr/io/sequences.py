"""Sequence records, the alphabets phyloclr accepts, and the checks every reader applies.

Rules (the same for every format):
- letters are upper-cased (soft-masked FASTA is common; A3M/Stockholm lower case marks inserts);
- one trailing ``*`` (a stop codon in translated proteomes) is removed; an internal ``*``
  is an error;
- any character outside the IUPAC protein/nucleotide codes (plus gaps in aligned input) is an error
  naming the record, the character and its 1-based position;
- an empty sequence is an error; there is no upper length limit (genomes of 100 kbp are fine);
- a file mixing nucleotide and protein records is an error naming the first record that disagrees.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from os import PathLike
from typing import Literal

from phyloclr.errors import InputError

Alphabet = Literal["protein", "dna"]

#: IUPAC amino-acid codes, with the extended ones (B, Z, J, X, U selenocysteine, O pyrrolysine).
PROTEIN_LETTERS = frozenset("ACDEFGHIKLMNPQRSTVWYBZJXUO")
#: IUPAC nucleotide codes (U for RNA, N and the two- and three-base ambiguity codes).
NUCLEOTIDE_LETTERS = frozenset("ACGTURYKMSWBDHVN")
_CORE_NUCLEOTIDES = frozenset("ACGTUN")
GAP_CHARS = frozenset("-.")
ALL_LETTERS = PROTEIN_LETTERS | NUCLEOTIDE_LETTERS


@dataclass(frozen=True)
class SeqRecord:
    """One sequence: its id (first header token, kept verbatim), description and residues.

    ``seq`` is upper case and ungapped; ``aligned`` is the aligned row (upper case, ``-`` gaps)
    when the record came from an alignment.
    """

    id: str
    seq: str
    description: str = ""
    aligned: str | None = None


def clean_sequence(
    raw: str, path: str | PathLike[str] | None, record: str, aligned: bool = False
) -> tuple[str, str | None]:
    """Validate and normalise one sequence.

    Returns ``(ungapped, aligned_row)``; ``aligned_row`` is None unless ``aligned``.
    Raises InputError naming the file, the record, the character and its position.
    """
    text = "".join(raw.split()).upper()
    if text.endswith("*"):
        text = text[:-1]
    allowed = ALL_LETTERS | GAP_CHARS if aligned else ALL_LETTERS
    bad = next((i for i, ch in enumerate(text) if ch not in allowed), None)
    if bad is not None:
        ch = text[bad]
        if ch == "*":
            raise InputError(path, f"internal stop codon '*' at position {bad + 1}", record)
        if ch in GAP_CHARS:
            raise InputError(
                path, f"gap character {ch!r} at position {bad + 1} in an unaligned sequence", record
            )
        raise InputError(
            path, f"invalid character {ch!r} at position {bad + 1} (not an IUPAC code)", record
        )
    if aligned:
        row = text.replace(".", "-")
        seq = row.replace("-", "")
    else:
        row = None
        seq = text
    if not seq:
        raise InputError(path, "empty sequence (length 0)", record)
    return seq, row


def record_alphabet(seq: str) -> Alphabet:
    """'dna' when every letter is a nucleotide code and ≥90% are A/C/G/T/U/N, else 'protein'."""
    if not seq:
        return "protein"
    if any(ch not in NUCLEOTIDE_LETTERS for ch in seq):
        return "protein"
    core = sum(ch in _CORE_NUCLEOTIDES for ch in seq)
    return "dna" if core >= 0.9 * len(seq) else "protein"


def ambiguous_alphabet(seq: str) -> bool:
    """True for a record that looks nucleotide but may as well be a protein: shorter than 20,
    or missing one of A, C, G and T/U (UniProt holds proteins such as P02732, 'AATAAT…', an
    Ala-Ala-Thr repeat; real DNA of 20 bases or more holds all four)."""
    if record_alphabet(seq) != "dna":
        return False
    return len(seq) < 20 or len(set(seq.upper().replace("U", "T")) & set("ACGT")) < 4


def fits_alphabet(seq: str, alphabet: str) -> bool:
    """Whether a record may belong to a file or model of ``alphabet`` (short records always
    may; an ambiguous one may be protein)."""
    if len(seq) < 20 or record_alphabet(seq) == alphabet:
        return True
    return alphabet == "protein" and ambiguous_alphabet(seq)


def detect_alphabet(records: Iterable[SeqRecord], path: str | PathLike[str] | None) -> Alphabet:
    """The alphabet of a set of records; an InputError naming the first record that disagrees.

    Records that look nucleotide but are ambiguous (:func:`ambiguous_alphabet`: shorter than
    20, or without all four bases) do not vote.
    """
    first: SeqRecord | None = None
    kind_first: Alphabet | None = None
    short_only: list[Alphabet] = []
    for rec in records:
        kind = record_alphabet(rec.seq)
        if kind == "dna" and ambiguous_alphabet(rec.seq):
            short_only.append(kind)
            continue
        if first is None:
            first, kind_first = rec, kind
        elif kind != kind_first:
            names = {"dna": "nucleotide", "protein": "protein"}
            raise InputError(
                path,
                f"mixed nucleotide and protein sequences: this record is {names[kind]}, "
                f"the first record {first.id!r} is {names[kind_first or 'protein']}",
                rec.id,
            )
    if kind_first is not None:
        return kind_first
    return "dna" if short_only else "protein"


def check_unique_ids(records: Iterable[SeqRecord], path: str | PathLike[str] | None) -> None:
    """An InputError naming the first duplicated id."""
    seen: set[str] = set()
    for rec in records:
        if rec.id in seen:
            raise InputError(path, "duplicate sequence id", rec.id)
        seen.add(rec.id)
