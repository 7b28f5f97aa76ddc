"""Shared output helpers for the CLI: one JSON object on stdout, Rich tables, numbers formatted for people."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from surge._format import fmt, fmt_ci  # noqa: F401  (re-exported for the commands)
from surge._json import to_jsonable  # noqa: F401  (re-exported for the commands)

console = Console()  # stdout, for tables and text meant for people
err_console = Console(stderr=True)


def emit_json(obj: dict[str, Any]) -> None:
    """Print exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(obj)) + "\n")
    sys.stdout.flush()


class LineProgress:
    """Progress as plain lines on stderr, for --json mode and for a stderr that is not a terminal (a log
    file, CI): one line at each tenth of the work and at most every ``every`` seconds in between."""

    def __init__(self, label: str, total: float, every: float = 30.0):
        import time

        self._time = time.monotonic
        self.label, self.total, self.every = label, float(total), float(every)
        self.start = self._time()
        self.last_time = self.start
        self.last_tenth = -1

    def update(self, done: float, note: str = "") -> None:
        now = self._time()
        frac = done / self.total if self.total > 0 else 1.0
        tenth = int(frac * 10 + 1e-9)
        if tenth > self.last_tenth or now - self.last_time >= self.every:
            self.last_tenth, self.last_time = max(tenth, self.last_tenth), now
            extra = f"; {note}" if note else ""
            sys.stderr.write(
                f"{self.label}: {done:.0f}/{self.total:.0f} ({frac:.0%}), {now - self.start:.0f} s elapsed{extra}\n"
            )
            sys.stderr.flush()
