"""Input checks shared by the whole package.

Every check names the argument, shows the bad value and says what is allowed, in the manner of
scikit-learn's ``check_scalar``. Library code raises ``ValueError`` / ``TypeError``; the CLI turns them
into one line on stderr.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np


def _show(value: object, limit: int = 6) -> str:
    """A short text for a bad value: scalars as they are, arrays by their first elements."""
    if isinstance(value, np.ndarray) and value.size > limit:
        head = ", ".join(repr(v) for v in value.ravel()[:limit].tolist())
        return f"array([{head}, ...]) of shape {value.shape}"
    if isinstance(value, np.ndarray):
        return repr(value.tolist())
    return repr(value)


def check_scalar(
    value: object,
    name: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    finite: bool = True,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as a float after checking it is a real number with the given sign.

    ``finite`` rejects NaN and, unless ``allow_inf``, +-inf.
    """
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {_show(value)} of type {type(value).__name__}")
    x = float(value)
    if math.isnan(x):
        raise ValueError(f"{name} must be a number, got nan")
    if finite and math.isinf(x) and not allow_inf:
        raise ValueError(f"{name} must be finite, got {x}")
    if positive and not x > 0:
        raise ValueError(f"{name} must be > 0, got {x}")
    if nonnegative and not x >= 0:
        raise ValueError(f"{name} must be >= 0, got {x}")
    return x


def check_array(
    value: object,
    name: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    ndim: int | None = None,
    min_size: int = 1,
) -> np.ndarray:
    """Return ``value`` as a float64 array after checking shape, finiteness and sign."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of real numbers, got {_show(value)}") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if arr.size < min_size:
        raise ValueError(f"{name} must have at least {min_size} element(s), got {arr.size}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"{name} must be finite; element {i} is {arr.ravel()[i]}")
    if positive and (arr <= 0).any():
        i = int(np.flatnonzero((arr <= 0).ravel())[0])
        raise ValueError(f"{name} must be > 0; element {i} is {arr.ravel()[i]}")
    if nonnegative and (arr < 0).any():
        i = int(np.flatnonzero((arr < 0).ravel())[0])
        raise ValueError(f"{name} must be >= 0; element {i} is {arr.ravel()[i]}")
    return arr


def check_choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
    return str(value)


def check_same_length(**arrays: np.ndarray) -> int:
    """Check 1-D arrays have equal lengths; return that length."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise ValueError(f"{' and '.join(lengths)} must have the same length; {shown}")
    return next(iter(lengths.values()))
