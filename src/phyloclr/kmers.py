"""k-mer counting shared by composition vectors and chaos-game images."""

from __future__ import annotations

import numpy as np


def letter_index(alphabet: str, aliases: dict[str, str] | None = None) -> np.ndarray:
    """(256,) code of every byte: the letter's position in ``alphabet`` (either case), else -1."""
    index = np.full(256, -1, dtype=np.int64)
    for i, ch in enumerate(alphabet):
        index[ord(ch.upper())] = index[ord(ch.lower())] = i
    for src, dst in (aliases or {}).items():
        index[ord(src.upper())] = index[ord(src.lower())] = alphabet.index(dst)
    return index


def kmer_keys(seq: str, k: int, index: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys (base ``size``, first letter most significant) and start positions of the k-mers
    of ``seq``; windows holding a letter outside the alphabet (code < 0) are skipped."""
    codes = index[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)]
    if len(codes) < k:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(codes, k)
    pos = np.flatnonzero((windows >= 0).all(1))
    return (windows[pos] * (size ** np.arange(k - 1, -1, -1))).sum(1), pos


def kmer_counts(seq: str, k: int, index: np.ndarray, size: int) -> np.ndarray:
    """(size**k,) counts of the k-mers of ``seq`` (see :func:`kmer_keys`)."""
    return np.bincount(kmer_keys(seq, k, index, size)[0], minlength=size**k)
