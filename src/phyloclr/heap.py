"""Handing memory back between long stages: reference cycles collected, the C heap trimmed.

pyhmmer's search pipelines (:mod:`phyloclr.models.profiles`), whose dynamic-programming
matrices grow to about 1 GB each with the longest hits they meet, and its HMM builders sit in
reference cycles: dropping them frees nothing until a full garbage collection, which a process
holding millions of objects (a corpus's families) runs rarely. So a pretraining run kept the
profile round's pipelines while it embedded its memory, and grew by gigabytes
(benchmarks/RESULTS.md, "Where pretraining a million peaked"). After the collection, glibc's
``malloc_trim`` returns the free pages its arenas (one per worker thread) keep.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache
from typing import Any


@cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def release_free_memory() -> bool:
    """Free Python's unreachable reference cycles (a full collection), then return the C
    heap's free pages, in every arena, to the operating system (glibc's ``malloc_trim(0)``)
    → whether the trim ran (elsewhere, macOS or musl, only the collection runs)."""
    gc.collect()
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True
