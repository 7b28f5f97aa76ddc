"""Planning: a spec becomes trials, keyed by a hash of their full config, grouped into training groups.

A *group* is the set of trials the engine trains together: one batch size, a chunk of rounds, and all
learning rates of those rounds (a chunk of them when there are more than ``group_size``). The grouping
is a pure function of the spec, so a resumed sweep rebuilds exactly the groups of the first run; the
store commits a group's trials in one transaction, so a group is either wholly in the store or wholly
pending, and a resumed sweep trains each remaining group with the same composition (and hence, on the
CPU, the same numbers) as an uninterrupted run would.

Groups are ordered round-chunk first, then batch size: an interrupted sweep has whole early rounds
across every batch size, which is what the analysis needs first.

This module imports neither torch nor the engine; the workload's defaults come from a resolver
(by default :func:`surge.workloads.get_workload`, imported when first needed).

Why one module of ~510 lines: trials, their keys and their grouping are the one plan the store and the
executors share; about 290 lines are code, the rest docstrings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from surge._json import to_jsonable
from surge.errors import SurgeError, SurgeTypeError
from surge.records import BRANCH_VERSION, GroupConfig
from surge.sweep.spec import SweepSpec

TRIAL_KEY_VERSION = 1  # part of every trial config; bump when the meaning of a stored trial changes


@dataclass(frozen=True)
class WorkloadInfo:
    """What planning needs to know of a workload: its defaults and its batch unit.

    Attributes:
        name: the workload as the spec names it.
        default_targets: the training-loss targets (nats) used when the spec gives none.
        extra_steps: N, the steps trained past each target, used when the spec gives none.
        batch_unit: what a batch size counts: ``"examples"``, ``"tokens"`` or ``"sequences"``
            (``"unknown"`` when the workload was not loaded).
        unavailable: why the workload could not be loaded (dry-run plans only), else None.
        metadata: the workload's own record (data, tokenizer), JSON types; not compared.
        fingerprint: SHA-256 prefix of a user workload's data, initial model and loss
            (:func:`workload_fingerprint`); None for built-ins.
    """

    name: str  # the workload as the spec names it
    default_targets: tuple[float, ...]  # the training-loss targets used when the spec gives none
    extra_steps: int  # N used when the spec gives none
    batch_unit: str  # "examples", "tokens" or "sequences": what a batch size counts ("unknown" when not loaded)
    unavailable: str | None = None  # why the workload could not be loaded (dry-run plans only), else None
    metadata: dict = field(default_factory=dict, compare=False)  # the workload's own record (data, tokenizer)
    # SHA-256 of a user workload's data, initial model and loss (workload_fingerprint); None for built-ins
    fingerprint: str | None = None


class WorkloadUnavailable(SurgeError):
    """The workload is known by name but cannot be loaded here (torch missing, data missing): bad input
    for this machine, CLI exit 2 (a ``SurgeError``, so also a ``ValueError``)."""


@dataclass(frozen=True)
class Trial:
    """One (batch size, learning rate, round) point of the grid.

    Attributes:
        key: SHA-256 hex digest of the trial's canonical config JSON (:meth:`SweepPlan.trial_config`).
        batch_size: the batch size, in the workload's batch unit.
        lr: the learning rate.
        round: the 0-based round index.
        seed: the trial's seed, ``spec.seed + round``.
    """

    key: str  # SHA-256 of the trial's canonical config JSON (see SweepPlan.trial_config)
    batch_size: int
    lr: float
    round: int  # 0-based round index
    seed: int  # spec.seed + round


@dataclass(frozen=True)
class TrialGroup:
    """Trials trained together: one batch size, rounds x learning rates (round-major order).

    Attributes:
        index: the group's position in the plan, 0-based.
        batch_size: the batch size of all its trials.
        rounds: the rounds it covers.
        trials: its trials, round-major, then learning rate.
        strategy: the runner forced by GPU sizing (:mod:`surge.sweep.gpu_sizing`); None: the spec's.
    """

    index: int  # position in the plan, 0-based
    batch_size: int
    rounds: tuple[int, ...]  # the rounds it covers
    trials: tuple[Trial, ...]  # round-major, then learning rate
    strategy: str | None = None  # forced by GPU sizing (surge.sweep.gpu_sizing); None: the spec's

    @property
    def key(self) -> str:
        """A hash of the group's trial keys: identifies the composition."""
        return hashlib.sha256("\n".join(t.key for t in self.trials).encode()).hexdigest()[:16]

    @property
    def lrs(self) -> tuple[float, ...]:
        """The learning rate of each trial, in trial order."""
        return tuple(t.lr for t in self.trials)

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seed of each trial, in trial order."""
        return tuple(t.seed for t in self.trials)

    def __len__(self) -> int:
        return len(self.trials)


@dataclass(frozen=True)
class SweepPlan:
    """The spec resolved against its workload and cut into groups.

    Attributes:
        spec: the sweep spec.
        workload: the workload's defaults as resolved at planning time.
        target_losses: the spec's target losses (nats), or the workload's defaults.
        extra_steps: the spec's N, or the workload's.
        lrs: the grid's learning rates.
        batch_sizes: the grid's batch sizes, in the workload's batch unit.
        groups: the training groups, in training order (round chunk first, then batch size).
        sizing: a :class:`surge.sweep.gpu_sizing.PlanSizing` when the groups were cut to a GPU, else
            None; not compared.
    """

    spec: SweepSpec
    workload: WorkloadInfo
    target_losses: tuple[float, ...]  # the spec's targets, or the workload's defaults
    extra_steps: int  # the spec's N, or the workload's
    lrs: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    groups: tuple[TrialGroup, ...]
    sizing: Any = field(default=None, compare=False)  # a gpu_sizing.PlanSizing when groups were cut to a GPU

    @property
    def n_trials(self) -> int:
        """The number of trials in all groups."""
        return sum(len(g) for g in self.groups)

    @property
    def batch_unit(self) -> str:
        """What a batch size counts (the workload's ``batch_unit``)."""
        return self.workload.batch_unit

    def trials(self) -> list[Trial]:
        """Every trial of the plan, group by group.

        Returns:
            list of :class:`Trial`: in group order, each group's trials in their order.
        """
        return [t for g in self.groups for t in g.trials]

    def trial_config(self, batch_size: int, lr: float, seed: int) -> dict[str, Any]:
        """The full config a trial's key hashes: everything that decides its numbers.

        Device, strategy and data_dir are left out (they decide where and how, not what); a sweep
        resumed on another device reuses the finished trials.

        Args:
            batch_size: the trial's batch size, in the workload's batch unit.
            lr: the trial's learning rate.
            seed: the trial's seed (``spec.seed + round``).

        Returns:
            dict of JSON types: the key version, workload, optimizer, batch size, lr, seed, target losses,
            N, budgets and dtype, plus the branch protocol's part (:meth:`branch_config`), a user
            workload's fingerprint and ``probe_examples`` when set.
        """
        spec = self.spec
        opt = spec.optimizer
        return {
            "v": TRIAL_KEY_VERSION,
            "workload": spec.workload,
            "optimizer": opt.as_dict(),
            "batch_size": int(batch_size),
            "lr": float(lr),
            "seed": int(seed),
            "target_losses": list(self.target_losses),
            "extra_steps": int(self.extra_steps),
            "max_steps": int(spec.max_steps),
            "max_examples": None if spec.max_examples is None else int(spec.max_examples),
            "dtype": spec.dtype,
            **self.branch_config(),
            # a user workload's fingerprint: trials of a changed model or data are not reused
            **({} if self.workload.fingerprint is None else {"workload_fingerprint": self.workload.fingerprint}),
            # only when set, so that the keys of stores written before this field stay valid
            **({} if spec.probe_examples is None else {"probe_examples": int(spec.probe_examples)}),
        }

    def branch_config(self) -> dict[str, Any]:
        """The branch protocol's part of a trial key.

        The protocol, the trunk's configuration (which fixes its checkpoints: the trunk is deterministic)
        and the branches' optimizer state. Empty for the scratch protocol, so that scratch trial keys are
        those of stores written before the branch protocol.

        Returns:
            dict: ``protocol``, ``branch_version``, ``trunk`` and ``branch_optimizer_state`` for the
            branch protocol; ``{}`` for scratch.
        """
        spec = self.spec
        if spec.protocol != "branch":
            return {}
        return {
            "protocol": "branch",
            "branch_version": BRANCH_VERSION,
            "trunk": spec.trunk.to_dict(),
            "branch_optimizer_state": spec.branch_optimizer_state,
        }

    def group_config(
        self,
        group: TrialGroup,
        *,
        device: str | None = None,
        engine_workers: int | None = None,
        checkpoint_dir: str | None = None,
    ) -> GroupConfig:
        """The :class:`surge.records.GroupConfig` the engine trains a group from.

        Args:
            group: one of the plan's groups (or a part of one).
            device: the device to train on; None: the spec's.
            engine_workers: caps the processes the engine may use for the group (None: the engine decides).
            checkpoint_dir: where the branch protocol keeps its trunk checkpoints (None: not kept).

        Returns:
            GroupConfig: the group's lrs and seeds with the spec's settings; the strategy is the group's
            (GPU sizing) or else the spec's.

        Raises:
            SurgeError: the config does not validate (:class:`surge.records.GroupConfig`).
        """
        extra: dict[str, Any] = {} if engine_workers is None else {"workers": engine_workers}
        if self.spec.probe_examples is not None:
            extra["probe_examples"] = self.spec.probe_examples
        if self.spec.protocol == "branch":
            trunk = self.spec.trunk
            extra.update(
                protocol="branch",
                trunk_batch_size=trunk.batch_size,
                trunk_lr=trunk.lr,
                trunk_seed=trunk.seed,
                branch_optimizer_state=self.spec.branch_optimizer_state,
                checkpoint_dir=checkpoint_dir,
            )

        spec = self.spec
        opt = spec.optimizer
        return GroupConfig(
            workload=spec.workload,
            optimizer=opt,
            batch_size=group.batch_size,
            lrs=group.lrs,
            seeds=group.seeds,
            target_losses=self.target_losses,
            extra_steps=self.extra_steps,
            max_steps=spec.max_steps,
            max_examples=spec.max_examples,
            device=device or spec.device,
            dtype=spec.dtype,
            strategy=group.strategy or spec.strategy,
            data_dir=spec.data_dir,
            **extra,
        )

    def summary(self) -> dict[str, Any]:
        """The grid as plain types (the keys of ``surge sweep plan --json``).

        Returns:
            dict of JSON types: the spec's settings, the resolved targets and N, the grid, the number of
            groups and trials, ``workload_unavailable`` and ``gpu_sizing`` (None when not sized).
        """
        spec = self.spec
        return {
            "name": spec.name,
            "workload": spec.workload,
            "optimizer": spec.optimizer.name,
            "betas": list(spec.optimizer.betas),
            "eps": spec.optimizer.eps,
            "weight_decay": spec.optimizer.weight_decay,
            "momentum": spec.optimizer.momentum,
            "lr": list(self.lrs),
            "batch_size": list(self.batch_sizes),
            "batch_unit": self.batch_unit,
            "rounds": spec.rounds,
            "seeds": [spec.seed, spec.seed + spec.rounds - 1],
            "target_loss": list(self.target_losses),
            "target_loss_source": "spec" if spec.target_loss is not None else "workload",
            "extra_steps": self.extra_steps,
            "max_steps": spec.max_steps,
            "max_examples": spec.max_examples,
            "device": spec.device,
            "dtype": spec.dtype,
            "strategy": spec.strategy,
            "group_size": spec.group_size,
            "protocol": spec.protocol,
            "trunk": None if spec.trunk is None else spec.trunk.to_dict(),
            "branch_optimizer_state": spec.branch_optimizer_state if spec.protocol == "branch" else None,
            "groups": len(self.groups),
            "trials": self.n_trials,
            "workload_unavailable": self.workload.unavailable,
            "gpu_sizing": None if self.sizing is None else self.sizing.as_dict(),
        }


def trial_key(config: dict[str, Any]) -> str:
    """SHA-256 of a trial config's canonical JSON (sorted keys, shortest float repr).

    Args:
        config: a trial config (:meth:`SweepPlan.trial_config`), JSON types only, finite floats.

    Returns:
        str: the 64-hex-digit SHA-256.

    Raises:
        ValueError: a NaN or infinite float in ``config``.
        TypeError: a value that is not JSON-serialisable.
    """
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def resolve_workload(name: str, data_dir: str | None = None) -> WorkloadInfo:
    """The workload's defaults from the registry (``surge.workloads.get_workload``, which loads its data).

    Args:
        name: a registry name or ``"package.module:attribute"`` (a user workload, which gets a
            :func:`workload_fingerprint`).
        data_dir: where the workload finds or caches its data; None: its default.

    Returns:
        WorkloadInfo: its default targets, N, batch unit, metadata and (user workloads) fingerprint.

    Raises:
        SurgeError: an unknown workload (a ``ValueError``).
        WorkloadUnavailable: the registry cannot be imported (no torch) or the workload's data (or a
            data package) cannot be found.
    """
    try:
        from surge.workloads import get_workload
    except ImportError as exc:
        raise WorkloadUnavailable(
            f"cannot look up workload {name!r}: the workload registry does not import "
            f"({exc}); install the torch extra: pip install 'surge[torch]'"
        ) from None
    try:
        wl = get_workload(name, data_dir=data_dir)
    except KeyError as exc:
        raise SurgeError(f"unknown workload {name!r}: {exc}") from None
    except (OSError, ImportError) as exc:  # data files missing, a data package missing
        raise WorkloadUnavailable(f"workload {name!r} cannot load: {type(exc).__name__}: {exc}") from None
    return WorkloadInfo(
        name=name,
        default_targets=tuple(float(t) for t in wl.default_targets),
        extra_steps=int(wl.extra_steps),
        batch_unit=str(getattr(wl, "batch_unit", "examples")),
        metadata=to_jsonable(dict(getattr(wl, "metadata", {}) or {})),
        fingerprint=workload_fingerprint(wl) if ":" in name else None,
    )


def workload_fingerprint(wl) -> str:
    """SHA-256 (first 24 hex digits) of what decides a workload's numbers.

    Hashed: its training and probe tensors, the names, shapes and values of the model's parameters and
    buffers as ``make_model()`` builds them under seed 0, the loss function's qualified name, the model's
    class name, ``epoch_size`` and ``batch_unit``.

    A user workload ("package.module:attribute") is code the user may edit between runs of a sweep; its
    fingerprint is part of every trial key, so that trials of a changed workload are trained again rather
    than silently reused. Built-in workloads are versioned with surge and carry no fingerprint.

    Args:
        wl: a loaded :class:`surge.workloads.Workload` (imports torch).

    Returns:
        str: 24 hex digits.
    """
    import torch

    h = hashlib.sha256()
    for t in (wl.train_inputs, wl.train_targets, wl.probe_inputs, wl.probe_targets):
        t = t.detach().contiguous().cpu()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).reshape(-1).numpy().tobytes() if t.numel() else b"")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = wl.make_model()
    for name, t in list(model.state_dict().items()):
        t = t.detach().contiguous().cpu()
        h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).reshape(-1).numpy().tobytes() if t.numel() else b"")
    loss = wl.loss_fn
    h.update(f"{getattr(loss, '__module__', '')}.{getattr(loss, '__qualname__', type(loss).__name__)}".encode())
    h.update(f"{wl.epoch_size}|{getattr(wl, 'batch_unit', 'examples')}|{type(model).__qualname__}".encode())
    return h.hexdigest()[:24]


