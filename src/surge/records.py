"""The shared vocabulary: what crosses a boundary between the planner, the engine, the store and the analysis.

Torch-free, plain frozen dataclasses, defined once:

- :class:`OptimizerConfig`: the optimizer and its settings (a sweep spec's ``[optimizer]`` section, the
  engine's optimizer, the store's optimizer columns).
- :class:`GroupConfig`: one group of trials the planner hands the engine (one workload, optimizer and
  batch size; learning rates x rounds).
- :class:`StageRecord` and :class:`TrialRecord`: what the engine returns per trial and target loss, and
  what the store writes.
- The name lists: :data:`OPTIMIZERS`, :data:`STRATEGIES`, :data:`DTYPES`, :data:`STATUSES`.

The store's columns come from these records (:data:`OPTIMIZER_COLUMNS`, :data:`STAGE_COLUMNS`,
:data:`TRIAL_RESULT_COLUMNS`), so a field added here is a column there.

Vocabulary (the paper's): a *trial* is one (workload, optimizer, batch size, lr, seed) run; a *round*
is one seed over the whole grid; a *stage* is one target loss; ``extra_steps`` is the paper's N.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from surge._validation import check_choice, check_int, check_scalar, type_name
from surge.errors import SurgeError, SurgeTypeError

OPTIMIZERS = ("adam", "adamw", "sgd", "signsgd", "lion")  # the engine's functional optimizers
STRATEGIES = ("auto", "lockstep", "loop")  # how the engine trains a group's lanes
DTYPES = ("float32", "float64")
STATUSES = ("ok", "diverged", "failed")  # of a stored trial
PROTOCOLS = ("scratch", "branch")  # how a trial measures: from scratch (the paper's) or from trunk checkpoints
BRANCH_VERSION = 2  # in branch trial keys and checkpoint files; bump when the branch protocol's numbers change
BRANCH_OPTIMIZER_STATES = ("reset", "carry")  # a branch's optimizer state: fresh, or the trunk's at the checkpoint
FINISHED = ("ok", "diverged")  # statuses a rerun does not retrain
MAX_TRIALS = 1_000_000  # trials of one sweep, or trajectories of one simulation: refused before any is made
_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def _pair(value: object, name: str) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise SurgeTypeError(f"{name} must be an array, got {value!r} ({type_name(value)})")
    if len(value) != 2:
        raise SurgeError(f"{name} must have 2 elements (beta1, beta2), got {len(value)}: {list(value)}")
    return tuple(value)


def _sequence(value: object, name: str) -> tuple:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise SurgeTypeError(f"{name} must be a sequence, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer every trial of a sweep uses; its learning rate is per trial.

    ``name="adam"`` with ``betas=(0, 0)`` is the sign update the paper's theory covers (Eq 29).

    Attributes:
        name: one of :data:`OPTIMIZERS`; default ``"adam"``.
        betas: the Adam / AdamW / Lion moment coefficients (beta1, beta2), each in [0, 1); default
            (0.9, 0.999).
        eps: Adam's denominator epsilon, >= 0; default 1e-8.
        weight_decay: decoupled (adamw, signsgd, lion) or L2 (adam, sgd) weight decay, >= 0; default 0.
        momentum: SGD / signSGD momentum, in [0, 1); default 0.

    Raises:
        SurgeError: a field out of range or an unknown ``name`` (checked on construction).
        SurgeTypeError: ``betas`` not a list or tuple, or a non-numeric value.
    """

    name: str = "adam"  # one of OPTIMIZERS
    betas: tuple[float, float] = (0.9, 0.999)  # Adam / AdamW / Lion moment coefficients, each in [0, 1)
    eps: float = 1e-8  # Adam's denominator epsilon, >= 0
    weight_decay: float = 0.0  # decoupled (adamw, signsgd, lion) or L2 (adam, sgd) weight decay, >= 0
    momentum: float = 0.0  # SGD / signSGD momentum in [0, 1)

    def __post_init__(self) -> None:
        check_choice(self.name, "optimizer.name", OPTIMIZERS)
        betas = _pair(self.betas, "optimizer.betas")
        betas = tuple(
            check_scalar(b, f"optimizer.betas[{i}]", nonnegative=True, below=1.0) for i, b in enumerate(betas)
        )
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "eps", check_scalar(self.eps, "optimizer.eps", nonnegative=True))
        object.__setattr__(
            self, "weight_decay", check_scalar(self.weight_decay, "optimizer.weight_decay", nonnegative=True)
        )
        object.__setattr__(
            self, "momentum", check_scalar(self.momentum, "optimizer.momentum", nonnegative=True, below=1.0)
        )

    def as_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (betas as a list): what trial keys and stores keep.

        Returns:
            dict[str, Any]: ``name``, ``betas`` (a list of 2 floats), ``eps``, ``weight_decay``, ``momentum``.
        """
        return {
            "name": self.name,
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
        }

    def columns(self) -> dict[str, Any]:
        """The store's and the tidy frame's optimizer columns (:data:`OPTIMIZER_COLUMNS`).

        Returns:
            dict[str, Any]: ``optimizer`` (the name), ``beta1``, ``beta2``, ``eps``, ``weight_decay``,
            ``momentum``, in the order of :data:`OPTIMIZER_COLUMNS`.
        """
        return {
            "optimizer": self.name,
            "beta1": self.betas[0],
            "beta2": self.betas[1],
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
        }

    @property
    def label(self) -> str:
        """Short text for reports, e.g. ``adam(betas=(0, 0))``."""
        if self.name in ("adam", "adamw", "lion"):
            return f"{self.name}(betas=({self.betas[0]:g}, {self.betas[1]:g}))"
        if self.name in ("sgd", "signsgd") and self.momentum:
            return f"{self.name}(momentum={self.momentum:g})"
        return self.name


@dataclass(frozen=True)
class GroupConfig:
    """A group of trials that share a workload, an optimizer configuration and a batch size.

    What the planner (:meth:`surge.sweep.plan.SweepPlan.group_config`) hands the engine
    (:func:`surge.engine.run_group`). Trials with equal seed share initial weights and batch order.

    Attributes:
        workload: the workload's registry name or ``"package.module:attribute"``.
        optimizer: the optimizer configuration every trial uses.
        batch_size: B, a positive integer, in the workload's batch unit.
        lrs: one learning rate (> 0) per trial.
        seeds: one seed (>= 0) per trial, as many as ``lrs``.
        target_losses: the stages, strictly decreasing.
        extra_steps: N, the steps after each target over which the loss decrease is measured, >= 0.
        max_steps: the step budget, >= 1; a target not reached within it is censored.
        max_examples: the budget in examples (E), >= ``batch_size``; the smaller of the two applies; None:
            no such budget.
        device: ``"cpu"`` or ``"cuda[:i]"``.
        dtype: one of :data:`DTYPES` (``"float64"`` for the equality tests).
        strategy: one of :data:`STRATEGIES`.
        data_dir: where the workload finds / downloads its data; None: the workload's default.
        workers: CPU worker processes, >= 1; None: one per core when the group is big enough.
        probe_interval: steps between probe measurements, a power of two; None: automatic.
        divergence_factor: a trial has diverged when the probe loss exceeds this times its initial value, > 0.
        probe_examples: measure on the first this-many probe examples only, >= 1; None: all.
        protocol: one of :data:`PROTOCOLS`: ``"scratch"`` (the paper's) or ``"branch"``
            (:mod:`surge.engine.branch`: a trunk trains to each target, branches run N steps from there).
        trunk_batch_size: the trunk's batch size (branch protocol only; required there).
        trunk_lr: the trunk's learning rate, > 0 (branch protocol only; required there).
        trunk_seed: the trunk's initial weights and data order, >= 0.
        branch_optimizer_state: one of :data:`BRANCH_OPTIMIZER_STATES`: a branch's optimizer state fresh
            (``"reset"``) or the trunk's at the checkpoint (``"carry"``).
        checkpoint_dir: where trunk checkpoints are kept (branch protocol); None: not kept.

    Raises:
        SurgeTypeError: an empty or non-string ``workload``; ``optimizer`` not an :class:`OptimizerConfig`;
            ``lrs``, ``seeds`` or ``target_losses`` not a sequence; a value of the wrong type.
        SurgeError: a field out of range (see above), ``lrs`` empty or not as long as ``seeds``, no target
            losses or not strictly decreasing, a bad ``device``, or ``protocol="branch"`` without
            ``trunk_batch_size`` and ``trunk_lr``.
    """

    workload: str  # registry name or "package.module:attribute"
    optimizer: OptimizerConfig
    batch_size: int
    lrs: tuple[float, ...]  # one per trial
    seeds: tuple[int, ...]  # one per trial
    target_losses: tuple[float, ...]  # strictly decreasing: the stages
    extra_steps: int  # N: steps after each target over which the loss decrease is measured
    max_steps: int  # budget; a target not reached within it is censored
    max_examples: int | None = None  # budget in examples (E); the smaller of the two applies
    device: str = "cpu"  # "cpu" or "cuda[:i]"
    dtype: str = "float32"  # one of DTYPES ("float64" for the equality tests)
    strategy: str = "auto"  # one of STRATEGIES
    data_dir: str | None = None  # where the workload finds / downloads its data
    workers: int | None = None  # CPU worker processes; None = one per core when the group is big enough
    probe_interval: int | None = None  # steps between probe measurements (power of two); None = automatic
    divergence_factor: float = 10.0  # diverged when the probe loss exceeds this times its initial value
    probe_examples: int | None = None  # measure on the first this-many probe examples only; None = all
    # the branch protocol (surge.engine.branch): a trunk trains to each target, branches run N steps from there
    protocol: str = "scratch"  # one of PROTOCOLS
    trunk_batch_size: int | None = None  # the trunk's batch size (branch protocol only)
    trunk_lr: float | None = None  # the trunk's learning rate (branch protocol only)
    trunk_seed: int = 0  # the trunk's initial weights and data order
    branch_optimizer_state: str = "reset"  # one of BRANCH_OPTIMIZER_STATES
    checkpoint_dir: str | None = None  # where trunk checkpoints are kept (branch protocol); None: not kept

    def __post_init__(self) -> None:
        if not isinstance(self.workload, str) or not self.workload:
            raise SurgeTypeError(f"workload must be a non-empty string, got {self.workload!r}")
        if not isinstance(self.optimizer, OptimizerConfig):
            raise SurgeTypeError(f"optimizer must be an OptimizerConfig, got {type(self.optimizer).__name__}")
        check_int(self.batch_size, "batch_size", minimum=1)
        lrs = tuple(check_scalar(x, "lrs element", positive=True) for x in _sequence(self.lrs, "lrs"))
        seeds = tuple(check_int(s, "seeds element", minimum=0) for s in _sequence(self.seeds, "seeds"))
        if not lrs:
            raise SurgeError("lrs must hold at least one learning rate")
        if len(lrs) != len(seeds):
            raise SurgeError(
                f"lrs and seeds must have the same length (one per trial); got {len(lrs)} and {len(seeds)}"
            )
        targets = tuple(
            check_scalar(x, "target_losses element") for x in _sequence(self.target_losses, "target_losses")
        )
        if not targets:
            raise SurgeError("target_losses must hold at least one target loss")
        if any(not b < a for a, b in zip(targets, targets[1:])):
            raise SurgeError(f"target_losses must be strictly decreasing, got {targets}")
        object.__setattr__(self, "lrs", lrs)
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "target_losses", targets)
        check_int(self.extra_steps, "extra_steps", minimum=0)
        check_int(self.max_steps, "max_steps", minimum=1)
        if self.max_examples is not None:
            check_int(self.max_examples, "max_examples", minimum=self.batch_size)
        check_choice(self.dtype, "dtype", DTYPES)
        check_choice(self.strategy, "strategy", STRATEGIES)
        if not isinstance(self.device, str) or not _DEVICE_RE.match(self.device):
            raise SurgeError(f"device must be 'cpu' or 'cuda[:i]', got {self.device!r}")
        if self.workers is not None:
            check_int(self.workers, "workers", minimum=1)
        if self.probe_interval is not None:
            k = check_int(self.probe_interval, "probe_interval", minimum=1)
            if k & (k - 1):
                raise SurgeError(f"probe_interval must be a power of two, got {k}")
        check_scalar(self.divergence_factor, "divergence_factor", positive=True)
        if self.probe_examples is not None:
            check_int(self.probe_examples, "probe_examples", minimum=1)
        check_choice(self.protocol, "protocol", PROTOCOLS)
        check_choice(self.branch_optimizer_state, "branch_optimizer_state", BRANCH_OPTIMIZER_STATES)
        check_int(self.trunk_seed, "trunk_seed", minimum=0)
        if self.protocol == "branch":
            if self.trunk_batch_size is None or self.trunk_lr is None:
                raise SurgeError("protocol 'branch' needs trunk_batch_size and trunk_lr (the trunk's configuration)")
            check_int(self.trunk_batch_size, "trunk_batch_size", minimum=1)
            check_scalar(self.trunk_lr, "trunk_lr", positive=True)

    @property
    def n_trials(self) -> int:
        """The trials of the group (one per learning rate / seed pair)."""
        return len(self.lrs)

    @property
    def step_budget(self) -> int:
        """Steps within which a target must be reached: ``max_steps``, and ``max_examples // batch_size``."""
        if self.max_examples is None:
            return self.max_steps
        return min(self.max_steps, self.max_examples // self.batch_size)


@dataclass(frozen=True)
class StageRecord:
    """One target loss (stage) of one trial (the paper's protocol, Section 3).

    Attributes:
        target_loss: the stage's target loss.
        reached: whether the probe loss reached the target; False = censored (budget hit first, or the
            trial diverged first).
        steps: S, the first step at which the probe loss <= target; None when not reached.
        examples: E = batch_size * steps; None when not reached.
        loss_at_target: the probe loss at step S.
        loss_after: the probe loss exactly ``extra_steps`` steps later (None if the trial ended first).
        loss_decrease: ``loss_at_target - loss_after``, the decrease the optimum is read from.
    """

    target_loss: float
    reached: bool  # False = censored (budget hit first, or the trial diverged first)
    steps: int | None  # S: first step at which the probe loss <= target
    examples: int | None  # E = batch_size * steps
    loss_at_target: float | None  # the probe loss at step S
    loss_after: float | None  # probe loss exactly extra_steps steps later (None if the trial ended first)
    loss_decrease: float | None  # loss_at_target - loss_after


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a group, as the engine returns it and the store writes it.

    Attributes:
        lr: the trial's learning rate.
        seed: the trial's seed (its round).
        status: ``"ok"`` or ``"diverged"`` (the store adds ``"failed"`` for groups that raised).
        stages: one :class:`StageRecord` per target loss, in order.
        steps_run: the steps of the main run (replays not counted).
        diverged_at_step: the step at which the trial diverged; None when it did not.
        strategy: ``"lockstep"`` or ``"loop"``, what actually ran.
        wall_seconds: the group's wall time divided evenly over its trials, in seconds.
        initial_loss: the probe loss at step 0.
        final_loss: the probe loss at the last measurement of the main run.
    """

    lr: float
    seed: int
    status: str  # "ok" | "diverged" (the store adds "failed" for groups that raised)
    stages: tuple[StageRecord, ...]  # one per target loss, in order
    steps_run: int  # steps of the main run (replays not counted)
    diverged_at_step: int | None
    strategy: str  # "lockstep" | "loop" (what actually ran)
    wall_seconds: float  # the group's wall time divided evenly
    initial_loss: float | None = None  # probe loss at step 0
    final_loss: float | None = None  # probe loss at the last measurement of the main run


def _names(cls: type, *, drop: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in drop)


# The store's columns, from the records. The optimizer's betas are stored as two columns.
OPTIMIZER_COLUMNS = ("optimizer", "beta1", "beta2", "eps", "weight_decay", "momentum")
STAGE_COLUMNS = _names(StageRecord)
TRIAL_RESULT_COLUMNS = ("status", "steps_run", "diverged_at_step", "strategy", "wall_seconds")
assert set(TRIAL_RESULT_COLUMNS) <= set(_names(TrialRecord)), "TRIAL_RESULT_COLUMNS must be TrialRecord fields"
assert tuple(OptimizerConfig().columns()) == OPTIMIZER_COLUMNS, "OptimizerConfig.columns() and OPTIMIZER_COLUMNS"
