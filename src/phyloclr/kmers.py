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


def kmer_counts(seq: str, k: int, index: np.ndarray, size: int) -> np.ndarray:
    """(size**k,) counts of the k-mers of ``seq`` (base ``size``, first letter most
    significant); windows holding a letter outside the alphabet are skipped."""
    codes = index[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)]
    if len(codes) < k:
        return np.zeros(size**k, dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(codes, k)
    ok = (windows >= 0).all(1)
    keys = (windows[ok] * (size ** np.arange(k - 1, -1, -1))).sum(1)
    return np.bincount(keys, minlength=size**k)
