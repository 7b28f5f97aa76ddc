"""Parsing of option values that Typer does not parse by itself."""

from __future__ import annotations

from pathlib import Path

from surge._validation import check_input_file
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
    """Read the named numeric columns of a CSV file, with errors that name the file, the line and the column.

    Line numbers count the file's lines (the header is line 1), as an editor shows them; a value is
    shown as written in the file.
    """
    import csv
    import math

    path = check_input_file(path, "FILE")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            lines = [(n, row) for n, row in enumerate(csv.reader(fh), start=1) if any(c.strip() for c in row)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SurgeError(f"FILE {str(path)!r} is not a readable CSV file: {exc}") from None
    if not lines:
        raise SurgeError(f"FILE {str(path)!r} is empty; expected a header line: {','.join(columns)}")
    header = [c.strip() for c in lines[0][1]]
    missing = [c for c in columns if c not in header]
    if missing:
        raise SurgeError(
            f"FILE {str(path)!r} lacks column(s) {', '.join(missing)}; it has {', '.join(header) or 'none'} "
            f"(expected a header line: {','.join(columns)})"
        )
    result: dict[str, list[float]] = {c: [] for c in columns}
    where = {c: header.index(c) for c in columns}
    for n, row in lines[1:]:
        if len(row) != len(header):
            raise SurgeError(
                f"FILE {str(path)!r} line {n} has {len(row)} field(s) but the header has {len(header)}: {','.join(row)!r}"
            )
        for c in columns:
            text = row[where[c]].strip()
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise SurgeError(f"FILE {str(path)!r} line {n} column {c!r} is not a finite number: {text!r}")
            result[c].append(value)
    return result
