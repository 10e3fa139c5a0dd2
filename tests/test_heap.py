"""Memory handed back between long stages (:mod:`phyloclr.heap`)."""

from __future__ import annotations

import gc
import platform
import sys
import weakref

from phyloclr.heap import release_free_memory


def test_releasing_memory_frees_cycles() -> None:
    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    gc.disable()
    try:
        del a, b
        assert gone() is not None  # a cycle: only a collection frees it
        trimmed = release_free_memory()
        assert gone() is None
    finally:
        gc.enable()
    assert trimmed == (sys.platform == "linux" and platform.libc_ver()[0] == "glibc")
