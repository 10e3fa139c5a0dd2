"""Duplicate-id detection for streams of any length (8 bytes per id)."""

from __future__ import annotations

import hashlib

import numpy as np


def digest64(text: str) -> int:
    """An 8-byte BLAKE2b content digest of ``text`` as an int (ids, sequences)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class SeenIds:
    """Duplicate-id detector holding 8 bytes per id: a sorted numpy array plus a small set."""

    def __init__(self, flush_at: int = 100_000):
        self.old = np.zeros(0, dtype=np.uint64)
        self.recent: set[int] = set()
        self.flush_at = flush_at

    def add(self, text: str) -> bool:
        """Record ``text``; True if it was seen before."""
        h = digest64(text)
        if h in self.recent:
            return True
        pos = np.searchsorted(self.old, np.uint64(h))
        if pos < len(self.old) and self.old[pos] == np.uint64(h):
            return True
        self.recent.add(h)
        if len(self.recent) >= self.flush_at:
            self.old = np.union1d(self.old, np.fromiter(self.recent, dtype=np.uint64))
            self.recent.clear()
        return False
