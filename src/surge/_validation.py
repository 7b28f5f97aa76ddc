"""Input checks shared by the whole package.

Every check names the argument, shows the bad value and says what is allowed, in the manner of
scikit-learn's ``check_scalar``. They raise :class:`surge.errors.SurgeError` (a ``ValueError``) or
:class:`surge.errors.SurgeTypeError` (also a ``TypeError``); the CLI turns them into one line on stderr.
This is the one place where integers, numbers, ranges and choices are checked.
"""

from __future__ import annotations

import math
import os
import warnings
from numbers import Real
from pathlib import Path

import numpy as np

from surge.errors import SurgeError, SurgeTypeError


def _show(value: object, limit: int = 6) -> str:
    """A short text for a bad value: scalars as they are, arrays by their first elements."""
    if isinstance(value, np.ndarray) and value.size > limit:
        head = ", ".join(repr(v) for v in value.ravel()[:limit].tolist())
        return f"array([{head}, ...]) of shape {value.shape}"
    if isinstance(value, np.ndarray):
        return repr(value.tolist())
    return repr(value)


def type_name(value: object) -> str:
    """The name of a value's type as a user writes it (TOML / JSON words for the common ones).

    Args:
        value: any object.

    Returns:
        A string: ``"boolean"``, ``"integer"``, ``"float"``, ``"string"``, ``"array"`` (list or tuple) or
        ``"table"`` (dict) for those exact types; the class name (``type(value).__name__``) otherwise.
    """
    return {
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "string",
        list: "array",
        tuple: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)


