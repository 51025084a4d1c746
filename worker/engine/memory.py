"""Host-memory reuse for evaluations on the CPU.

By default glibc returns every block larger than a few megabytes (one activation map of a
batch) to the kernel when a tensor is freed, and the next batch faults the same pages in
again, zero-filled: on two CPU cores a third of an evaluation's time was spent in the
kernel doing exactly that. Keeping freed memory in the process removes it. The setting is
process-wide and changes nothing but where freed memory goes; the numbers are unaffected.
"""

from __future__ import annotations

import ctypes
import sys
from functools import cache

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP_BYTES = 1 << 30


@cache
def retain_freed_memory() -> bool:
    """Serve tensors from the heap and keep up to 1 GiB of freed memory (glibc only).

    Returns whether the allocator accepted the setting; elsewhere (musl, macOS, Windows)
    it does nothing and returns False. Safe to call more than once.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
