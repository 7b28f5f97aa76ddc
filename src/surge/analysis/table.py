"""Sweep tables people already have: one row per run with a learning rate, a batch size and a final (or
evaluation) loss, perhaps a seed, as exported from W&B (the runs table as CSV), Ray Tune
(``ResultGrid.get_dataframe()``, columns ``config/lr``, ``config/batch_size``) or Optuna
(``study.trials_dataframe()``, columns ``params_lr``, ``params_batch_size``, ``value``), or written by hand.

:func:`table_frame` turns such a table into the tidy trial frame of :mod:`surge.analysis._frame`, so that
:func:`surge.analysis.analyze` and the report treat it like a sweep store: one stage, the optimal lr per
batch size is the lr of the lowest loss (the analysis maximises minus the loss, ties to the smaller lr),
seeds are the rounds its bootstrap intervals resample, and a run whose loss is missing or not finite
counts as diverged (never averaged in). A table has no steps to a target, so there is no Eq 22 B_noise:
the laws are fitted with B_noise free and the verdict uses the Adam law's fitted B_noise.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd

from surge._validation import check_input_file
from surge.errors import SurgeError, SurgeTypeError

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a .csv, .tsv or .parquet table; errors name the file and say what is allowed.

    Args:
        path: the table's file: ``.csv`` (comma-separated), ``.tsv`` (tab-separated), ``.parquet`` or ``.pq``
            (needs pyarrow); the suffix is matched in any case.

    Returns:
        pd.DataFrame: the table as read, one row per line (CSV / TSV with a header row).

    Raises:
        SurgeError: the path is not a file; an unsupported suffix; a file that cannot be parsed; Parquet
            without pyarrow. The messages name the CLI option ``--table``.
    """
    path = check_input_file(path, "--table")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        _check_rows(path, "\t" if suffix == ".tsv" else ",")
    try:
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except ImportError as exc:
        raise SurgeError(f"reading Parquet needs pyarrow (pip install 'surge[parquet]'): {exc}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SurgeError(f"--table {str(path)!r} is not a readable table: {' '.join(str(exc).split())}") from None
    except Exception as exc:  # pyarrow's own error types for a bad Parquet file
        raise SurgeError(
            f"--table {str(path)!r} is not a readable Parquet file: {' '.join(str(exc).split())}"
        ) from None
    raise SurgeError(f"--table {str(path)!r} must end in {', '.join(TABLE_SUFFIXES)}; got {suffix or 'no suffix'!r}")


def _check_rows(path: Path, sep: str) -> None:
    """Every row has the header's number of fields (pandas would fill a short row with NaN)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = csv.reader(fh, delimiter=sep)
            header = next(rows, [])
            for row in rows:
                if row and len(row) != len(header):
                    raise SurgeError(
                        f"--table {str(path)!r} line {rows.line_num} has {len(row)} field(s) but the header has "
                        f"{len(header)}: {sep.join(row)[:80]!r}"
                    )
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SurgeError(f"--table {str(path)!r} is not a readable table: {' '.join(str(exc).split())}") from None


def _column(table: pd.DataFrame, name: str, option: str) -> pd.Series:
    cols = [str(c) for c in table.columns]
    if name not in cols:
        near = [c for c in cols if name.lower() in c.lower() or c.lower() in name.lower()]
        hint = f" (did you mean {', '.join(map(repr, near[:3]))}?)" if near else ""
        raise SurgeError(f"{option} {name!r} is not a column of the table{hint}; it has {', '.join(map(repr, cols))}")
    return table.iloc[:, cols.index(name)]


def _numbers(series: pd.Series, option: str, name: str, *, allow_missing: bool) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    text = series.astype(str).str.strip().str.lower()
    missing = series.isna().to_numpy() | text.isin(["", "nan", "none", "<na>", "null"]).to_numpy()
    bad = np.isnan(values) & ~missing
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SurgeError(f"{option} {name!r}: row {i + 1} is not a number: {str(series.iloc[i])!r}")
    if not allow_missing and missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise SurgeError(f"{option} {name!r}: row {i + 1} is empty; every run needs a value here")
    return values


def table_frame(
    table: pd.DataFrame,
    *,
    lr_column: str,
    batch_size_column: str,
    loss_column: str,
    seed_column: str | None = None,
    name: str = "table",
    batch_unit: str = "examples",
) -> pd.DataFrame:
    """A sweep table (one row per run) as the tidy trial frame the analysis reads.

    Args:
        table: one row per run (pandas DataFrame); any other columns are ignored.
        lr_column: the column of the learning rate, finite and > 0 in every row.
        batch_size_column: the column of the batch size, a positive whole number (in ``batch_unit``) in
            every row; at least 2 distinct values.
        loss_column: the column of the final or evaluation loss (lower is better); missing, NaN or inf means
            the run diverged; at least one finite value.
        seed_column: the column of the seed, whole numbers; runs of one seed form a round. None (default):
            repeats of one (lr, batch size) are numbered in file order.
        name: the workload label in the report (e.g. the file name); default ``"table"``.
        batch_unit: what a batch size counts: ``"examples"`` (default), ``"tokens"`` or ``"sequences"``
            (checked later, by :func:`surge.analysis.tidy_frame`).

    Returns:
        pd.DataFrame: a trial frame the analysis reads (not yet passed through
        :func:`surge.analysis.tidy_frame`): columns ``batch_size``, ``lr``, ``seed``, ``workload``,
        ``optimizer`` (``"optimizer"``), ``batch_unit``, ``status`` (``"ok"``, or ``"diverged"`` without a
        finite loss), ``target_loss``, ``reached``, ``steps`` (NaN), ``loss_decrease`` and ``loss``. One
        stage whose target is the highest finite loss, ``loss_decrease`` = -loss, no steps.

    Raises:
        SurgeTypeError: ``table`` is not a DataFrame.
        SurgeError: ``table`` without rows; a column that does not exist; a value that
            is not a number, or empty where required; a non-positive or non-finite lr or batch size; a
            fractional batch size or seed; no run with a finite loss; fewer than 2 batch sizes.
    """
    if not isinstance(table, pd.DataFrame):
        raise SurgeTypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    if len(table) == 0:
        raise SurgeError("the table has no rows: no runs to analyse")
    lr = _numbers(_column(table, lr_column, "--lr-column"), "--lr-column", lr_column, allow_missing=False)
    b = _numbers(
        _column(table, batch_size_column, "--batch-size-column"),
        "--batch-size-column",
        batch_size_column,
        allow_missing=False,
    )
    loss = _numbers(_column(table, loss_column, "--loss-column"), "--loss-column", loss_column, allow_missing=True)
    for values, option, col in ((lr, "--lr-column", lr_column), (b, "--batch-size-column", batch_size_column)):
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SurgeError(f"{option} {col!r}: row {i + 1} is {values[i]:g}; it must be a finite number > 0")
    frac = b != np.round(b)
    if frac.any():
        i = int(np.flatnonzero(frac)[0])
        raise SurgeError(
            f"--batch-size-column {batch_size_column!r}: row {i + 1} is {b[i]:g}; batch sizes are whole numbers"
        )
    finite = np.isfinite(loss)
    if not finite.any():
        raise SurgeError(f"--loss-column {loss_column!r} holds no finite loss: every run diverged or is empty")
    if np.unique(b).size < 2:
        raise SurgeError(
            f"--batch-size-column {batch_size_column!r} holds one batch size ({b[0]:g}); the analysis needs at least 2"
        )
    df = pd.DataFrame({"batch_size": b.astype(np.int64), "lr": lr})
    if seed_column is not None:
        seed = _numbers(_column(table, seed_column, "--seed-column"), "--seed-column", seed_column, allow_missing=False)
        if (seed != np.round(seed)).any():
            i = int(np.flatnonzero(seed != np.round(seed))[0])
            raise SurgeError(f"--seed-column {seed_column!r}: row {i + 1} is {seed[i]:g}; seeds are whole numbers")
        df["seed"] = seed.astype(np.int64)
    else:
        df["seed"] = df.groupby(["batch_size", "lr"]).cumcount().astype(np.int64)
    target = float(np.max(loss[finite]))
    df["workload"] = name
    df["optimizer"] = "optimizer"
    df["batch_unit"] = batch_unit
    df["status"] = np.where(finite, "ok", "diverged")
    df["target_loss"] = target
    df["reached"] = finite
    df["steps"] = math.nan
    df["loss_decrease"] = np.where(finite, -loss, math.nan)
    df["loss"] = loss
    return df


def load_table(
    path: str | Path,
    *,
    lr_column: str,
    batch_size_column: str,
    loss_column: str,
    seed_column: str | None = None,
) -> pd.DataFrame:
    """:func:`read_table` then :func:`table_frame`, with the file name as the workload label.

    Args:
        path: the table's file (``.csv``, ``.tsv``, ``.parquet``, ``.pq``).
        lr_column: the column of the learning rate.
        batch_size_column: the column of the batch size (in examples).
        loss_column: the column of the final or evaluation loss (lower is better).
        seed_column: the column of the seed (a round per seed); None: repeats numbered in file order.

    Returns:
        pd.DataFrame: the trial frame of :func:`table_frame` (one stage, batch sizes in examples).

    Raises:
        SurgeError: what :func:`read_table` and :func:`table_frame` raise (a missing or unreadable file, a
            bad column or value).
    """
    path = Path(path)
    return table_frame(
        read_table(path),
        lr_column=lr_column,
        batch_size_column=batch_size_column,
        loss_column=loss_column,
        seed_column=seed_column,
        name=path.name,
    )
