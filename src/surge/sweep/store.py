"""The sweep store: one SQLite file per experiment, one row per finished trial, resumable.

SQLite in WAL mode with a busy timeout, the standard library's ``sqlite3`` only (no torch). Tables:

``sweeps``
    one row per distinct spec run against the store: its TOML and canonical JSON, the workload defaults
    it resolved (so ``status`` needs no workload import), and when it was first and last run.
``trials``
    one row per trial that finished (``ok`` / ``diverged``) or failed (``failed``, with the error and
    traceback), keyed by ``trial_key``, the SHA-256 of the trial's full config JSON (workload, optimizer,
    batch size, lr, seed, targets, N, budget, dtype). A rerun skips the keys with ``ok`` / ``diverged``
    and retries ``failed`` ones.
``stages``
    one row per (trial, target loss): whether and when the target was reached and the loss decrease
    over the N steps after it. A failed trial gets one row per target with NULL results.

A group's trials are written in one transaction (:meth:`SweepStore.record_trials`), so a killed sweep
leaves whole groups or nothing; a resumed sweep retrains the missing groups with the same composition.

Why one module of ~730 lines: the schema and every read and write of it, so that all SQL lives in one place.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from surge._validation import check_input_file, check_output_file
from surge.errors import SurgeError
from surge.records import FINISHED, OPTIMIZER_COLUMNS, STAGE_COLUMNS, STATUSES, TRIAL_RESULT_COLUMNS  # noqa: F401
from surge.sweep.plan import SweepPlan, Trial, WorkloadInfo, plan_sweep
from surge.sweep.spec import SweepSpec, spec_from_dict

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id      INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    spec_hash     TEXT NOT NULL UNIQUE,   -- SHA-256 of spec_json
    spec_json     TEXT NOT NULL,          -- canonical JSON of the spec
    spec_toml     TEXT NOT NULL,          -- the same spec as TOML (surge sweep run FILE.toml reads it back)
    workload_json TEXT NOT NULL,          -- the workload defaults resolved at planning time
    n_trials      INTEGER NOT NULL,
    created_at    TEXT NOT NULL,          -- ISO 8601, UTC
    last_run_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    trial_key        TEXT PRIMARY KEY,    -- SHA-256 of config_json
    sweep_id         INTEGER NOT NULL REFERENCES sweeps(sweep_id),
    group_key        TEXT NOT NULL,       -- the training group it ran in
    workload         TEXT NOT NULL,
    optimizer        TEXT NOT NULL,
    beta1            REAL NOT NULL,
    beta2            REAL NOT NULL,
    eps              REAL NOT NULL,
    weight_decay     REAL NOT NULL,
    momentum         REAL NOT NULL,
    batch_size       INTEGER NOT NULL,
    batch_unit       TEXT NOT NULL,
    lr               REAL NOT NULL,
    seed             INTEGER NOT NULL,
    round            INTEGER NOT NULL,
    extra_steps      INTEGER NOT NULL,
    max_steps        INTEGER NOT NULL,
    max_examples     INTEGER,
    dtype            TEXT NOT NULL,
    device           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('ok', 'diverged', 'failed')),
    error            TEXT,                -- 'ExceptionType: message' for failed trials
    traceback        TEXT,
    steps_run        INTEGER,
    diverged_at_step INTEGER,
    strategy         TEXT,
    wall_seconds     REAL,
    config_json      TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stages (
    trial_key      TEXT NOT NULL REFERENCES trials(trial_key) ON DELETE CASCADE,
    stage          INTEGER NOT NULL,      -- 0-based index of the target
    target_loss    REAL NOT NULL,
    reached        INTEGER,               -- 1 / 0; NULL for a failed trial
    steps          INTEGER,               -- S: steps to first reach the target
    examples       INTEGER,               -- E: examples (or tokens) to first reach it
    loss_at_target REAL,
    loss_after     REAL,                  -- the probe loss N steps later
    loss_decrease  REAL,                  -- loss_at_target - loss_after
    PRIMARY KEY (trial_key, stage)
);
CREATE INDEX IF NOT EXISTS trials_by_batch ON trials(batch_size, lr);
"""

