"""The k-mer prefilter of the de novo homology search (:mod:`phyloclr.families.homology`):
a positional index of every protein's k-mers in Murphy's 10-letter reduced alphabet (LVIM, C,
A, G, ST, P, FYW, EDNQ, KR, H; other letters break k-mers), leaving out k-mers occurring more
than ``max_kmer_ratio`` times as often as the average one and more than 100 times (low
complexity, repeats), and each query's candidates: proteins with two k-mer hits on one
diagonal, not overlapping and starting at most ``two_hit_window`` residues apart (BLAST's
two-hit rule), those with most such pairs first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from phyloclr.families.config import SearchSettings
from phyloclr.kmers import kmer_keys, letter_index

MURPHY10 = ("LVIM", "C", "A", "G", "ST", "P", "FYW", "EDNQ", "KR", "H")
_MIN_CAP = 100.0  # never drop a k-mer seen ≤ 100 times: a family's own conserved k-mers
_DIAG_OFFSET, _DIAG_SPAN = 1 << 20, 1 << 21  # diagonals of proteins up to 1M residues
_LUT = letter_index("".join(g[0] for g in MURPHY10), {ch: g[0] for g in MURPHY10 for ch in g[1:]})


@dataclass
class KmerIndex:
    """Every kept reduced-alphabet k-mer occurrence of the corpus, grouped by k-mer (CSR):
    the occurrences of k-mer ``c`` are ``seq[start[c]:start[c + 1]]`` (and ``pos``)."""

    start: np.ndarray  # (10**k + 1,) int64 offsets
    seq: np.ndarray  # (M,) int32, sequence of each occurrence
    pos: np.ndarray  # (M,) int32, its start in that sequence
    k: int

    def query(self, s: str) -> tuple[np.ndarray, np.ndarray]:
        """The query's k-mer codes and their positions (ambiguous windows left out)."""
        return _kmers(s, self.k)


def _kmers(s: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    return kmer_keys(s, k, _LUT, len(MURPHY10))


def kmer_index(seqs: Sequence[str], k: int, max_kmer_ratio: float) -> KmerIndex:
    """Positional index of the corpus; k-mers occurring more than ``max_kmer_ratio`` times
    as often as the average k-mer (low complexity, repeats, TM-helix runs) are left out,
    but never one seen at most 100 times (in a small corpus that is a family's own k-mer).
    Memory: 8 bytes per kept occurrence, plus 8 per occurrence while it is built."""
    size = len(MURPHY10) ** k
    keys, starts = [], []
    for s in seqs:
        kk, pp = _kmers(s, k)
        keys.append(kk.astype(np.int32))
        starts.append(pp.astype(np.int32))
    lengths = np.array([len(x) for x in keys], dtype=np.int64)
    flat = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int32)
    del keys
    counts = np.bincount(flat, minlength=size)
    cap = max(_MIN_CAP, max_kmer_ratio * len(flat) / size)
    kept = counts <= cap
    start = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(np.where(kept, counts, 0), out=start[1:])
    seq = np.empty(int(start[-1]), dtype=np.int32)
    pos = np.empty(int(start[-1]), dtype=np.int32)
    fill = start[:-1].copy()  # next free slot of each k-mer
    offset = 0
    for i, n in enumerate(lengths.tolist()):  # sequences in order: each k-mer's list is sorted
        key = flat[offset : offset + n]
        offset += n
        keep = np.flatnonzero(kept[key])
        kk = key[keep]
        # a k-mer repeated within one sequence needs consecutive slots
        order = np.argsort(kk, kind="stable")
        kk, keep = kk[order], keep[order]
        first = np.searchsorted(kk, kk, "left")
        slot = fill[kk] + (np.arange(len(kk)) - first)
        seq[slot] = i
        pos[slot] = starts[i][keep]
        starts[i] = None  # type: ignore[call-overload]
        np.add.at(fill, kk, 1)
    return KmerIndex(start, seq, pos, k)


#: hits handled at once for one query (bounds a long query's transient memory)
_MAX_HITS = 1 << 21


def candidates(index: KmerIndex, rows: np.ndarray, seqs: Sequence[str],
               settings: SearchSettings) -> list[np.ndarray]:  # fmt: skip
    """For each query row, the other sequences with two k-mer hits on one diagonal that do
    not overlap and start at most ``two_hit_window`` residues apart (BLAST's two-hit rule:
    random matches rarely line up), those with most such pairs first (at most
    ``max_candidates``). A long query is handled in pieces of about ``_MAX_HITS`` hits that
    overlap by the window, so no pair is lost (a pair in an overlap counts twice)."""
    out = []
    window = settings.two_hit_window
    for q in rows.tolist():
        qk, qp = index.query(seqs[q])
        lo, hi = index.start[qk], index.start[qk + 1]
        n = hi - lo
        ends = np.cumsum(n)
        targets, counts = [], []
        a = 0
        while a < len(qk):
            base = ends[a - 1] if a else 0
            # a piece spans more than the window, so the next one (restarting ``window``
            # back from where this one ends) begins later and every pair lies in some piece
            b = max(int(np.searchsorted(ends, base + _MAX_HITS, "right")),
                    int(np.searchsorted(qp, qp[a] + window, "right")))  # fmt: skip
            t, c = _pairs(index, lo[a:b], n[a:b], qp[a:b], window, q)
            targets.append(t)
            counts.append(c)
            if b >= len(qk):
                break
            a = int(np.searchsorted(qp, qp[b] - window, "left"))
        target = np.concatenate(targets) if targets else np.zeros(0, dtype=np.int64)
        if len(target) == 0:
            out.append(np.zeros(0, dtype=np.int64))
            continue
        uniq, inverse = np.unique(target, return_inverse=True)
        count = np.bincount(inverse, weights=np.concatenate(counts))
        out.append(uniq[np.argsort(-count, kind="stable")][: settings.max_candidates])
    return out


def _pairs(index: KmerIndex, lo: np.ndarray, n: np.ndarray, qp: np.ndarray, window: int,
           q: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Targets with two-hit pairs among these query k-mers, and their pair counts."""
    total = int(n.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    offsets = np.repeat(lo - np.concatenate(([0], np.cumsum(n)[:-1])), n)
    hit = np.arange(total) + offsets
    qpos = np.repeat(qp, n).astype(np.int64)
    diag = index.pos[hit].astype(np.int64) - qpos + _DIAG_OFFSET
    key = index.seq[hit].astype(np.int64) * _DIAG_SPAN + diag
    del hit, diag
    qbits = max(1, int(qpos[-1]).bit_length())  # query positions ascend: the last is largest
    if int(key.max()) < (1 << (63 - qbits)):
        # one packed key (target, diagonal, query position): a plain sort, no argsort
        packed = np.sort((key << qbits) | qpos)
        key, qpos = packed >> qbits, packed & ((1 << qbits) - 1)
        del packed
    else:
        order = np.lexsort((qpos, key))
        key, qpos = key[order], qpos[order]
    gap = qpos[1:] - qpos[:-1]
    pair = (key[1:] == key[:-1]) & (gap >= index.k) & (gap <= window)
    target = key[1:][pair] // _DIAG_SPAN
    target = target[target != q]
    return np.unique(target, return_counts=True)
