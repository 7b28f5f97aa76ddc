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