def _chunks(seq: tuple, size: int) -> list[tuple]:
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def plan_sweep(
    spec: SweepSpec,
    *,
    workload: WorkloadInfo | None = None,
    resolver: Callable[[str, str | None], WorkloadInfo] | None = None,
    strict: bool = True,
) -> SweepPlan:
    """Resolve the spec's defaults and cut the grid into groups (a pure function of its inputs).

    Args:
        spec: the sweep spec.
        workload: the workload's defaults; given, the registry is skipped (a stored sweep keeps what it
            resolved). None: resolve them.
        resolver: ``resolver(name, data_dir) -> WorkloadInfo``, replacing :func:`resolve_workload`.
        strict: False (dry runs) plans a spec that sets its own ``target_loss`` and ``extra_steps`` even
            when the workload cannot be loaded here (no torch, no data); the plan's workload then says why.

    Returns:
        SweepPlan: the resolved targets and N and the groups, ordered round chunk first, then batch size,
        then learning-rate chunk.

    Raises:
        SurgeTypeError: ``spec`` is not a :class:`SweepSpec`.
        SurgeError: an unknown workload, no target losses from the spec or the workload, workload defaults
            that fail the spec's checks, or ``max_examples`` below the largest batch size.
        WorkloadUnavailable: the workload cannot be loaded here and ``strict`` is True (or the spec lacks
            ``target_loss`` or ``extra_steps``).
    """
    if not isinstance(spec, SweepSpec):
        raise SurgeTypeError(f"spec must be a SweepSpec, got {type(spec).__name__}")
    if workload is None:
        try:
            workload = (resolver or resolve_workload)(spec.workload, spec.data_dir)
        except WorkloadUnavailable as exc:
            if strict or spec.target_loss is None or spec.extra_steps is None:
                raise
            workload = WorkloadInfo(
                name=spec.workload,
                default_targets=(),
                extra_steps=spec.extra_steps,
                batch_unit="unknown",
                unavailable=str(exc),
            )
    targets = spec.target_loss if spec.target_loss is not None else tuple(workload.default_targets)
    if not targets:
        raise SurgeError(f"workload {spec.workload!r} has no default target losses; give target_loss in the spec")
    extra = spec.extra_steps if spec.extra_steps is not None else int(workload.extra_steps)
    if spec.target_loss is None or spec.extra_steps is None:
        try:  # the workload's defaults must pass the spec's checks too (decreasing, positive)
            spec.replace(target_loss=tuple(targets), extra_steps=extra)
        except (TypeError, ValueError) as exc:
            raise SurgeError(f"workload {spec.workload!r} has unusable defaults: {exc}") from None

    lrs = spec.lrs
    batch_sizes = spec.batch_sizes
    if spec.max_examples is not None and spec.max_examples < max(batch_sizes):
        raise SurgeError(
            f"max_examples ({spec.max_examples}) must be at least the largest batch size "
            f"({max(batch_sizes)}): a trial needs one step"
        )
    cap = spec.group_size
    if len(lrs) <= cap:
        lr_chunks = [lrs]
        rounds_per_group = max(1, cap // len(lrs))
    else:
        lr_chunks = _chunks(lrs, cap)
        rounds_per_group = 1
    plan = SweepPlan(
        spec=spec,
        workload=workload,
        target_losses=tuple(targets),
        extra_steps=extra,
        lrs=lrs,
        batch_sizes=batch_sizes,
        groups=(),
    )
    groups: list[TrialGroup] = []
    for round_chunk in _chunks(tuple(range(spec.rounds)), rounds_per_group):
        for b in batch_sizes:
            for lr_chunk in lr_chunks:
                trials = []
                for r in round_chunk:
                    seed = spec.seed + r
                    for lr in lr_chunk:
                        key = trial_key(plan.trial_config(b, lr, seed))
                        trials.append(Trial(key=key, batch_size=b, lr=lr, round=r, seed=seed))
                groups.append(
                    TrialGroup(index=len(groups), batch_size=b, rounds=tuple(round_chunk), trials=tuple(trials))
                )
    return SweepPlan(
        spec=spec,
        workload=workload,
        target_losses=tuple(targets),
        extra_steps=extra,
        lrs=lrs,
        batch_sizes=batch_sizes,
        groups=tuple(groups),
    )
