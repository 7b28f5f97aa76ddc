"""Shared output helpers for the CLI: one JSON object on stdout, Rich tables, numbers formatted for people."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from rich.console import Console

from surge._json import to_jsonable  # noqa: F401  (re-exported for the commands)

console = Console()  # stdout, for tables and text meant for people
err_console = Console(stderr=True)


def emit_json(obj: dict[str, Any]) -> None:
    """Print exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(obj)) + "\n")
    sys.stdout.flush()


def fmt(x: float | None, digits: int = 4) -> str:
    """A number for a table: significant digits, 'inf' / 'nan' spelled out, '-' for None."""
    if x is None:
        return "-"
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def fmt_ci(ci: tuple[float, float] | None, digits: int = 4) -> str:
    if ci is None:
        return "-"
    return f"[{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]"
