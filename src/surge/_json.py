"""JSON-ready values: one conversion for the CLI's ``--json`` output and the reports' ``analysis.json``."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """Convert dataclasses, NumPy values, paths and tuples to JSON types; NaN and +-inf become None.

    Recursive: a dataclass instance becomes a dict of its fields, a dict gets string keys, lists, tuples and
    NumPy arrays become lists; NumPy booleans and integers become ``bool`` / ``int``, a ``Path`` its string,
    a float (Python or NumPy) stays a float when finite and becomes None otherwise. Anything else (str, int,
    None, ...) is returned unchanged, so a type not listed here (a set, an arbitrary object) stays one that
    ``json.dumps`` rejects.

    Args:
        value: the value to convert (any type; nested containers are converted element by element).

    Returns:
        The value built from ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` and None (finite
        floats only), ready for ``json.dumps``.
    """
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
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return x if math.isfinite(x) else None
    return value
