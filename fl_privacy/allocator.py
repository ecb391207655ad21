"""Keep freed memory in the process instead of handing it back to the OS after every step.

glibc's malloc returns large blocks (per-sample gradients of a DP-SGD step are tens of MB) to the OS
on free and page-faults them in again at the next step; measured here that doubled the cost of an
Opacus step (benchmarks/dp_step.py). Raising the mmap and trim thresholds with `mallopt` keeps them.
A no-op where glibc is not the allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


@functools.cache
def keep_freed_memory() -> bool:
    """Tune glibc malloc once per process; True when it was applied."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20) and mallopt(M_TRIM_THRESHOLD, 1 << 30)
                and mallopt(M_TOP_PAD, 256 << 20))
