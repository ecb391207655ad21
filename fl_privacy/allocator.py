"""Keep freed memory in the process instead of handing it back to the OS after every step.

glibc's malloc returns large blocks (per-sample gradients of a DP-SGD step are tens of MB) to the OS
on free and page-faults them in again at the next step; measured here that made an Opacus step
about 1.5x slower (benchmarks/dp_step.py --untuned). With `mallopt` large blocks come from the heap
and freed heap memory (up to 1 GiB) is kept for reuse.
A no-op where glibc is not the allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -2, -3, -4


@functools.cache
def keep_freed_memory() -> bool:
    """Tune glibc malloc once per process; True when it was applied."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    # no mmap'ed blocks (they are unmapped on free), and keep up to 1 GiB of freed heap for reuse
    return bool(mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, 1 << 30)
                and mallopt(M_TOP_PAD, 64 << 20))
