"""Aligning a family's members: pyfamsa for unaligned sets, pyhmmer hmmalign against an HMM."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pyfamsa
import pyhmmer.easel as easel
import pyhmmer.hmmer as hmmer
import pyhmmer.plan7 as plan7

from phyloclr.io.sequences import SeqRecord


def available_threads(requested: int = 0) -> int:
    """Threads to use: ``requested`` if > 0, else the cores this process may run on."""
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def align_famsa(
    records: Sequence[SeqRecord], threads: int = 0, refine: bool = True
) -> list[SeqRecord]:
    """Align unaligned records with FAMSA; returns the records with ``aligned`` rows set.
    ``refine``: FAMSA's iterative refinement (its default: on up to 1,000 sequences); off
    aligns families of 10–1,000 members two to three times faster."""
    if len(records) == 1:
        return [SeqRecord(records[0].id, records[0].seq, records[0].description, records[0].seq)]
    aligner = pyfamsa.Aligner(threads=available_threads(threads), guide_tree="upgma",
                              refine=None if refine else False)  # fmt: skip
    keys = [str(i).encode() for i in range(len(records))]  # ids may hold any character
    msa = aligner.align(
        pyfamsa.Sequence(k, r.seq.upper().translate(_FAMSA_SAFE).encode())
        for k, r in zip(keys, records, strict=True)
    )
    rows = {s.id: s.sequence.decode() for s in msa}
    return [
        SeqRecord(r.id, r.seq, r.description, _restore(rows[k].upper(), r.seq.upper()))
        for k, r in zip(keys, records, strict=True)
    ]


#: letters FAMSA rejects (selenocysteine U, pyrrolysine O, J) are aligned as X, then restored
_FAMSA_SAFE = str.maketrans("UOJ", "XXX")


def _restore(row: str, seq: str) -> str:
    """The aligned row with the sequence's own letters put back where X stood in for them."""
    if row.replace("-", "") == seq:
        return row
    letters = iter(seq)
    return "".join(ch if ch == "-" else next(letters) for ch in row)


def align_hmm(hmm: plan7.HMM, records: Sequence[SeqRecord]) -> list[SeqRecord]:
    """Align records to a profile HMM; rows keep the HMM's match columns only."""
    abc = hmm.alphabet
    keys = [str(i).encode() for i in range(len(records))]
    seqs = [
        easel.TextSequence(name=k, sequence=r.seq).digitize(abc)
        for k, r in zip(keys, records, strict=True)
    ]
    msa = hmmer.hmmalign(hmm, seqs, trim=True, all_consensus_cols=True)
    assert isinstance(msa, easel.TextMSA)
    rows = {}
    for name, text in zip(msa.names, msa.alignment, strict=True):
        key = name if isinstance(name, bytes) else str(name).encode()
        rows[key] = "".join(ch for ch in text if ch == "-" or ch.isupper())
    return [
        SeqRecord(r.id, r.seq, r.description, rows[k]) for k, r in zip(keys, records, strict=True)
    ]
