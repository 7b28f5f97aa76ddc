"""Shared output helpers for the CLI: one JSON object on stdout, Rich tables, numbers formatted for people."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from typing import Any

import numpy as np
from rich.console import Console

console = Console()  # stdout, for tables and text meant for people
err_console = Console(stderr=True)


def to_jsonable(value: Any) -> Any:
    """Convert dataclasses, NumPy values and tuples to JSON types; NaN and +-inf become null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return x if math.isfinite(x) else None
    return value


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
