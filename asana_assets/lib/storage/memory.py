"""Memory a step freed, given back to the system.

Arrow's allocator (mimalloc) and the C library's malloc each keep what a large table freed, for
their own later use only: after the crawl of a 300,000-task organisation its process held
1.4 GB, about 1 GB of it freed memory, and the derived steps that run after it in the same process
(the in-process executor of ``asana-connections sync``) stacked their own tables on top of that.
Giving it back between the large stages takes the run's peak down by what they kept.
"""

from __future__ import annotations

import ctypes
import functools

import pyarrow as pa


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None


def release_freed_memory() -> None:
    """Hand back to the system what Arrow's memory pool and malloc hold freed (live data stays)."""
    pa.default_memory_pool().release_unused()
    if (trim := _malloc_trim()) is not None:
        trim(0)
