"""The sweep spec: what to train, over which grid, for how long (the paper's Table 1, one row per spec).

A spec is a frozen dataclass per concept, each field with a comment, in the manner of nanoGPT's
``GPTConfig``. It comes from a TOML file (:func:`load_spec`), a dict (:func:`spec_from_dict`) or a
named preset (:mod:`surge.sweep.presets`). Every constructor validates its fields, so a spec built in
Python gets the same errors as one read from a file: unknown keys are named with their section,
wrong types with their key, and empty, reversed or non-positive ranges with the bad value.

The TOML layout::

    name = "cnn-small-batch"          # optional; defaults to the file name
    workload = "cnn-fashion-mnist"    # registry name or "package.module:attribute"
    rounds = 100                      # seeds per grid point
    target_loss = [0.6, 0.45]         # optional; the workload's defaults otherwise
    max_steps = 20000                 # budget per trial

    [optimizer]
    name = "adam"
    betas = [0.9, 0.999]

    [lr]                              # or: lr = [1e-4, 3e-4, 1e-3]
    start = 1e-4
    stop = 1e-3
    step = 1e-4

    [batch_size]                      # or: batch_size = [1, 2, 4, 8]
    start = 1
    stop = 12
    step = 1

Ranges include ``stop``: the points are ``start + i * step`` for ``i = 0 .. n - 1`` with
``n = floor((stop - start) / step + 1e-6) + 1``; the tolerance makes ``stop`` count when float error puts
it a hair off the grid (``(1e-3 - 1e-4) / 1e-4`` is 8.999999999999998), and a ``stop`` that lies off the
grid ends the range at the last point not past it. Learning rates are rounded to 12 significant digits,
so that the fourth point of 1e-4..1e-3 is 0.0004 and not 0.00040000000000000002. Sizes are computed
before any point is formed and refused past ``MAX_AXIS_POINTS`` per axis and ``MAX_TRIALS`` in all; a
spec with several bad fields reports all of them in one error.

Why one module of ~700 lines: the field checks, the two grid axes, the spec and its TOML reading and writing
are one vocabulary that every sweep command shares.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surge._validation import check_input_file, check_int, check_scalar, type_name
from surge.errors import SurgeError, SurgeTypeError
from surge.records import (  # noqa: F401
    _DEVICE_RE,
    BRANCH_OPTIMIZER_STATES,
    DTYPES,
    MAX_TRIALS,
    OPTIMIZERS,
    PROTOCOLS,
    STRATEGIES,
    OptimizerConfig,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RANGE_TOLERANCE = 1e-6  # in units of ``step``: how far off the grid ``stop`` may be and still count
LR_DIGITS = 12  # significant digits kept of each learning rate formed from a range
# Sizes are computed from the spec and refused before anything is materialised. The paper's sweeps have
# 10 x 12 grid points and 100 rounds (12,000 trials); the limits leave room for far larger ones.
MAX_AXIS_POINTS = 10_000  # points of one axis (learning rates, or batch sizes)


# ----------------------------------------------------------------------------------------------
# Typed field checks: each names the key (with its section) and shows the bad value.


_type_name = type_name


def _as_int(value: object, key: str, *, minimum: int | None = 1) -> int:
    return check_int(value, key, minimum=minimum)


def _as_float(
    value: object, key: str, *, positive: bool = False, nonnegative: bool = False, below_one: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SurgeTypeError(f"{key} must be a number, got {value!r} ({_type_name(value)})")
    return check_scalar(value, key, positive=positive, nonnegative=nonnegative, below=1.0 if below_one else None)


def _as_str(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise SurgeTypeError(f"{key} must be a string, got {value!r} ({_type_name(value)})")
    if not value.strip():
        raise SurgeError(f"{key} must not be empty")
    return value


def _as_choice(value: object, key: str, allowed: tuple[str, ...]) -> str:
    value = _as_str(value, key)
    if value not in allowed:
        raise SurgeError(f"{key} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
    return value


def _as_list(value: object, key: str) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise SurgeTypeError(f"{key} must be an array, got {value!r} ({_type_name(value)})")
    if len(value) == 0:
        raise SurgeError(f"{key} must not be empty")
    return tuple(value)


def _raise_all(errors: list[SurgeError]) -> None:
    """Raise the one error, or all of them in one SurgeError ("N problems: a; b; c")."""
    if len(errors) == 1:
        raise errors[0]
    typ = SurgeTypeError if all(isinstance(e, SurgeTypeError) for e in errors) else SurgeError
    raise typ(f"{len(errors)} problems in the spec: " + "; ".join(str(e) for e in errors))


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SurgeError(f"unknown key {key!r} {where} (allowed: {', '.join(allowed)}){hint}")


# ----------------------------------------------------------------------------------------------
# Concepts


OptimizerSpec = OptimizerConfig  # the earlier name of surge.records.OptimizerConfig, kept for one release


class _Grid:
    """Shared logic of the learning-rate and batch-size axes: a range (start, stop, step) or a list."""

    _key = "grid"
    _integer = False

    def __post_init__(self) -> None:
        k = self._key
        has_range = any(v is not None for v in (self.start, self.stop, self.step))
        if self.values is not None and has_range:
            raise SurgeError(f"{k} takes either values or start/stop/step, not both")
        if self.values is None and not has_range:
            raise SurgeError(f"{k} needs start, stop and step, or values")
        if self.values is not None:
            values = tuple(
                self._number(v, f"{k}.values[{i}]") for i, v in enumerate(_as_list(self.values, f"{k}.values"))
            )
            dups = sorted({v for v in values if values.count(v) > 1})
            if dups:
                raise SurgeError(f"{k}.values has duplicates: {', '.join(_show(v) for v in dups)}")
            object.__setattr__(self, "values", values)
            return
        for name in ("start", "stop", "step"):
            if getattr(self, name) is None:
                raise SurgeError(f"{k}.{name} is missing; a range needs start, stop and step")
            object.__setattr__(self, name, self._number(getattr(self, name), f"{k}.{name}"))
        if self.stop < self.start:
            raise SurgeError(f"{k} range is reversed: stop {_show(self.stop)} < start {_show(self.start)}; swap them")
        if self.step <= 0:
            raise SurgeError(f"{k}.step must be > 0, got {_show(self.step)}")
        n = self.count()
        if n > MAX_AXIS_POINTS:
            raise SurgeError(
                f"{k} range {_show(self.start)}..{_show(self.stop)} by {_show(self.step)} has {n:.4g} "
                f"points; the limit is {MAX_AXIS_POINTS} per axis: use a larger step"
            )

    def count(self) -> float:
        """The number of points, computed without forming them (a range may give an enormous count).

        Returns:
            int: ``len(values)``, or the range's ``floor((stop - start) / step + 1e-6) + 1`` (possibly huge;
            ``math.inf`` when that quotient overflows a float).
        """
        if self.values is not None:
            return len(self.values)
        span = (self.stop - self.start) / self.step + RANGE_TOLERANCE
        return math.inf if math.isinf(span) else math.floor(span) + 1  # a tiny step overflows the float

    def _number(self, value: object, key: str):
        if self._integer:
            return _as_int(value, key)
        return _as_float(value, key, positive=True)

    def points(self) -> tuple:
        """The axis' values: the list as given, or the inclusive range (see the module docstring).

        Returns:
            tuple: the points in order (ints for batch sizes; floats rounded to ``LR_DIGITS`` significant
            digits for a learning-rate range).
        """
        if self.values is not None:
            return tuple(self.values)
        n = math.floor((self.stop - self.start) / self.step + RANGE_TOLERANCE) + 1
        if self._integer:
            return tuple(self.start + i * self.step for i in range(n))
        return tuple(float(f"{self.start + i * self.step:.{LR_DIGITS}g}") for i in range(n))

    def to_dict(self) -> dict[str, Any]:
        """The axis as its TOML table.

        Returns:
            dict: ``{"values": [...]}`` or ``{"start": ..., "stop": ..., "step": ...}``.
        """
        if self.values is not None:
            return {"values": list(self.values)}
        return {"start": self.start, "stop": self.stop, "step": self.step}


def _show(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class LRGrid(_Grid):
    """The learning-rate axis: ``start..stop`` by ``step`` (inclusive), or explicit ``values``.

    Give either ``values`` or all of ``start``, ``stop`` and ``step``; the constructor raises
    :class:`~surge.errors.SurgeError` otherwise, and for a reversed range, a step <= 0, duplicates or
    more than ``MAX_AXIS_POINTS`` points (:class:`~surge.errors.SurgeTypeError` for a non-number).

    Attributes:
        start: the first learning rate, > 0.
        stop: the last learning rate, inclusive when on the grid, >= start.
        step: the spacing, > 0.
        values: an explicit list instead of a range, each > 0, no duplicates.
    """

    start: float | None = None  # first learning rate, > 0
    stop: float | None = None  # last learning rate, inclusive when on the grid, >= start
    step: float | None = None  # spacing, > 0
    values: tuple[float, ...] | None = None  # an explicit list instead of a range; no duplicates

    _key = "lr"


@dataclass(frozen=True)
class BatchGrid(_Grid):
    """The batch-size axis (in the workload's batch unit): a range or ``values``.

    A batch size counts the workload's ``batch_unit``: examples for the image workloads, sequences (of
    128 tokens) for ``distilgpt2-eli5``. The constructor's checks are those of :class:`LRGrid`, with
    integers.

    Attributes:
        start: the first batch size, a positive integer.
        stop: the last batch size, inclusive when on the grid, >= start.
        step: the spacing, a positive integer.
        values: an explicit list instead of a range, positive integers, no duplicates.
    """

    start: int | None = None  # first batch size, a positive integer
    stop: int | None = None  # last batch size, inclusive when on the grid, >= start
    step: int | None = None  # spacing, a positive integer
    values: tuple[int, ...] | None = None  # an explicit list instead of a range; no duplicates

    _key = "batch_size"
    _integer = True


def _grid(value: object, cls: type[_Grid]):
    """A grid from a TOML value: a table (start/stop/step or values) or a bare array (values)."""
    key = cls._key
    if isinstance(value, cls):
        return value
    if isinstance(value, (list, tuple)):
        return cls(values=_as_list(value, key))
    if isinstance(value, Mapping):
        _check_keys(value, ("start", "stop", "step", "values"), f"in section [{key}]")
        return cls(**dict(value))
    raise SurgeTypeError(
        f"{key} must be a table (start, stop, step) or an array of values, got {value!r} ({_type_name(value)})"
    )


@dataclass(frozen=True)
class TrunkConfig:
    """The branch protocol's reference run: one training run that reaches each target loss and is
    checkpointed there (parameters, optimizer state, data position); every branch starts from a checkpoint.

    Its optimizer is the spec's ``[optimizer]``; its step budget the spec's ``max_steps``.

    Attributes:
        batch_size: the trunk's batch size, a positive integer.
        lr: the trunk's learning rate, > 0.
        seed: the trunk's initial weights and data order, >= 0 (branches use the rounds' seeds for data).
    """

    batch_size: int  # the trunk's batch size, a positive integer
    lr: float  # the trunk's learning rate, > 0
    seed: int = 0  # the trunk's initial weights and data order (branches use the rounds' seeds for data)

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_size", _as_int(self.batch_size, "trunk.batch_size"))
        object.__setattr__(self, "lr", _as_float(self.lr, "trunk.lr", positive=True))
        object.__setattr__(self, "seed", _as_int(self.seed, "trunk.seed", minimum=0))

    def to_dict(self) -> dict[str, Any]:
        """The trunk as its TOML table.

        Returns:
            dict: ``batch_size``, ``lr`` and ``seed``.
        """
        return {"batch_size": self.batch_size, "lr": self.lr, "seed": self.seed}


def _trunk(value: object) -> TrunkConfig | None:
    if value is None or isinstance(value, TrunkConfig):
        return value
    if isinstance(value, Mapping):
        _check_keys(value, tuple(f.name for f in dataclasses.fields(TrunkConfig)), "in section [trunk]")
        for key in ("batch_size", "lr"):
            if key not in value:
                raise SurgeError(f"section [trunk] lacks the required key {key!r} (the trunk's {key})")
        return TrunkConfig(**dict(value))
    raise SurgeTypeError(f"trunk must be a table (batch_size, lr, seed), got {value!r} ({_type_name(value)})")


@dataclass(frozen=True)
class SweepSpec:
    """One grid experiment: a workload, an optimizer, a learning-rate x batch-size grid, rounds and targets.

    A trial is one (batch size, learning rate, round); round ``r`` uses seed ``seed + r``, so the trials of
    one round share initial weights and batch order across learning rates (common random numbers).

    The constructor validates every field and raises one :class:`~surge.errors.SurgeError` naming all
    the bad ones (a :class:`~surge.errors.SurgeTypeError` when all are of the wrong type); it also refuses
    a branch protocol without a trunk, a trunk or ``branch_optimizer_state="carry"`` with the scratch
    protocol, and more than ``MAX_TRIALS`` trials.

    Attributes:
        workload: a registry name (``surge.workloads.list_workloads()``) or ``"package.module:attribute"``.
        lr: the learning-rate axis (an :class:`LRGrid`, or its table or list of values).
        batch_size: the batch-size axis in the workload's batch unit (a :class:`BatchGrid`, or its table or
            list of values).
        name: a label for stores, tables and reports (default ``"sweep"``).
        optimizer: the optimizer and its settings (an :class:`~surge.records.OptimizerConfig`, its table,
            or a name).
        rounds: repeats of the whole grid, each with its own seed, >= 1.
        seed: the seed of round 0, >= 0; round r uses ``seed + r``.
        target_loss: the training-loss targets (nats), > 0 and strictly decreasing; None: the workload's.
        extra_steps: N, steps trained past each target to measure the loss decrease, >= 1; None: the
            workload's.
        max_steps: the budget per trial in steps, >= 1; a target not reached within it is censored.
        max_examples: the budget per trial in batch units (B x steps), >= 1; None: no such limit.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        dtype: the parameter dtype, ``"float32"`` or ``"float64"``.
        strategy: how a group trains: ``"lockstep"`` (vmap), ``"loop"`` or ``"auto"`` (the engine picks).
        data_dir: where the workload finds or caches its data; None: the workload's default.
        group_size: the most trials trained together (one batch size, several lrs x rounds), >= 1.
        protocol: ``"scratch"`` (every trial trains from initialisation to each target, the paper's
            protocol) or ``"branch"`` (a trunk is checkpointed at each target and every trial trains N
            steps from there).
        trunk: the branch protocol's reference run (a :class:`TrunkConfig` or its table); required for
            ``"branch"``, None for ``"scratch"``.
        branch_optimizer_state: for Adam-style branches, ``"reset"`` (a fresh optimizer state: the optimum
            of the update rule at theta) or ``"carry"`` (the trunk's moments: the optimum a run that
            changes its lr there would see); ``"reset"`` for scratch.
        probe_examples: measure the loss on the first this-many probe examples, >= 1; None: all.
    """

    workload: str  # registry name (``surge.workloads.list_workloads()``) or "package.module:attribute"
    lr: LRGrid  # the learning-rate axis
    batch_size: BatchGrid  # the batch-size axis, in the workload's batch unit (examples, or sequences)
    name: str = "sweep"  # a label for stores, tables and reports
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)  # the optimizer and its settings
    rounds: int = 1  # repeats of the whole grid, each with its own seed
    seed: int = 0  # seed of round 0; round r uses seed + r
    target_loss: tuple[float, ...] | None = None  # training-loss targets, strictly decreasing; None: workload's
    extra_steps: int | None = None  # N: steps trained past each target to measure the loss decrease; None: workload's
    max_steps: int = 10_000  # budget per trial in steps; a target not reached within it is censored
    max_examples: int | None = None  # budget per trial in examples (B * steps), None for no such limit
    device: str = "cpu"  # "cpu", "cuda" or "cuda:N"
    dtype: str = "float32"  # parameter dtype, one of DTYPES
    strategy: str = "auto"  # how a group trains: "lockstep" (vmap), "loop" or "auto" (the engine picks)
    data_dir: str | None = None  # where the workload finds or caches its data; None: the workload's default
    group_size: int = 100  # most trials trained together (one batch size, several lrs x rounds)
    # "scratch": every trial trains from initialisation to each target (the paper's protocol);
    # "branch": a trunk ([trunk]) is checkpointed at each target and every trial trains N steps from there
    protocol: str = "scratch"
    trunk: TrunkConfig | None = None  # the branch protocol's reference run (required for "branch")
    # Adam-style branches: "reset" starts from a fresh optimizer state (the optimum of the update rule at
    # theta); "carry" takes the trunk's moments (the optimum a run that changes its lr there would see)
    branch_optimizer_state: str = "reset"
    probe_examples: int | None = None  # measure the loss on the first this-many probe examples; None: all

    def __post_init__(self) -> None:
        errors: list[SurgeError] = []  # every bad field is reported, not only the first

        @contextlib.contextmanager
        def field_check():
            try:
                yield
            except SurgeError as exc:
                errors.append(exc)

        with field_check():
            object.__setattr__(self, "workload", _as_str(self.workload, "workload"))
        with field_check():
            object.__setattr__(self, "name", _as_str(self.name, "name"))
        with field_check():
            object.__setattr__(self, "lr", _grid(self.lr, LRGrid))
        with field_check():
            object.__setattr__(self, "batch_size", _grid(self.batch_size, BatchGrid))
        with field_check():
            opt = self.optimizer
            if isinstance(opt, Mapping):
                _check_keys(opt, tuple(f.name for f in dataclasses.fields(OptimizerConfig)), "in section [optimizer]")
                opt = OptimizerConfig(**dict(opt))
            elif isinstance(opt, str):
                opt = OptimizerConfig(name=opt)
            elif not isinstance(opt, OptimizerConfig):
                raise SurgeTypeError(f"optimizer must be a table or a name, got {opt!r} ({_type_name(opt)})")
            object.__setattr__(self, "optimizer", opt)
        with field_check():
            object.__setattr__(self, "rounds", _as_int(self.rounds, "rounds"))
        with field_check():
            object.__setattr__(self, "seed", _as_int(self.seed, "seed", minimum=0))
        with field_check():
            if self.target_loss is not None:
                targets = _as_list(self.target_loss, "target_loss")
                targets = tuple(_as_float(t, f"target_loss[{i}]", positive=True) for i, t in enumerate(targets))
                for i in range(1, len(targets)):
                    if not targets[i] < targets[i - 1]:
                        raise SurgeError(
                            f"target_loss must be strictly decreasing (training goes on from one target "
                            f"to the next); got {list(targets)}"
                        )
                object.__setattr__(self, "target_loss", targets)
        with field_check():
            if self.extra_steps is not None:
                object.__setattr__(self, "extra_steps", _as_int(self.extra_steps, "extra_steps"))
        with field_check():
            object.__setattr__(self, "max_steps", _as_int(self.max_steps, "max_steps"))
        with field_check():
            if self.max_examples is not None:
                object.__setattr__(self, "max_examples", _as_int(self.max_examples, "max_examples"))
        with field_check():
            device = _as_str(self.device, "device")
            if not _DEVICE_RE.match(device):
                raise SurgeError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}")
        with field_check():
            _as_choice(self.dtype, "dtype", DTYPES)
        with field_check():
            _as_choice(self.strategy, "strategy", STRATEGIES)
        with field_check():
            if self.data_dir is not None:
                object.__setattr__(self, "data_dir", _as_str(self.data_dir, "data_dir"))
        with field_check():
            object.__setattr__(self, "group_size", _as_int(self.group_size, "group_size"))
        with field_check():
            if self.probe_examples is not None:
                object.__setattr__(self, "probe_examples", _as_int(self.probe_examples, "probe_examples"))
        with field_check():
            _as_choice(self.protocol, "protocol", PROTOCOLS)
        with field_check():
            _as_choice(self.branch_optimizer_state, "branch_optimizer_state", BRANCH_OPTIMIZER_STATES)
        with field_check():
            object.__setattr__(self, "trunk", _trunk(self.trunk))
        if errors:
            _raise_all(errors)
        if self.protocol == "branch" and self.trunk is None:
            raise SurgeError(
                "protocol 'branch' needs a [trunk] section (batch_size, lr): the run whose checkpoints "
                "the branches start from"
            )
        if self.protocol == "scratch" and self.trunk is not None:
            raise SurgeError("a [trunk] section is only used with protocol = 'branch'; remove it or set the protocol")
        if self.protocol == "scratch" and self.branch_optimizer_state != "reset":
            raise SurgeError("branch_optimizer_state is only used with protocol = 'branch'")
        n_trials = self.lr.count() * self.batch_size.count() * self.rounds
        if n_trials > MAX_TRIALS:
            raise SurgeError(
                f"the sweep has {self.lr.count()} learning rates x {self.batch_size.count()} batch sizes x "
                f"{self.rounds} rounds = {n_trials:.4g} trials; the limit is {MAX_TRIALS:,}: fewer rounds or a coarser grid"
            )

    # -- views ------------------------------------------------------------------------------------

    @property
    def lrs(self) -> tuple[float, ...]:
        """The learning rates of the grid."""
        return self.lr.points()

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes of the grid."""
        return self.batch_size.points()

    @property
    def n_trials(self) -> int:
        """Trials in the whole sweep: lrs x batch sizes x rounds."""
        return len(self.lrs) * len(self.batch_sizes) * self.rounds

    def replace(self, **changes: Any) -> SweepSpec:
        """A copy with some fields changed (validated again).

        Args:
            **changes: field name -> new value, as the constructor takes them.

        Returns:
            SweepSpec: the new, validated spec.

        Raises:
            SurgeError: a changed field fails validation (as the constructor).
            TypeError: a name that is not a field.
        """
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML types; ``spec_from_dict(spec.to_dict()) == spec``. None fields are left out.

        A scratch spec also leaves out ``protocol`` and ``branch_optimizer_state``, so that its JSON and
        hash are those of specs written before the branch protocol.

        Returns:
            dict: field name -> value; grids, the optimizer and the trunk as nested dicts, tuples as lists.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if self.protocol == "scratch" and f.name in ("protocol", "branch_optimizer_state"):
                continue  # a scratch spec's JSON (and hash) is what it was before the branch protocol
            if isinstance(value, (_Grid, TrunkConfig)):
                value = value.to_dict()
            elif isinstance(value, OptimizerConfig):
                value = {
                    "name": value.name,
                    "betas": list(value.betas),
                    "eps": value.eps,
                    "weight_decay": value.weight_decay,
                    "momentum": value.momentum,
                }
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), the text that :meth:`spec_hash` hashes.

        Returns:
            str: compact JSON of :meth:`to_dict`.
        """
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def spec_hash(self) -> str:
        """SHA-256 of the canonical JSON: equal specs, equal hashes.

        Returns:
            str: 64 hex digits.
        """
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def to_toml(self) -> str:
        """The spec as a TOML document that :func:`load_spec` reads back to an equal spec.

        Returns:
            str: ``name`` and ``workload`` first, then the other top-level keys, then the ``[optimizer]``,
            ``[lr]``, ``[batch_size]`` and ``[trunk]`` tables; ends with a newline.
        """
        d = self.to_dict()
        tables = ("optimizer", "lr", "batch_size", "trunk")
        order = ["name", "workload"] + [k for k in d if k not in ("name", "workload") + tables]
        d = {k: d[k] for k in order + list(tables) if k in d}
        lines: list[str] = []
        tables: list[tuple[str, dict]] = []
        for key, value in d.items():
            if isinstance(value, dict):
                tables.append((key, value))
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        for key, table in tables:
            lines.append("")
            lines.append(f"[{key}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
        return "\n".join(lines) + "\n"


_TOP_KEYS = tuple(f.name for f in dataclasses.fields(SweepSpec))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise SurgeTypeError(f"cannot write {value!r} as TOML")  # pragma: no cover - specs hold plain types only


def spec_from_dict(data: Mapping[str, Any], *, name: str | None = None) -> SweepSpec:
    """A validated spec from a dict shaped like the TOML file.

    Args:
        data: the spec's keys and tables, as :func:`tomllib.loads` gives them (or :meth:`SweepSpec.to_dict`).
        name: the spec's name when ``data`` has none; None: the default ``"sweep"``.

    Returns:
        SweepSpec: the validated spec.

    Raises:
        SurgeTypeError: ``data`` is not a mapping.
        SurgeError: unknown top-level keys, a top-level key that landed inside a ``[table]`` (TOML's rule),
            a missing ``workload``, ``lr`` or ``batch_size``, or any field the constructor refuses; several
            problems are reported in one error.
    """
    if not isinstance(data, Mapping):
        raise SurgeTypeError(f"a sweep spec must be a table, got {_type_name(data)}")
    errors: list[SurgeError] = []
    for key in data:
        if key not in _TOP_KEYS:
            try:
                _check_keys({key: None}, _TOP_KEYS, "at the top level of the spec")
            except SurgeError as exc:
                errors.append(exc)
    # a top-level key written after a [table] header lands inside that table (TOML's rule)
    landed = {}
    for section in ("lr", "batch_size", "optimizer"):
        table = data.get(section)
        if isinstance(table, Mapping):
            for key in list(table):
                if key in _TOP_KEYS and key not in ("name",):
                    landed[key] = section
                    errors.append(
                        SurgeError(
                            f"key {key!r} is inside the [{section}] table: in TOML a key written after a [table] "
                            f"header belongs to that table; move {key!r} above the first [table] header"
                        )
                    )
    for required in ("workload", "lr", "batch_size"):
        if required not in data and required not in landed:
            errors.append(SurgeError(f"the spec lacks the required key {required!r}"))
    if errors:
        _raise_all(errors)
    kwargs = dict(data)
    if "name" not in kwargs and name is not None:
        kwargs["name"] = name
    return SweepSpec(**kwargs)


def spec_from_toml(text: str, *, name: str | None = None, source: str = "spec") -> SweepSpec:
    """A validated spec from TOML text.

    Args:
        text: the TOML document.
        name: the spec's name when the document has none; None: ``"sweep"``.
        source: what to call the text in errors (e.g. ``"SPEC file 'x.toml'"``).

    Returns:
        SweepSpec: the validated spec.

    Raises:
        SurgeError: the text is not valid TOML, or the spec is invalid (:func:`spec_from_dict`).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SurgeError(f"{source} is not valid TOML: {exc}") from None
    return spec_from_dict(data, name=name)


def load_spec(path: str | Path) -> SweepSpec:
    """A validated spec from a TOML file; its name defaults to the file's stem.

    Args:
        path: the TOML file (str or Path), UTF-8.

    Returns:
        SweepSpec: the validated spec.

    Raises:
        SurgeError: the file does not exist, is not a file or cannot be read or decoded, is not valid TOML,
            or holds an invalid spec.
    """
    path = check_input_file(path, "SPEC file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SurgeError(f"SPEC file {str(path)!r} cannot be read: {exc}") from None
    return spec_from_toml(text, name=path.stem, source=f"SPEC file {str(path)!r}")