# The columns of the tidy frame: ids, the trial's config, the records' fields (surge.records), provenance.
_PLAN_COLUMNS = ("batch_size", "batch_unit", "lr", "seed", "round")
_BUDGET_COLUMNS = ("extra_steps", "max_steps", "max_examples")
FRAME_COLUMNS = (
    ("sweep", "trial_key", "workload")
    + OPTIMIZER_COLUMNS
    + _PLAN_COLUMNS
    + ("status", "stage")
    + STAGE_COLUMNS
    + _BUDGET_COLUMNS
    + tuple(c for c in TRIAL_RESULT_COLUMNS if c not in ("status", "wall_seconds"))
    + ("device", "dtype", "wall_seconds", "error", "created_at")
)
_STAGE_TYPES = {
    "target_loss": float,
    "reached": bool,
    "steps": int,
    "examples": int,
    "loss_at_target": float,
    "loss_after": float,
    "loss_decrease": float,
}  # SQL affinity of each StageRecord field


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _float_or_none(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if not math.isnan(x) else None


def _int_or_none(x: Any) -> int | None:
    return None if x is None else int(x)


@dataclass(frozen=True)
class SweepRecord:
    """A sweep as the store keeps it.

    Attributes:
        sweep_id: the row id in the ``sweeps`` table.
        name: the spec's name.
        spec: the spec, rebuilt from its stored canonical JSON.
        spec_toml: the same spec as TOML.
        workload: the workload defaults resolved when the sweep was last registered.
        n_trials: the trials its plan had when last registered.
        created_at: when it was first run against the store, ISO 8601 UTC.
        last_run_at: when it was last run, ISO 8601 UTC.
    """

    sweep_id: int
    name: str
    spec: SweepSpec
    spec_toml: str
    workload: WorkloadInfo
    n_trials: int
    created_at: str
    last_run_at: str

    def plan(self) -> SweepPlan:
        """The sweep's plan, rebuilt from the stored spec and workload defaults (no workload import).

        Returns:
            SweepPlan: the plan (not GPU-sized: the groups of :func:`~surge.sweep.plan.plan_sweep`).

        Raises:
            SurgeError: the stored defaults no longer plan (e.g. no target losses).
        """
        return plan_sweep(self.spec, workload=self.workload)


class SweepStore:
    """A SQLite sweep store. Use as a context manager, or call :meth:`close`.

    ``create=False`` refuses a path with no store (for ``status`` and ``export``).
    """

    def __init__(self, path: str | Path, *, create: bool = True):
        """Open (or create) the store at ``path``, checking an existing file's pages and schema version.

        Args:
            path: the SQLite file (str or Path); its folder is created when ``create`` is True.
            create: True creates the store (and its schema) when missing; False refuses a path with no
                store (for ``status`` and ``export``).

        Raises:
            SurgeError: a folder; with ``create=False``, a missing file; a SQLite file that is not a surge
                store (never written into, even with ``create``); a file that cannot be opened, is not SQLite
                or is corrupted; or a store of another schema version.
            OutputError: with ``create``, a new store whose folder lies under a file or cannot be written.
        """
        self.path = Path(path)
        if self.path.is_dir() or not create:
            check_input_file(self.path, "store", "a store is the file that 'surge sweep run ... --store' creates")
        existed = self.path.is_file() and self.path.stat().st_size > 0
        if create and not self.path.exists():
            check_output_file(self.path, "store")  # its folder can be made and written (not under a file)
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise SurgeError(f"store {str(self.path)!r} cannot be opened: {exc}") from None
        try:
            self._conn.execute("PRAGMA busy_timeout = 60000")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise SurgeError(f"store {str(self.path)!r} is not a SQLite database: {exc}") from None
        try:
            if existed:  # corrupted pages are found here, before any work, not in the middle of it
                bad = [r[0] for r in self._conn.execute("PRAGMA quick_check(3)").fetchall() if r[0] != "ok"]
                if bad:
                    raise sqlite3.DatabaseError("; ".join(bad))
            self._init_schema(create)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise SurgeError(
                f"store {str(self.path)!r} is corrupted ({' '.join(str(exc).split())[:200]}): "
                "restore it from a copy, or give a new --store"
            ) from None

    # -- plumbing ---------------------------------------------------------------------------------

    def _init_schema(self, create: bool) -> None:
        version = self._meta("schema_version")
        tables = self._conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if version is None and (tables or not create):  # another program's database is never written into
            self._conn.close()
            raise SurgeError(
                f"{str(self.path)!r} is a SQLite database but not a surge sweep store; give another --store"
            )
        if version is not None and int(version) != SCHEMA_VERSION:
            self._conn.close()
            raise SurgeError(
                f"store {str(self.path)!r} has schema version {version}; this surge writes version {SCHEMA_VERSION}"
            )
        if version is None:
            with self._transaction():
                for statement in re.sub(r"--[^\n]*", "", _SCHEMA).split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _meta(self, key: str) -> str | None:
        exists = self._conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not exists:
            return None
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> SweepStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold an advisory lock (``PATH.lock``) so that two sweeps do not train the same store at once.

        The lock dies with its process, so a killed sweep leaves no stale lock. The lock file holds the
        holder's pid. Without ``fcntl`` (Windows) no lock is taken.

        Yields:
            None, while the lock is held; it is released on exit.

        Raises:
            SurgeError: another process holds the lock (the message names its pid).
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock
            yield
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                raise SurgeError(
                    f"store {str(self.path)!r} is in use by another 'surge sweep run' (pid {holder}); "
                    f"wait for it to finish or use another --store"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # -- sweeps -----------------------------------------------------------------------------------

    def register_sweep(self, plan: SweepPlan) -> int:
        """Record the plan's spec (once per distinct spec); returns its ``sweep_id``.

        A spec already stored (same :meth:`~surge.sweep.spec.SweepSpec.spec_hash`) gets its last-run time,
        workload defaults and trial count updated.

        Args:
            plan: the plan whose spec and resolved workload to record.

        Returns:
            int: the sweep's ``sweep_id``.
        """
        spec = plan.spec
        workload_json = json.dumps(
            {
                "name": plan.workload.name,
                "default_targets": list(plan.workload.default_targets),
                "extra_steps": plan.workload.extra_steps,
                "batch_unit": plan.workload.batch_unit,
                "metadata": plan.workload.metadata,
                "fingerprint": plan.workload.fingerprint,
            },
            sort_keys=True,
        )
        now = _now()
        with self._transaction() as conn:
            row = conn.execute("SELECT sweep_id FROM sweeps WHERE spec_hash = ?", (spec.spec_hash(),)).fetchone()
            if row is not None:
                # the workload as resolved now (a user workload's fingerprint may have changed)
                conn.execute(
                    "UPDATE sweeps SET last_run_at = ?, workload_json = ?, n_trials = ? WHERE sweep_id = ?",
                    (now, workload_json, plan.n_trials, row[0]),
                )
                return int(row[0])
            cur = conn.execute(
                "INSERT INTO sweeps (name, spec_hash, spec_json, spec_toml, workload_json, n_trials, created_at, "
                "last_run_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (spec.name, spec.spec_hash(), spec.to_json(), spec.to_toml(), workload_json, plan.n_trials, now, now),
            )
            return int(cur.lastrowid)

    def sweeps(self) -> list[SweepRecord]:
        """The sweeps run against this store, oldest first.

        Returns:
            list of :class:`SweepRecord`: in ``sweep_id`` order.

        Raises:
            SurgeError: a stored spec no longer validates (:func:`~surge.sweep.spec.spec_from_dict`).
        """
        rows = self._conn.execute(
            "SELECT sweep_id, name, spec_json, spec_toml, workload_json, n_trials, created_at, last_run_at "
            "FROM sweeps ORDER BY sweep_id"
        ).fetchall()
        out = []
        for sweep_id, name, spec_json, spec_toml, workload_json, n_trials, created, last in rows:
            w = json.loads(workload_json)
            info = WorkloadInfo(
                name=w["name"],
                default_targets=tuple(w["default_targets"]),
                extra_steps=int(w["extra_steps"]),
                batch_unit=w["batch_unit"],
                metadata=w.get("metadata", {}),
                fingerprint=w.get("fingerprint"),
            )
            out.append(
                SweepRecord(
                    sweep_id=sweep_id,
                    name=name,
                    spec=spec_from_dict(json.loads(spec_json)),
                    spec_toml=spec_toml,
                    workload=info,
                    n_trials=n_trials,
                    created_at=created,
                    last_run_at=last,
                )
            )
        return out

    # -- trials -----------------------------------------------------------------------------------

    def trial_statuses(self) -> dict[str, str]:
        """``trial_key -> status`` for every stored trial.

        Returns:
            dict: trial key -> ``"ok"``, ``"diverged"`` or ``"failed"``.
        """
        return dict(self._conn.execute("SELECT trial_key, status FROM trials").fetchall())

    def finished_keys(self) -> set[str]:
        """Keys of trials that finished (``ok`` or ``diverged``): a rerun skips them.

        Returns:
            set of str: the trial keys.
        """
        return {k for k, s in self.trial_statuses().items() if s in FINISHED}

    def record_trials(
        self,
        sweep_id: int,
        plan: SweepPlan,
        trials: Sequence[Trial],
        group_key: str,
        *,
        results: Sequence[Any] | None = None,
        error: str | None = None,
        traceback: str | None = None,
        device: str | None = None,
    ) -> None:
        """Write one group's trials in one transaction: its results, or (``results=None``) its error.

        A finished trial already in the store is never overwritten; a failed one is replaced. A failed
        group's trials get one stage row per target with NULL results.

        Args:
            sweep_id: the sweep's id (:meth:`register_sweep`).
            plan: the sweep's plan (trial configs, targets, budgets).
            trials: the group's trials, in order.
            group_key: the group's key (:attr:`~surge.sweep.plan.TrialGroup.key`).
            results: the engine's :class:`surge.records.TrialRecord` objects (read by attribute), one per
                trial, in order, each ``ok`` or ``diverged`` with one stage per target; None with ``error``.
            error: the group's error text (``"ExceptionType: message"``) when it failed; None with ``results``.
            traceback: the failure's traceback text, or None.
            device: the device recorded with the trials; None: the spec's.

        Raises:
            SurgeError: both or neither of ``results`` and ``error``.
            ValueError: results that do not fit the group: a different count, a status other than ``ok`` /
                ``diverged``, another (lr, seed) order, or a stage count other than the targets'.
            AttributeError: a result lacks a record field (``TypeError`` for a field of the wrong type).
        """
        if (results is None) == (error is None):
            raise SurgeError("record_trials needs either results or error")
        if results is not None and len(results) != len(trials):
            raise ValueError(f"the runner returned {len(results)} results for {len(trials)} trials")
        rows, stage_rows = [], []
        now = _now()
        spec = plan.spec
        opt = spec.optimizer
        for i, trial in enumerate(trials):
            config = plan.trial_config(trial.batch_size, trial.lr, trial.seed)
            base = dict(
                trial_key=trial.key,
                sweep_id=sweep_id,
                group_key=group_key,
                workload=spec.workload,
                **opt.columns(),
                batch_size=trial.batch_size,
                batch_unit=plan.batch_unit,
                lr=trial.lr,
                seed=trial.seed,
                round=trial.round,
                extra_steps=plan.extra_steps,
                max_steps=spec.max_steps,
                max_examples=spec.max_examples,
                dtype=spec.dtype,
                device=device or spec.device,
                config_json=json.dumps(config, sort_keys=True),
                created_at=now,
            )
            if results is None:
                rows.append(
                    {
                        **base,
                        "status": "failed",
                        "error": error,
                        "traceback": traceback,
                        "steps_run": None,
                        "diverged_at_step": None,
                        "strategy": None,
                        "wall_seconds": None,
                    }
                )
                stage_rows.extend(
                    (trial.key, s, t) + (None,) * (len(STAGE_COLUMNS) - 1) for s, t in enumerate(plan.target_losses)
                )
                continue
            res = results[i]
            _check_result(res, trial, plan)
            rows.append(
                {
                    **base,
                    "status": res.status,
                    "error": None,
                    "traceback": None,
                    "steps_run": _int_or_none(res.steps_run),
                    "diverged_at_step": _int_or_none(res.diverged_at_step),
                    "strategy": None if res.strategy is None else str(res.strategy),
                    "wall_seconds": _float_or_none(res.wall_seconds),
                }
            )
            for s, st in enumerate(res.stages):
                stage_rows.append((trial.key, s) + tuple(_stage_value(st, c) for c in STAGE_COLUMNS))
        columns = list(rows[0]) if rows else []
        with self._transaction() as conn:
            for row in rows:
                old = conn.execute("SELECT status FROM trials WHERE trial_key = ?", (row["trial_key"],)).fetchone()
                if old is not None and old[0] in FINISHED:
                    continue  # never overwrite a finished trial
                if old is not None:
                    conn.execute("DELETE FROM trials WHERE trial_key = ?", (row["trial_key"],))
                conn.execute(
                    f"INSERT INTO trials ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    [row[c] for c in columns],
                )
                conn.executemany(
                    f"INSERT INTO stages (trial_key, stage, {', '.join(STAGE_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * (2 + len(STAGE_COLUMNS)))})",
                    [r for r in stage_rows if r[0] == row["trial_key"]],
                )

    # -- reading ----------------------------------------------------------------------------------

    def trials_frame(self):
        """A tidy pandas DataFrame, one row per (trial, stage), columns ``FRAME_COLUMNS``.

        Sorted by workload, optimizer (and betas), batch size, lr, seed and stage. ``reached`` is a nullable
        boolean (NA for failed trials); ``steps`` / ``examples`` are nullable integers (NA when not reached).
        See docs/sweeps.md ("The tidy table") for the meaning of each column. Imports pandas.

        Returns:
            pandas.DataFrame: one row per (trial, stage), columns ``FRAME_COLUMNS``; integer columns
            ``Int64``, float columns ``float64`` (losses in nats, ``wall_seconds`` in seconds).
        """
        import pandas as pd

        stage_cols = {"stage", *STAGE_COLUMNS}
        select = ", ".join(
            "s.name AS sweep" if c == "sweep" else f"g.{c}" if c in stage_cols else f"t.{c}" for c in FRAME_COLUMNS
        )
        query = f"""
            SELECT {select}
            FROM trials t JOIN sweeps s ON s.sweep_id = t.sweep_id
            LEFT JOIN stages g ON g.trial_key = t.trial_key
            ORDER BY t.workload, t.optimizer, t.beta1, t.beta2, t.batch_size, t.lr, t.seed, g.stage
        """
        rows = self._conn.execute(query).fetchall()
        frame = pd.DataFrame.from_records(rows, columns=list(FRAME_COLUMNS))
        ints = (
            "batch_size",
            "seed",
            "round",
            "stage",
            "steps",
            "examples",
            "extra_steps",
            "max_steps",
            "max_examples",
            "steps_run",
            "diverged_at_step",
        )
        floats = (
            "beta1",
            "beta2",
            "eps",
            "weight_decay",
            "momentum",
            "lr",
            "target_loss",
            "loss_at_target",
            "loss_after",
            "loss_decrease",
            "wall_seconds",
        )
        strings = (
            "sweep",
            "trial_key",
            "workload",
            "optimizer",
            "batch_unit",
            "status",
            "strategy",
            "device",
            "dtype",
            "error",
            "created_at",
        )
        for c in ints:
            frame[c] = frame[c].astype("Int64")
        for c in floats:
            frame[c] = frame[c].astype("float64")
        for c in strings:
            frame[c] = frame[c].astype("object")
        frame["reached"] = frame["reached"].astype("boolean")
        return frame

    def export(self, out: str | Path) -> Path:
        """Write :meth:`trials_frame` to ``.csv`` or ``.parquet`` (by suffix); returns the path.

        Args:
            out: the output file (str or Path) ending in ``.csv`` or ``.parquet``; its folder is created.

        Returns:
            Path: ``out``.

        Raises:
            SurgeError: another suffix, or a Parquet file without pyarrow.
        """
        out = Path(out)
        suffix = out.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise SurgeError(f"--out must end in .csv or .parquet, got {str(out)!r}")
        frame = self.trials_frame()
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            frame.to_csv(out, index=False)
        else:
            try:
                frame.to_parquet(out, index=False)
            except ImportError as exc:
                raise SurgeError(f"Parquet export needs pyarrow (pip install 'surge[parquet]'): {exc}") from None
        return out

    def failure_summary(self, limit: int = 5) -> list[dict[str, Any]]:
        """The most frequent errors of failed trials: ``[{"error": text, "trials": count}, ...]``.

        Args:
            limit: the most distinct errors returned (default 5).

        Returns:
            list of dict: ``error`` (text) and ``trials`` (count), most frequent first.
        """
        rows = self._conn.execute(
            "SELECT error, COUNT(*) FROM trials WHERE status = 'failed' GROUP BY error "
            "ORDER BY COUNT(*) DESC, error LIMIT ?",
            (int(limit),),
        ).fetchall()
        return [{"error": e, "trials": int(n)} for e, n in rows]

    def status(self) -> dict[str, Any]:
        """Progress over every sweep in the store: total / done / failed / pending, overall and per batch size.

        ``total`` counts the distinct trials the stored sweeps plan; ``done`` those finished (``ok`` +
        ``diverged``); ``failed`` those whose last attempt raised (a rerun retries them); ``pending`` the rest.

        Returns:
            dict: ``store`` (the path), the counts ``total``, ``done``, ``ok``, ``diverged``, ``failed`` and
            ``pending``, ``by_batch_size`` (a list of the same counts with ``batch_size``) and ``sweeps``
            (one dict per stored sweep: name, id, workload, batch unit, metadata, times and its counts).

        Raises:
            SurgeError: a stored sweep no longer validates or plans.
        """
        statuses = self.trial_statuses()
        sweeps = []
        planned: dict[str, Trial] = {}
        for rec in self.sweeps():
            plan = rec.plan()
            trials = plan.trials()
            for t in trials:
                planned.setdefault(t.key, t)
            sweeps.append(
                {
                    "name": rec.name,
                    "sweep_id": rec.sweep_id,
                    "workload": rec.spec.workload,
                    "batch_unit": rec.workload.batch_unit,
                    "workload_metadata": rec.workload.metadata,
                    "created_at": rec.created_at,
                    "last_run_at": rec.last_run_at,
                    **_counts(trials, statuses),
                }
            )
        by_batch: dict[int, list[Trial]] = {}
        for t in planned.values():
            by_batch.setdefault(t.batch_size, []).append(t)
        return {
            "store": str(self.path),
            **_counts(list(planned.values()), statuses),
            "by_batch_size": [{"batch_size": b, **_counts(ts, statuses)} for b, ts in sorted(by_batch.items())],
            "sweeps": sweeps,
        }


def _stage_value(stage: Any, column: str) -> Any:
    """A StageRecord field as the store keeps it (bool as 0/1, NaN as NULL)."""
    kind = _STAGE_TYPES[column]
    value = getattr(stage, column)
    if kind is bool:
        return int(bool(value))
    if kind is int:
        return _int_or_none(value)
    return float(value) if column == "target_loss" else _float_or_none(value)


def _counts(trials: Sequence[Trial], statuses: dict[str, str]) -> dict[str, int]:
    ok = diverged = failed = 0
    for t in trials:
        s = statuses.get(t.key)
        ok += s == "ok"
        diverged += s == "diverged"
        failed += s == "failed"
    done = ok + diverged
    return {
        "total": len(trials),
        "done": done,
        "ok": ok,
        "diverged": diverged,
        "failed": failed,
        "pending": len(trials) - done - failed,
    }


def _check_result(res: Any, trial: Trial, plan: SweepPlan) -> None:
    """A runner's result must be the trial's, in order, with one stage per target."""
    status = getattr(res, "status", None)
    if status not in FINISHED:
        raise ValueError(
            f"the runner returned status {status!r} for lr={trial.lr:g}, seed={trial.seed}; expected 'ok' or 'diverged'"
        )
    if int(res.seed) != trial.seed or not math.isclose(float(res.lr), trial.lr, rel_tol=1e-6):
        raise ValueError(
            f"the runner returned a result for (lr={float(res.lr):g}, seed={res.seed}) where "
            f"(lr={trial.lr:g}, seed={trial.seed}) was expected: results must follow the trial order"
        )
    if len(res.stages) != len(plan.target_losses):
        raise ValueError(f"the runner returned {len(res.stages)} stages for {len(plan.target_losses)} targets")
