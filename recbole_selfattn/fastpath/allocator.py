"""Keep freed memory in the process instead of handing it back to the OS (glibc, Linux).

glibc's ``malloc`` serves every block above its mmap threshold (at most
32 MiB) with a fresh ``mmap`` and unmaps it when it is freed. A training step
allocates and frees tensors of tens of MiB many times (``[B, T, d]``
activations and their gradients: 52 MiB for ml-1m's ``4096 x 50 x 64``), so
every one of them is paged in anew: the kernel zeroes each page at its first
touch. On the 2-core CPU that made a fresh product of two such tensors ~6x
slower than the same product into an existing buffer, and it cost SASRec and
MTAW about half of their ml-1m training step (``results/speed-cpu/``).

:func:`retain_freed_memory` turns glibc's ``mmap`` off for ``malloc`` and its
heap trimming: freed blocks stay in the heap and are reused, already paged
in. The process's resident memory then stays at its high-water mark instead
of shrinking after a peak. Off again (``enabled=False``), ``malloc`` gets the
settings its adaptive threshold reaches after large frees (mmap above 32
MiB, trimming above 64 MiB). Elsewhere (macOS, musl, Windows) nothing
changes.
"""

import ctypes
import functools
import platform
import sys

# mallopt parameters, <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_TRIM_NEVER = 2**31 - 1  # 2 GiB free at the heap top before any goes back (mallopt takes an int)
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's cap on the adaptive threshold, 64-bit
_MMAP_MAX_DEFAULT = 65536


@functools.lru_cache(maxsize=None)
def _mallopt():
    """glibc's ``mallopt``, or ``None`` where the C library is not glibc."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    function = getattr(ctypes.CDLL(None), "mallopt", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_int]
        function.restype = ctypes.c_int
    return function


_state = {"retained": None}


def retain_freed_memory(enabled):
    """Keep freed blocks in the heap (``enabled``) or let glibc unmap the large ones
    again; returns whether the setting applies here (glibc). Repeated calls with the
    same value cost nothing."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    if _state["retained"] is not enabled:
        if enabled:
            mallopt(_M_MMAP_MAX, 0)
            mallopt(_M_TRIM_THRESHOLD, _TRIM_NEVER)
        else:
            mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
            mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX)
            mallopt(_M_MMAP_MAX, _MMAP_MAX_DEFAULT)
        _state["retained"] = enabled
    return True