def check_int(value: object, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` if it is an integer (not a bool, not a float) within ``[minimum, maximum]``.

    Args:
        value: the value to check: a Python ``int`` or a NumPy integer.
        name: the argument's name, shown in the error message.
        minimum: the smallest allowed value (inclusive); None: no lower bound.
        maximum: the largest allowed value (inclusive); None: no upper bound.

    Returns:
        ``value`` as a Python int.

    Raises:
        SurgeTypeError: not an integer (a float with an integer value is named, with the fix).
        SurgeError: outside the range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            raise SurgeTypeError(f"{name} must be an integer, got {value!r} (a float); write {int(value)}")
        raise SurgeTypeError(f"{name} must be an integer, got {value!r} ({type_name(value)})")
    value = int(value)
    if minimum is not None and value < minimum:
        what = "positive" if minimum == 1 else f">= {minimum}"
        raise SurgeError(f"{name} must be {what}, got {value}")
    if maximum is not None and value > maximum:
        raise SurgeError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_scalar(
    value: object,
    name: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    finite: bool = True,
    allow_inf: bool = False,
    below: float | None = None,
) -> float:
    """Return ``value`` as a float after checking it is a real number with the given sign and range.

    NaN is always rejected.

    Args:
        value: the value to check: a real number (``int``, ``float``, NumPy scalar), not a bool.
        name: the argument's name, shown in the error message.
        positive: require ``value > 0``.
        nonnegative: require ``value >= 0``.
        finite: reject +-inf (unless ``allow_inf``); False lets +-inf through.
        allow_inf: let +-inf through even when ``finite`` is True.
        below: an exclusive upper bound (``value < below``); None: no bound.

    Returns:
        ``value`` as a Python float.

    Raises:
        SurgeTypeError: not a real number.
        SurgeError: NaN, infinite, or outside the range.
    """
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise SurgeTypeError(f"{name} must be a real number, got {_show(value)} of type {type(value).__name__}")
    x = float(value)
    if math.isnan(x):
        raise SurgeError(f"{name} must be a number, got nan")
    if finite and math.isinf(x) and not allow_inf:
        raise SurgeError(f"{name} must be finite, got {x}")
    if positive and not x > 0:
        raise SurgeError(f"{name} must be > 0, got {x}")
    if nonnegative and not x >= 0:
        raise SurgeError(f"{name} must be >= 0, got {x}")
    if below is not None and not x < below:
        raise SurgeError(f"{name} must be < {below:g}, got {x:g}")
    return x


def as_real_array(value: object) -> np.ndarray | None:
    """``value`` as a float64 array, or None when it is not an array of real numbers.

    Booleans, complex numbers and text are not read as real numbers (NumPy would turn True into 1.0, drop
    an imaginary part with a warning, and parse "2"); ragged nesting and other objects are not arrays.

    Args:
        value: array-like, any shape.

    Returns:
        A float64 np.ndarray of ``value``'s shape, or None.
    """
    try:
        if np.asarray(value).dtype.kind in "bcSUV":
            return None
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def check_array(
    value: object,
    name: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    ndim: int | None = None,
    min_size: int = 1,
    increasing: bool = False,
) -> np.ndarray:
    """Return ``value`` as a float64 array after checking shape, finiteness, sign and order.

    Every element must be finite (no NaN, no +-inf).

    Args:
        value: array-like of real numbers, any shape.
        name: the argument's name, shown in the error message.
        positive: require every element > 0.
        nonnegative: require every element >= 0.
        ndim: the required number of dimensions; None: any.
        min_size: the least number of elements (default 1: not empty).
        increasing: require the elements, in flat order, to be strictly increasing.

    Returns:
        A float64 np.ndarray of ``value``'s shape (``value`` itself when it already is one).

    Raises:
        SurgeTypeError: ``value`` cannot be converted to an array of real numbers.
        SurgeError: wrong number of dimensions, fewer than ``min_size`` elements, a non-finite element,
            an element of the wrong sign (the message gives the first bad element's flat index), or, with
            ``increasing``, elements not strictly increasing.
    """
    arr = as_real_array(value)
    if arr is None:
        raise SurgeTypeError(f"{name} must be an array of real numbers, got {_show(value)}") from None
    if ndim is not None and arr.ndim != ndim:
        raise SurgeError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if arr.size < min_size:
        raise SurgeError(f"{name} must have at least {min_size} element(s), got {arr.size}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise SurgeError(f"{name} must be finite; element {i} is {arr.ravel()[i]}")
    if positive and (arr <= 0).any():
        i = int(np.flatnonzero((arr <= 0).ravel())[0])
        raise SurgeError(f"{name} must be > 0; element {i} is {arr.ravel()[i]}")
    if nonnegative and (arr < 0).any():
        i = int(np.flatnonzero((arr < 0).ravel())[0])
        raise SurgeError(f"{name} must be >= 0; element {i} is {arr.ravel()[i]}")
    if increasing and (np.diff(arr.ravel()) <= 0).any():
        raise SurgeError(f"{name} must be strictly increasing, got {arr.ravel().tolist()}")
    return arr


def check_confidence(value: object, name: str = "confidence") -> float:
    """Return ``value`` as a float if it is a confidence level, a number in (0, 1).

    Args:
        value: the nominal coverage of an interval, e.g. 0.95.
        name: the argument's name, shown in the error message.

    Returns:
        ``value`` as a Python float.

    Raises:
        SurgeTypeError: not a real number.
        SurgeError: NaN, or not in (0, 1).
    """
    c = check_scalar(value, name, finite=False)
    if not 0 < c < 1:
        raise SurgeError(f"{name} must be in (0, 1), got {c}")
    return c


def check_choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``.

    Args:
        value: the value to check, a string.
        name: the argument's name, shown in the error message.
        allowed: the allowed strings.

    Returns:
        ``value``, a string.

    Raises:
        SurgeTypeError: ``value`` is not a string.
        SurgeError: ``value`` is not one of ``allowed``.
    """
    if not isinstance(value, str):
        raise SurgeTypeError(
            f"{name} must be a string, one of {', '.join(repr(a) for a in allowed)}; got {value!r} ({type_name(value)})"
        )
    if value not in allowed:
        raise SurgeError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
    return str(value)


def check_same_length(**arrays: np.ndarray) -> int:
    """Check 1-D arrays have equal lengths; return that length.

    Args:
        **arrays: the sequences to compare, by the names the error message shows (at least one).

    Returns:
        The common length, an int.

    Raises:
        SurgeError: the lengths differ (the message lists each name with its length).
    """
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise SurgeError(f"{' and '.join(lengths)} must have the same length; {shown}")
    return next(iter(lengths.values()))


def renamed(new_value, old_value, new: str, old: str, default):
    """A keyword renamed to the paper's name: the old one is accepted for one release, with a
    DeprecationWarning; giving both is an error.

    Args:
        new_value: the value given under the new name, or None when not given.
        old_value: the value given under the old name, or None when not given.
        new: the new keyword's name (for the messages).
        old: the old keyword's name (for the messages).
        default: the value when neither is given.

    Returns:
        ``old_value`` when only it is given (with a ``DeprecationWarning``), else ``new_value``, or
        ``default`` when both are None.

    Raises:
        SurgeError: both ``new_value`` and ``old_value`` are given.
    """
    if old_value is None:
        return default if new_value is None else new_value
    if new_value is not None:
        raise SurgeError(f"give {new} or its old name {old}, not both")
    warnings.warn(f"{old} is renamed {new}; the old name goes in the next release", DeprecationWarning, stacklevel=3)
    return old_value


def _writable_dir(path: Path, name: str, what: str, shown: Path | None = None) -> None:
    """Create ``path`` as a folder if needed and prove it takes a file (written and removed); errors show
    ``shown`` (the path the user gave) when it differs from ``path``."""
    from surge.errors import OutputError

    shown = path if shown is None else shown
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                where = "is a file" if parent == shown else f"lies under {str(parent)!r}, which is a file"
                raise OutputError(f"{name} {str(shown)!r} {where}; {what}")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".surge-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(
            f"{name} {str(shown)!r} cannot be written ({exc.strerror or type(exc).__name__}); {what}"
        ) from None


def check_output_dir(path, name: str = "--out") -> Path:
    """Check, before any work starts, that ``path`` is (or can be made) a folder that takes files.

    Creates the folder (and its parents), and writes and removes a probe file in it.

    Args:
        path: the folder, a ``str`` or ``os.PathLike``.
        name: how the error message names it (default ``"--out"``, the CLI option).

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        OutputError: (exit code 2) naming ``name`` and the path when it is a file, lies under a file, or
            cannot be written (read-only place, no permission).
    """
    p = Path(path)
    _writable_dir(p, name, "give a folder that can be written")
    return p


def check_input_file(path, name: str, hint: str = "") -> Path:
    """Check that the input ``path`` is an existing file (not a folder), before it is read.

    Args:
        path: the file, a ``str`` or ``os.PathLike``.
        name: how the error message names it (the CLI option or argument, e.g. ``"--table"``, ``"SPEC file"``).
        hint: what to give instead, appended to the message (e.g. ``"give DIR/measure.json"``); "" for none.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        InputFileError: ``path`` is a folder or does not exist (also a ``FileNotFoundError``).
    """
    from surge.errors import InputFileError

    p = Path(path)
    if p.is_file():
        return p
    why = "is a folder; give a file" if p.is_dir() else "does not exist"
    raise InputFileError(f"{name} {str(p)!r} {why}" + (f" ({hint})" if hint else ""))


def check_output_file(path, name: str = "--out") -> Path:
    """Check, before any work starts, that the file ``path`` can be written: its folder is (or can be made)
    a writable folder and ``path`` is not a folder.

    Creates the file's folder (and its parents) when missing; does not create the file.

    Args:
        path: the file, a ``str`` or ``os.PathLike``.
        name: how the error message names it (default ``"--out"``, the CLI option).

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        OutputError: ``path`` is a folder, its folder is a file, lies under one or cannot be written, or
            ``path`` exists and cannot be written.
    """
    from surge.errors import OutputError

    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{name} {str(p)!r} is a folder; give a file name")
    _writable_dir(
        p.parent if str(p.parent) else Path("."), name, "give a file in a folder that can be written", shown=p
    )
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputError(f"{name} {str(p)!r} exists and cannot be written; give another file")
    return p
