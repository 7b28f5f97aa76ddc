"""glibc allocator settings for training on the CPU.

With glibc's default malloc, large-batch steps are page-fault bound: every step frees and re-maps its
activation buffers (most time in the kernel, 2-3x slower, erratic). The fix, measured on this machine,
is the equivalent of ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=1073741824``:
no mmap'd chunks, never trim, grow the heap 1 GiB at a time. The environment variables only act at
process start, so the engine makes the same ``mallopt`` calls at run time, once per process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4

_done = False


def configure_allocator() -> bool:
    """Apply the settings once per process; False where there is no glibc ``mallopt`` (macOS, musl...).

    Sets ``M_MMAP_MAX`` to 0, ``M_TRIM_THRESHOLD`` to 2**31 - 1 bytes (the largest ``int``: never trim, in
    practice) and ``M_TOP_PAD`` to 1 GiB. A later call returns True at once after a successful one; after
    a failed one it tries again.

    Returns:
        A bool, True when every ``mallopt`` call succeeded (now or in an earlier call); False off Linux,
        where libc or ``mallopt`` cannot be loaded, or when a ``mallopt`` call failed.
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(M_MMAP_MAX, 0))
    ok &= bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))  # int argument: 2 GiB is the largest, "never" in practice
    ok &= bool(mallopt(M_TOP_PAD, 1 << 30))
    _done = ok
    return ok
