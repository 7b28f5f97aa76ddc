"""Loading and checking the tidy trial frame (one row per trial and stage).

The frame comes from a sweep store (:meth:`surge.sweep.store.SweepStore.trials_frame`), from a CSV or
Parquet export of it (``surge sweep export``), or from :func:`surge.analysis.synthetic_frame`. This
module turns any of them into one normalised form, so the analysis never has to guess types:

=================  ==========================================================================
column             meaning after :func:`tidy_frame`
=================  ==========================================================================
``config``         a short label of the optimizer configuration (workload, optimizer, betas, ...)
``batch_size``     int, B (examples, or tokens when ``batch_unit`` is ``"tokens"``)
``batch_unit``     ``"examples"``, ``"tokens"`` or ``"sequences"``
``lr``             float, the learning rate
``round``          int, the round (the seed identifies it; trials of one round share data)
``status``         ``"ok"``, ``"diverged"`` or ``"failed"``
``target_loss``    float, the stage
``reached``        bool (False where the store has NA, i.e. for failed trials)
``steps``          float, S (NaN when not reached)
``examples``       float, E = B S (NaN when not reached; computed from B S when absent)
``loss_decrease``  float, the decrease of the probe loss over the N steps after the target (or NaN)
``extra_steps``    N when the source records it, else NaN
``loss_at_target`` float, the probe loss at S when the source records it, else NaN
=================  ==========================================================================
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd

from surge._units import BATCH_UNITS
from surge._validation import check_input_file
from surge.errors import SurgeError, SurgeTypeError
from surge.records import STATUSES  # noqa: E402

REQUIRED = ("batch_size", "lr", "status", "target_loss", "reached", "steps", "loss_decrease")
# Columns that identify an optimizer configuration; trials of different configurations are never mixed.
CONFIG_COLUMNS = ("workload", "optimizer", "beta1", "beta2", "eps", "weight_decay", "momentum", "batch_unit")
_SQLITE_MAGIC = b"SQLite format 3\x00"


def load_store(path: str | Path) -> pd.DataFrame:
    """Read trials into the tidy frame: a sweep store (SQLite), or a ``.csv`` / ``.parquet`` export of one.

    The sweep store is imported only for SQLite files, so a CSV or Parquet export is analysed without it.
    The result is normalised by :func:`tidy_frame`.

    Args:
        path: the file: a SQLite sweep store (recognised by its header, whatever its suffix), or a ``.csv``,
            ``.parquet`` or ``.pq`` export of one (``surge sweep export``).

    Returns:
        pd.DataFrame: the tidy trial frame, one row per trial and stage (columns in the module docstring).

    Raises:
        SurgeError: the path is not a file; the file is neither SQLite nor ``.csv`` / ``.parquet`` / ``.pq``;
            it cannot be read as CSV or Parquet (or Parquet is asked for without pyarrow); the store cannot
            be opened; it holds no trials; or the trials fail the checks of :func:`tidy_frame`.
    """
    path = check_input_file(path, "store")
    suffix = path.suffix.lower()
    with open(path, "rb") as fh:
        head = fh.read(len(_SQLITE_MAGIC))
    if head == _SQLITE_MAGIC:
        from surge.sweep.store import SweepStore  # lazy: the analysis works on a frame without the sweep layer

        with SweepStore(path, create=False) as store:
            raw = store.trials_frame()
    elif suffix == ".csv":
        try:
            raw = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise SurgeError(f"store {str(path)!r} is not a readable CSV file: {exc}") from None
    elif suffix in (".parquet", ".pq"):
        try:
            raw = pd.read_parquet(path)
        except ImportError as exc:
            raise SurgeError(f"reading Parquet needs pyarrow (pip install 'surge[parquet]'): {exc}") from None
        except Exception as exc:  # pyarrow raises its own error types for a bad file
            raise SurgeError(f"store {str(path)!r} is not a readable Parquet file: {exc}") from None
    else:
        raise SurgeError(f"store {str(path)!r} is neither a SQLite sweep store nor a .csv / .parquet export of one")
    if len(raw) == 0:
        raise SurgeError(f"store {str(path)!r} holds no trials yet (run 'surge sweep run' first)")
    return tidy_frame(raw)


def _as_bool(series: pd.Series, name: str) -> pd.Series:
    """Booleans from bool, 0/1, 'true'/'false' (any case) or NA (-> False)."""
    if series.dtype == bool:
        return series
    mapping = {
        "true": True,
        "false": False,
        "1": True,
        "0": False,
        "1.0": True,
        "0.0": False,
        "": False,
        "nan": False,
        "none": False,
        "<na>": False,
    }
    out = []
    for i, v in enumerate(series.tolist()):
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            out.append(False)
        elif isinstance(v, (bool, np.bool_)):
            out.append(bool(v))
        elif isinstance(v, (int, np.integer, float, np.floating)) and float(v) in (0.0, 1.0):
            out.append(bool(v))
        elif isinstance(v, str) and v.strip().lower() in mapping:
            out.append(mapping[v.strip().lower()])
        else:
            raise SurgeError(f"column {name!r} row {i} must be true/false, got {v!r}")
    return pd.Series(out, index=series.index, dtype=bool)


def _as_float(series: pd.Series, name: str) -> pd.Series:
    out = pd.to_numeric(series, errors="coerce").astype("float64")
    missing = series.isna() | series.astype(str).str.strip().str.lower().isin(["", "nan", "<na>", "none"])
    bad = out.isna() & ~missing
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise SurgeError(f"column {name!r} row {i} is not a number: {series.iloc[i]!r}")
    return out


def _parse_betas(value) -> tuple[float, float]:
    if isinstance(value, (tuple, list, np.ndarray)):
        vals = [float(v) for v in value]
    elif isinstance(value, str):
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            parsed = [p for p in value.replace("(", "").replace(")", "").split(",") if p.strip()]
        vals = [float(v) for v in (parsed if isinstance(parsed, (tuple, list)) else [parsed])]
    else:
        raise SurgeError(f"column 'betas' must hold pairs like (0.9, 0.999), got {value!r}")
    if len(vals) != 2:
        raise SurgeError(f"column 'betas' must hold pairs (beta1, beta2), got {value!r}")
    return vals[0], vals[1]


def _config_label(row: dict) -> str:
    parts = [str(row.get("workload", "unknown"))]
    opt = str(row.get("optimizer", "optimizer"))
    args = []
    if not (pd.isna(row.get("beta1")) or pd.isna(row.get("beta2"))):
        args.append(f"betas=({row['beta1']:g}, {row['beta2']:g})")
    for key in ("eps", "weight_decay", "momentum"):
        v = row.get(key)
        if v is not None and not pd.isna(v) and (key != "eps" or v != 1e-8) and (key == "eps" or v != 0):
            args.append(f"{key}={v:g}")
    parts.append(f"{opt}({', '.join(args)})" if args else opt)
    unit = row.get("batch_unit", "examples")
    if unit != "examples":
        parts.append(f"batch in {unit}")
    return " | ".join(parts)


def tidy_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a trial frame and return it normalised (see the module docstring for the columns).

    Accepts the sweep store's columns (``beta1``/``beta2``, ``round`` and ``seed``, nullable ``reached``
    and ``steps``) and the simpler contract (``betas`` as a pair or its text, ``seed`` as the round).

    Args:
        frame: one row per trial and stage, with at least the columns of :data:`REQUIRED` and ``seed`` or
            ``round`` (``seed`` is the round when both are present); optional: ``workload``, ``optimizer``,
            ``beta1``/``beta2`` or ``betas``, ``eps``, ``weight_decay``, ``momentum``, ``batch_unit``
            (default ``"examples"``), ``examples``, ``loss_at_target``, ``extra_steps``, ``error``. Other
            columns are dropped. Not modified.

    Returns:
        pd.DataFrame: a new frame with a fresh index and the columns of the module docstring (plus the
        configuration columns of :data:`CONFIG_COLUMNS` and ``error``). A row that did not reach its target,
        or of a failed trial, has ``reached`` False and NaN ``steps`` / ``examples``.

    Raises:
        SurgeTypeError: ``frame`` is not a pandas DataFrame.
        SurgeError: a required column is missing; the frame is empty; a value is not a number (or not
            true/false in ``reached``), a ``betas`` entry is not a pair; ``batch_unit`` is not one of
            ``"examples"``, ``"tokens"``, ``"sequences"``; a batch size is not a positive integer; a learning
            rate is not > 0; a seed / round or a target loss is empty; a status is not ``"ok"``,
            ``"diverged"`` or ``"failed"``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise SurgeTypeError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    cols = [str(c) for c in frame.columns]
    missing = [c for c in REQUIRED if c not in cols]
    if "seed" not in cols and "round" not in cols:
        missing.append("seed (or round)")
    if missing:
        raise SurgeError(
            f"the trial frame lacks column(s) {', '.join(missing)}; it has {', '.join(cols) or 'none'} "
            "(expected one row per trial and stage, as SweepStore.trials_frame() returns)"
        )
    if len(frame) == 0:
        raise SurgeError("the trial frame is empty: no trials to analyse")
    df = frame.copy()
    df.columns = cols
    out = pd.DataFrame(index=df.index)
    # configuration
    out["workload"] = df["workload"].astype(str) if "workload" in df else "unknown"
    out["optimizer"] = df["optimizer"].astype(str) if "optimizer" in df else "unknown"
    if "beta1" in df and "beta2" in df:
        out["beta1"] = _as_float(df["beta1"], "beta1")
        out["beta2"] = _as_float(df["beta2"], "beta2")
    elif "betas" in df:
        pairs = [_parse_betas(v) for v in df["betas"].tolist()]
        out["beta1"] = [p[0] for p in pairs]
        out["beta2"] = [p[1] for p in pairs]
    else:
        out["beta1"] = np.nan
        out["beta2"] = np.nan
    for key in ("eps", "weight_decay", "momentum"):
        out[key] = _as_float(df[key], key) if key in df else np.nan
    out["batch_unit"] = df["batch_unit"].astype(str) if "batch_unit" in df else "examples"
    bad_unit = ~out["batch_unit"].isin(BATCH_UNITS)
    if bad_unit.any():
        raise SurgeError(
            f"column 'batch_unit' must be one of {', '.join(map(repr, BATCH_UNITS))}, "
            f"got {out['batch_unit'][bad_unit].iloc[0]!r}"
        )
    # grid
    b = _as_float(df["batch_size"], "batch_size")
    if b.isna().any() or (b <= 0).any() or (b != np.round(b)).any():
        i = int(np.flatnonzero((b.isna() | (b <= 0) | (b != np.round(b))).to_numpy())[0])
        raise SurgeError(f"column 'batch_size' must hold positive integers; row {i} is {df['batch_size'].iloc[i]!r}")
    out["batch_size"] = b.astype(np.int64)
    lr = _as_float(df["lr"], "lr")
    if lr.isna().any() or (lr <= 0).any():
        i = int(np.flatnonzero((lr.isna() | (lr <= 0)).to_numpy())[0])
        raise SurgeError(f"column 'lr' must hold positive numbers; row {i} is {df['lr'].iloc[i]!r}")
    out["lr"] = lr
    rnd = _as_float(df["seed"] if "seed" in df else df["round"], "seed" if "seed" in df else "round")
    if rnd.isna().any():
        raise SurgeError("column 'seed' (the round) must not be empty")
    out["round"] = rnd.astype(np.int64)
    status = df["status"].astype(str).str.strip().str.lower()
    bad = ~status.isin(STATUSES)
    if bad.any():
        raise SurgeError(f"column 'status' must be one of {', '.join(STATUSES)}; got {df['status'][bad].iloc[0]!r}")
    out["status"] = status
    out["error"] = df["error"] if "error" in df else None
    # stage results
    t = _as_float(df["target_loss"], "target_loss")
    if t.isna().any():
        raise SurgeError("column 'target_loss' must not be empty: every row is one (trial, stage)")
    out["target_loss"] = t
    out["reached"] = _as_bool(df["reached"], "reached") & (status != "failed")
    out["steps"] = _as_float(df["steps"], "steps")
    if "examples" in df:
        e = _as_float(df["examples"], "examples")
        out["examples"] = e.where(e.notna(), out["batch_size"] * out["steps"])
    else:
        out["examples"] = out["batch_size"] * out["steps"]
    out["loss_decrease"] = _as_float(df["loss_decrease"], "loss_decrease")
    # the probe loss at S (for the selection-bias diagnostic), when the source records it
    out["loss_at_target"] = _as_float(df["loss_at_target"], "loss_at_target") if "loss_at_target" in df else np.nan
    out["extra_steps"] = _as_float(df["extra_steps"], "extra_steps") if "extra_steps" in df else np.nan
    # a row that did not reach its target has no S or E, whatever the source wrote
    out.loc[~out["reached"], ["steps", "examples"]] = np.nan
    keys = list(CONFIG_COLUMNS)
    combo = pd.Series(
        ["\x1f".join(map(str, t)) for t in out[keys].itertuples(index=False, name=None)], index=out.index
    )  # NaN-safe key of the configuration
    first = out[keys].groupby(combo.to_numpy(), sort=False).head(1)
    labels = {
        combo[i]: _config_label(dict(zip(keys, row)))
        for i, row in zip(first.index, first.itertuples(index=False, name=None))
    }
    out["config"] = combo.map(labels)
    return out.reset_index(drop=True)


def configs(frame: pd.DataFrame) -> list[str]:
    """The configuration labels in a tidy frame, in a stable order.

    Args:
        frame: a tidy frame (:func:`tidy_frame`), with its ``config`` column.

    Returns:
        list[str]: the distinct ``config`` labels, sorted; an index into it picks a configuration in
        :func:`select_config`.
    """
    return sorted(frame["config"].unique().tolist())


def select_config(frame: pd.DataFrame, config: str | int | None) -> pd.DataFrame:
    """The rows of one configuration: ``config`` is its label, its index in :func:`configs`, or None (only one).

    Args:
        frame: a tidy frame (:func:`tidy_frame`).
        config: the configuration's label; its index in :func:`configs` (an int, or a string of digits);
            or None, allowed only when the frame holds one configuration.

    Returns:
        pd.DataFrame: the rows of that configuration (the whole frame for None), index kept.

    Raises:
        SurgeError: ``config`` is None and the frame holds several configurations (the message lists
            them); an index out of range; a label not in the frame.
    """
    labels = configs(frame)
    if config is None:
        if len(labels) > 1:
            listed = "; ".join(f"[{i}] {c}" for i, c in enumerate(labels))
            raise SurgeError(
                f"the trials hold {len(labels)} optimizer configurations ({listed}); analyse one at a time: "
                "pass config=LABEL or its index (CLI: --config)"
            )
        return frame
    if isinstance(config, (int, np.integer)) or (isinstance(config, str) and config.strip().isdigit()):
        i = int(config)
        if not 0 <= i < len(labels):
            raise SurgeError(
                f"config index {i} is out of range: there are {len(labels)} configuration(s), 0..{len(labels) - 1}"
            )
        return frame[frame["config"] == labels[i]]
    if config not in labels:
        listed = "; ".join(f"[{i}] {c}" for i, c in enumerate(labels))
        raise SurgeError(f"config {config!r} is not in the trials; they hold: {listed}")
    return frame[frame["config"] == config]
