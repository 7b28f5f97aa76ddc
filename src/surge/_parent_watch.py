"""Worker processes die with their parent.

A worker of ``surge sweep run --workers N`` (or of the engine's pool) must not outlive the process that
started it: if that process is killed (SIGKILL, out of memory), idle workers would otherwise hold
their memory and the caller's pipes open for as long as the machine runs. Two mechanisms, both set up in
the worker's initializer: on Linux the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``),
and everywhere a daemon thread checks once a second that the parent is still the one it started with.
"""

from __future__ import annotations

import os
import sys
import threading

_PR_SET_PDEATHSIG = 1
POLL_SECONDS = 1.0


def die_with_parent() -> None:
    """Make this (worker) process exit when its parent process dies. Call it once, in the worker."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no libc / prctl: the thread below still works
            pass
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    def watch() -> None:
        event = threading.Event()
        while not event.wait(POLL_SECONDS):
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="surge-parent-watch", daemon=True).start()
