"""Numbers for people: one formatter for the CLI's tables and the reports."""

from __future__ import annotations

import math


def fmt(x: float | None, digits: int = 4, *, nan: str = "nan") -> str:
    """``x`` to ``digits`` significant digits; 'inf' / '-inf' spelled out, ``nan`` for NaN, '-' for None.

    Args:
        x: the number (any real, NumPy scalars included), or None for a missing value.
        digits: significant digits (``%g`` precision), default 4.
        nan: the text for NaN, default ``"nan"``.

    Returns:
        str: ``x`` in ``%.{digits}g`` form, ``"inf"`` / ``"-inf"``, ``nan`` for NaN, or ``"-"`` for None.
    """
    if x is None:
        return "-"
    x = float(x)
    if math.isnan(x):
        return nan
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def fmt_ci(ci: tuple[float, float] | None, digits: int = 4, *, missing: str = "-") -> str:
    """An interval as ``[low, high]``; ``missing`` when there is none (None, or an end that is not finite
    when ``missing`` is not '-').

    Args:
        ci: the interval ``(low, high)``, or None when there is none.
        digits: significant digits of each end (see :func:`fmt`), default 4.
        missing: the text for no interval, default ``"-"``; any other value also replaces an interval with
            a non-finite end (with ``"-"`` such an interval is written out, e.g. ``[nan, inf]``).

    Returns:
        str: ``"[low, high]"`` with each end formatted by :func:`fmt`, or ``missing``.
    """
    if ci is None:
        return missing
    if missing != "-" and not all(math.isfinite(float(v)) for v in ci):
        return missing
    return f"[{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]"
