"""Parsing of option values that Typer does not parse by itself."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from surge.errors import SurgeError


def parse_number_list(values: list[str] | None, name: str) -> list[float]:
    """Numbers from an option given as a comma-separated list, repeated, or both ("16,64" or -b 16 -b 64)."""
    out: list[float] = []
    for chunk in values or []:
        for part in chunk.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(float(part))
            except ValueError:
                raise SurgeError(f"{name} must be numbers separated by commas; {part!r} is not a number") from None
    if not out:
        raise SurgeError(f"{name} needs at least one value, e.g. {name} 16,64,256")
    return out


def read_columns(path: Path, columns: tuple[str, ...]) -> dict[str, list[float]]:
    """Read the named numeric columns of a CSV file, with errors that name the file and the column."""
    if not path.is_file():
        raise SurgeError(f"FILE {str(path)!r} does not exist or is not a file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SurgeError(f"FILE {str(path)!r} is not a readable CSV file: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SurgeError(
            f"FILE {str(path)!r} lacks column(s) {', '.join(missing)}; it has {', '.join(frame.columns) or 'none'} "
            f"(expected a header line: {','.join(columns)})"
        )
    result = {}
    for c in columns:
        col = pd.to_numeric(frame[c], errors="coerce")
        if col.isna().any():
            row = int(col.isna().to_numpy().nonzero()[0][0])
            raise SurgeError(f"FILE {str(path)!r} column {c!r} row {row + 1} is not a number: {frame[c].iloc[row]!r}")
        result[c] = col.astype(float).tolist()
    return result
