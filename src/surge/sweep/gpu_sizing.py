"""GPU-aware group sizes: how many trials (lanes) of one batch size train together on one GPU.

The lockstep runner keeps every lane of a group on the device at once, so the group size a GPU can
take depends on the model, the batch size and the GPU's memory. This module holds the rule (torch-free)
and cuts a :class:`~surge.sweep.plan.SweepPlan`'s groups to fit; the bytes a lane needs come from
:mod:`surge.engine.memory` (an estimate from parameter, optimizer-state and activation sizes, or a
measured probe step on CUDA).

The rule, for one batch size B (bytes; ``P`` parameters of ``d`` bytes, ``k`` optimizer slots):

- a lane's persistent state ``s = (2 + 2k) P d``: parameters, optimizer state, and the protocol's copy
  of both at the last probe measurement (the start of a replay);
- a lane's training step adds the gradient and the activations: ``a = P d + act(B)``;
- a group pays ``fixed`` bytes once (the replay queue, a probe forward pass, the CUDA context);
- the protocol replays target crossings in batches of up to ``R`` lanes (16, fewer for big models:
  the queue holds at most 512 MiB of states) while the group's lanes wait, so a replay batch of
  ``min(L, R)`` lanes steps beside the group's state;
- the budget is ``gpu_bytes x memory_fraction x min(1, gpus_per_group)``: a fraction of a GPU per
  group (Ray's fractional ``num_gpus``) gets that fraction of its memory;
- lockstep with L lanes needs ``L s + max(L a, min(L, R) (s + a)) + fixed``; the largest L within the
  budget, capped by the spec's ``group_size``, is the group size (groups with more trials are split
  into near-equal parts);
- lockstep needs at least 2 lanes (the runner duplicates a lone lane); when 2 do not fit, the loop
  runner, which steps (and replays) one lane at a time, needs ``L s + s + a + fixed``: its groups
  take as many trials as that allows;
- when not even one lane fits, planning stops with a :class:`~surge.errors.SurgeError` naming the batch
  size and the bytes.

Splitting a group does not change any trial's numbers: a lockstep lane's trajectory is independent of
which lanes share its step (see :mod:`surge.engine.trainer`), and trial keys do not depend on groups.

Why one module of ~490 lines: the memory rule and the sizing of groups and plans on a device are one decision;
about 230 lines are code, the rest docstrings.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from surge._validation import check_scalar
from surge.errors import SurgeError

DEFAULT_MEMORY_FRACTION = 0.8  # of the GPU's memory (headroom for the allocator's fragmentation, cuDNN workspaces)
GIB = 2**30
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "sgd": 1, "lion": 1, "signsgd": 0}  # state tensors the size of the params


@dataclass(frozen=True)
class LaneMemory:
    """Device bytes of one trial (lane) at one batch size; see the module docstring for the terms.

    Attributes:
        batch_size: B, the batch size, in the workload's batch unit (examples; sequences for language models).
        n_params: P, the parameters of one model.
        dtype_bytes: d, bytes per parameter (4: float32, 8: float64).
        optimizer_slots: k, optimizer state tensors of the parameters' size (Adam: 2, SGD and Lion: 1,
            signSGD: 0).
        activation_bytes: act(B), bytes kept for the backward pass of one lane at batch size B, with headroom.
        fixed_bytes: bytes a group pays once (replay queue, probe forward pass, CUDA context).
        replay_lanes: R, the most target crossings replayed in one lockstep batch (default 16).
        source: ``"estimate"`` (from parameter and activation sizes) or ``"measured"`` (a probe step on CUDA).
    """

    batch_size: int  # B
    n_params: int  # P, parameters of one model
    dtype_bytes: int  # d, bytes per parameter (4: float32, 8: float64)
    optimizer_slots: int  # k, optimizer state tensors of the parameters' size (Adam: 2)
    activation_bytes: int  # act(B): bytes kept for the backward pass of one lane at batch size B, with headroom
    fixed_bytes: int  # bytes a group pays once (replay queue, probe forward pass, CUDA context)
    replay_lanes: int = 16  # R, most crossings replayed in one lockstep batch
    source: str = "estimate"  # "estimate" (parameter/activation sizes) or "measured" (a probe step on CUDA)

    @property
    def state_bytes(self) -> int:
        """``s``: parameters, optimizer state and their snapshot, per lane (bytes)."""
        return (2 + 2 * self.optimizer_slots) * self.n_params * self.dtype_bytes

    @property
    def step_bytes(self) -> int:
        """``a``: gradient and activations of one lane's training step (bytes)."""
        return self.n_params * self.dtype_bytes + self.activation_bytes

    def lockstep_bytes(self, lanes: int) -> int:
        """Bytes of a lockstep group of ``lanes`` lanes: ``L s + max(L a, min(L, R) (s + a)) + fixed``.

        Args:
            lanes: L, the trials in the group, an int >= 0.

        Returns:
            int: the group's device bytes.
        """
        s, a = self.state_bytes, self.step_bytes
        return lanes * s + max(lanes * a, min(lanes, self.replay_lanes) * (s + a)) + self.fixed_bytes

    def loop_bytes(self, lanes: int) -> int:
        """Bytes of a loop group of ``lanes`` trials: ``L s + s + a + fixed`` (one lane steps or replays).

        Args:
            lanes: L, the trials in the group, an int >= 0.

        Returns:
            int: the group's device bytes.
        """
        return lanes * self.state_bytes + self.state_bytes + self.step_bytes + self.fixed_bytes

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict.

        Returns:
            dict: field name -> value (ints in bytes, as the fields).
        """
        return asdict(self)


def _most_lanes(cost, budget: int, cap: int) -> int:
    """The largest L in 0..cap with ``cost(L) <= budget`` (cost increasing in L)."""
    lo, hi = 0, cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class GroupSize:
    """The sizing decision for one batch size.

    Attributes:
        batch_size: the batch size, in the workload's batch unit.
        strategy: ``"lockstep"`` or ``"loop"``: what the groups of this batch size are forced to run.
        max_lanes: the most trials per group (after the spec's ``group_size`` cap).
        fit_lanes: the trials that fit the budget with this strategy (before the cap; the search stops at
            64 x max(group_size, 2)).
        lane_bytes: bytes per lane: ``s + a`` for lockstep, ``s`` for the loop.
        group_bytes: bytes of a group of ``max_lanes``.
        budget_bytes: bytes one group may use.
        reason: one line: why this strategy and size.
    """

    batch_size: int
    strategy: str  # "lockstep" or "loop": what the groups of this batch size are forced to run
    max_lanes: int  # most trials per group (after the spec's group_size cap)
    fit_lanes: int  # trials that fit the budget with this strategy (before the cap)
    lane_bytes: int  # s + a for lockstep, s for the loop
    group_bytes: int  # bytes of a group of max_lanes
    budget_bytes: int
    reason: str  # one line: why this strategy and size

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict.

        Returns:
            dict: field name -> value.
        """
        return asdict(self)


def check_gpus_per_group(value: object) -> float | None:
    """The GPUs one group asks for, as Ray takes them: 0, a fraction in (0, 1] or a whole number; or None.

    Args:
        value: the ``--gpus-per-group`` value (Ray's ``num_gpus`` per task), or None (not given).

    Returns:
        The value as a float, or None.

    Raises:
        SurgeTypeError: not a number.
        SurgeError: negative, NaN or infinite, or a fraction above 1 (e.g. 1.5).
    """
    if value is None:
        return None
    g = check_scalar(value, "gpus_per_group", nonnegative=True)
    if g > 1 and g != int(g):
        raise SurgeError(f"gpus_per_group must be 0, a fraction in (0, 1] or a whole number of GPUs, got {value!r}")
    return g


def memory_budget(gpu_bytes: float, memory_fraction: float | None = None, gpus_per_group: float | None = None) -> int:
    """Bytes one group may use: ``gpu_bytes x memory_fraction x min(1, gpus_per_group)``.

    Args:
        gpu_bytes: the GPU's total memory, in bytes, > 0.
        memory_fraction: the fraction of the GPU's memory the sweep may use, in (0, 1]; None:
            ``DEFAULT_MEMORY_FRACTION`` (0.8).
        gpus_per_group: the GPUs each group asks for (Ray's ``num_gpus``); a fraction below 1 gets that
            fraction of the memory; None or 0: a whole GPU (see :func:`check_gpus_per_group`).

    Returns:
        int: the budget, in bytes (rounded down).

    Raises:
        SurgeError: a fraction outside (0, 1], a non-positive (or non-numeric) GPU size, or a bad
            ``gpus_per_group``.
    """
    gpus_per_group = check_gpus_per_group(gpus_per_group)
    fraction = DEFAULT_MEMORY_FRACTION if memory_fraction is None else memory_fraction
    fraction = check_scalar(fraction, "gpu_memory_fraction")
    if not 0 < fraction <= 1:
        raise SurgeError(f"gpu_memory_fraction must be in (0, 1], got {memory_fraction!r}")
    gpu_bytes = check_scalar(gpu_bytes, "GPU memory (bytes)", positive=True)
    share = 1.0 if not gpus_per_group else min(1.0, gpus_per_group)
    return int(gpu_bytes * fraction * share)


def size_group(memory: LaneMemory, budget_bytes: int, group_size: int, strategy: str = "auto") -> GroupSize:
    """The group size and runner for one batch size under a memory budget (the module's rule).

    Args:
        memory: the lane's bytes at this batch size.
        budget_bytes: bytes one group may use (:func:`memory_budget`).
        group_size: the spec's cap on trials per group, >= 1.
        strategy: the spec's strategy: ``"auto"`` (lockstep if 2 lanes fit, else the loop, the default),
            ``"lockstep"`` (an error if 2 lanes do not fit) or ``"loop"``.

    Returns:
        GroupSize: the strategy, the trials per group and the bytes, with a one-line reason.

    Raises:
        SurgeError: not even one lane fits, or a forced lockstep does not fit 2 lanes.
    """
    B = memory.batch_size

    def gib(b: float) -> str:
        return f"{b / GIB:.2f} GiB"

    search_cap = max(group_size, 2) * 64  # how far past the cap "fit" is reported
    if strategy in ("auto", "lockstep"):
        fit = _most_lanes(memory.lockstep_bytes, budget_bytes, search_cap)
        if fit >= 2:
            lanes = min(fit, group_size)
            why = f"{fit if fit < search_cap else f'{fit}+'} lockstep lanes fit {gib(budget_bytes)}" + (
                f"; capped at group_size {group_size}" if fit > group_size else ""
            )
            per = memory.state_bytes + memory.step_bytes
            return GroupSize(B, "lockstep", lanes, fit, per, memory.lockstep_bytes(lanes), budget_bytes, why)
        if strategy == "lockstep":
            raise SurgeError(
                f"strategy 'lockstep' at batch size {B}: 2 lanes need "
                f"{gib(memory.lockstep_bytes(2))}, the budget is {gib(budget_bytes)}; "
                f"use strategy 'auto' or 'loop', or a larger gpu_memory_fraction"
            )
    fit = _most_lanes(memory.loop_bytes, budget_bytes, search_cap)
    if fit < 1:
        raise SurgeError(
            f"batch size {B}: one lane needs {gib(memory.loop_bytes(1))} "
            f"({gib(memory.activation_bytes)} of activations), the GPU budget is {gib(budget_bytes)}; "
            f"use a smaller batch size, a larger gpu_memory_fraction or a larger GPU"
        )
    lanes = min(fit, group_size)
    why = (
        f"lockstep does not fit 2 lanes ({gib(memory.lockstep_bytes(2))} > {gib(budget_bytes)}): loop, "
        if strategy == "auto"
        else "strategy 'loop': "
    ) + f"{fit} trials fit"
    return GroupSize(B, "loop", lanes, fit, memory.state_bytes, memory.loop_bytes(lanes), budget_bytes, why)


def split_trials(trials: tuple, max_lanes: int) -> list[tuple]:
    """``trials`` in order, cut into ``ceil(n / max_lanes)`` consecutive parts of near-equal size.

    Args:
        trials: the group's trials (any sequence), in order.
        max_lanes: the most trials per part, >= 1.

    Returns:
        list of tuples: the parts, in order (sizes differ by at most one; the earlier parts are the
        larger); one empty tuple when ``trials`` is empty.
    """
    n = len(trials)
    parts = max(1, math.ceil(n / max_lanes))
    base, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        size = base + (i < extra)
        out.append(tuple(trials[start : start + size]))
        start += size
    return out


@dataclass(frozen=True)
class PlanSizing:
    """What GPU sizing did to a plan (printed by ``surge sweep plan``, kept on the plan).

    Attributes:
        gpu_bytes: the GPU's total memory, in bytes.
        memory_fraction: the fraction of it the sweep may use, in (0, 1].
        gpus_per_group: the GPUs each group asks for (Ray), or None.
        budget_bytes: bytes one group may use (:func:`memory_budget`).
        source: where ``gpu_bytes`` came from: ``"cuda:N"`` (this machine's GPU) or ``"given"``.
        sizes: one :class:`GroupSize` per batch size of the plan, in the plan's order.
    """

    gpu_bytes: int
    memory_fraction: float
    gpus_per_group: float | None
    budget_bytes: int
    source: str  # where gpu_bytes came from: "cuda:N" (this machine's GPU) or "given"
    sizes: tuple[GroupSize, ...]  # one per batch size

    def as_dict(self) -> dict[str, Any]:
        """The sizing as plain types (``surge sweep plan --json``'s ``gpu_sizing``).

        Returns:
            dict: ``gpu_memory_gb`` and ``budget_gb`` (GiB, 3 decimals), ``gpu_memory_fraction``,
            ``gpus_per_group``, ``gpu_memory_source`` and ``by_batch_size`` (a list of
            :meth:`GroupSize.as_dict`).
        """
        return {
            "gpu_memory_gb": round(self.gpu_bytes / GIB, 3),
            "gpu_memory_fraction": self.memory_fraction,
            "gpus_per_group": self.gpus_per_group,
            "budget_gb": round(self.budget_bytes / GIB, 3),
            "gpu_memory_source": self.source,
            "by_batch_size": [s.as_dict() for s in self.sizes],
        }


def size_plan(
    plan,
    memory: dict[int, LaneMemory],
    gpu_bytes: int,
    *,
    memory_fraction: float | None = None,
    gpus_per_group: float | None = None,
    source: str = "given",
):
    """A copy of ``plan`` whose groups fit the GPU: split where too big, the loop where lockstep cannot fit.

    Groups keep their order; a group cut in parts becomes consecutive groups (renumbered). Each group
    carries the strategy the rule chose (``TrialGroup.strategy``), which its engine config then forces.

    Args:
        plan: the :class:`~surge.sweep.plan.SweepPlan` to size.
        memory: each batch size of the plan -> its :class:`LaneMemory`.
        gpu_bytes: the GPU's total memory, in bytes, > 0.
        memory_fraction: the fraction of the GPU's memory the sweep may use, in (0, 1]; None: 0.8.
        gpus_per_group: the GPUs each group asks for (Ray); below 1, that fraction of the memory; None: 1.
        source: where ``gpu_bytes`` came from, kept on :class:`PlanSizing` (``"cuda:N"`` or ``"given"``).

    Returns:
        SweepPlan: a copy of ``plan`` with the new groups and ``sizing`` set to a :class:`PlanSizing`.

    Raises:
        SurgeError: a bad fraction or GPU size (:func:`memory_budget`), a batch size missing from
            ``memory``, or a batch size that does not fit (:func:`size_group`).
    """
    from surge.sweep.plan import TrialGroup

    budget = memory_budget(gpu_bytes, memory_fraction, gpus_per_group)
    missing = [b for b in plan.batch_sizes if b not in memory]
    if missing:
        raise SurgeError(f"lane memory is missing for batch sizes {missing}")
    sizes = {b: size_group(memory[b], budget, plan.spec.group_size, plan.spec.strategy) for b in plan.batch_sizes}
    groups = []
    for g in plan.groups:
        size = sizes[g.batch_size]
        for part in split_trials(g.trials, size.max_lanes):
            groups.append(
                TrialGroup(
                    index=len(groups),
                    batch_size=g.batch_size,
                    rounds=tuple(sorted({t.round for t in part})),
                    trials=part,
                    strategy=size.strategy,
                )
            )
    sizing = PlanSizing(
        gpu_bytes=int(gpu_bytes),
        memory_fraction=DEFAULT_MEMORY_FRACTION if memory_fraction is None else float(memory_fraction),
        gpus_per_group=gpus_per_group,
        budget_bytes=budget,
        source=source,
        sizes=tuple(sizes[b] for b in plan.batch_sizes),
    )
    return replace(plan, groups=tuple(groups), sizing=sizing)


def cuda_memory_bytes(device: str) -> int | None:
    """Total memory of this machine's GPU ``device`` in bytes, or None when there is no CUDA here.

    Args:
        device: a torch device string, ``"cuda"`` (GPU 0) or ``"cuda:N"``.

    Returns:
        int or None: the GPU's total memory in bytes; None when torch does not import or CUDA is not
        available.
    """
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    index = torch.device(device).index
    return int(torch.cuda.get_device_properties(0 if index is None else index).total_memory)


def size_plan_for_device(
    plan,
    *,
    memory_fraction: float | None = None,
    gpu_memory_gb: float | None = None,
    gpus_per_group: float | None = None,
    measure: bool = False,
):
    """:func:`size_plan` with the lane memory of the plan's workload (:mod:`surge.engine.memory`).

    The GPU's size is ``gpu_memory_gb`` when given (planning for another machine, or a Ray driver
    without a GPU), else this machine's CUDA device (the spec's ``cuda[:N]``, or ``"cuda"`` for a CPU
    spec). Imports torch and loads the workload.

    Args:
        plan: the :class:`~surge.sweep.plan.SweepPlan` to size.
        memory_fraction: the fraction of the GPU's memory the sweep may use, in (0, 1]; None: 0.8.
        gpu_memory_gb: the GPU's memory in GiB, > 0; None: ask this machine's CUDA device.
        gpus_per_group: the GPUs each group asks for (Ray); below 1, that fraction of the memory; None: 1.
        measure: True measures a probe step on the spec's CUDA device instead of estimating.

    Returns:
        SweepPlan: the sized copy (:func:`size_plan`).

    Raises:
        SurgeError: a non-positive ``gpu_memory_gb``, no ``gpu_memory_gb`` and no CUDA GPU here, a bad
            fraction, an unknown optimizer (:func:`lane_memory`), a batch size that does not fit, or
            ``measure=True`` without CUDA on the spec's device.
    """
    if gpu_memory_gb is not None:
        check_scalar(gpu_memory_gb, "gpu_memory_gb", positive=True)
        gpu_bytes, source = int(gpu_memory_gb * GIB), "given"
    else:
        device = plan.spec.device if plan.spec.device.startswith("cuda") else "cuda"
        gpu_bytes, source = cuda_memory_bytes(device), device
        if gpu_bytes is None:
            raise SurgeError(
                f"device {plan.spec.device!r}: this machine has no CUDA GPU to size the groups for; "
                f"give gpu_memory_gb (--gpu-memory GB), the memory of the workers' GPUs"
            )
    memory_budget(gpu_bytes, memory_fraction, gpus_per_group)  # a bad fraction fails before the workload loads
    memory = {
        b: lane_memory(
            plan.spec.workload,
            b,
            optimizer=plan.spec.optimizer.name,
            dtype=plan.spec.dtype,
            data_dir=plan.spec.data_dir,
            measure_on=plan.spec.device if measure else None,
        )
        for b in plan.batch_sizes
    }
    return size_plan(
        plan, memory, gpu_bytes, memory_fraction=memory_fraction, gpus_per_group=gpus_per_group, source=source
    )


def lane_memory(
    workload: str,
    batch_size: int,
    *,
    optimizer: str = "adam",
    dtype: str = "float32",
    data_dir: str | None = None,
    measure_on: str | None = None,
) -> LaneMemory:
    """The :class:`LaneMemory` of ``workload`` at ``batch_size`` (imports torch and the workload).

    Estimated from the model's parameter count and the bytes autograd saves for one lane's backward
    pass (:func:`surge.engine.memory.activation_bytes`), or, with ``measure_on="cuda[:i]"``, from a
    lockstep step measured on that GPU (:func:`surge.engine.memory.measure_lane_bytes`).

    Args:
        workload: a registry name or ``"package.module:attribute"``.
        batch_size: the batch size, in the workload's batch unit, >= 1.
        optimizer: one of ``OPTIMIZER_SLOTS``' names (``"adam"``, ``"adamw"``, ``"sgd"``, ``"lion"``,
            ``"signsgd"``); sets the optimizer slots k.
        dtype: the parameter dtype, e.g. ``"float32"`` or ``"float64"``.
        data_dir: where the workload finds its data; None: its default.
        measure_on: a CUDA device (``"cuda"`` or ``"cuda:i"``) to measure a step on; None: estimate.

    Returns:
        LaneMemory: the lane's bytes, ``source`` ``"estimate"`` or ``"measured"``.

    Raises:
        SurgeError: an unknown optimizer, or ``measure_on`` without CUDA (from
            :func:`~surge.engine.memory.measure_lane_bytes`); loading the workload raises as
            :func:`surge.workloads.get_workload` does.
    """
    from surge.engine import memory as engine_memory

    if optimizer not in OPTIMIZER_SLOTS:
        raise SurgeError(f"optimizer must be one of {', '.join(OPTIMIZER_SLOTS)}, got {optimizer!r}")
    facts = engine_memory.lane_facts(workload, batch_size, dtype=dtype, data_dir=data_dir)
    slots = OPTIMIZER_SLOTS[optimizer]
    activation, source = facts["activation_bytes"], "estimate"
    if measure_on is not None:
        measured = engine_memory.measure_lane_bytes(
            workload, batch_size, optimizer=optimizer, dtype=dtype, data_dir=data_dir, device=measure_on
        )
        # the measured step holds parameters, gradient, optimizer state and activations of one lane
        activation = max(0, measured - (2 + slots) * facts["n_params"] * facts["dtype_bytes"])
        source = "measured"
    return LaneMemory(
        batch_size=batch_size,
        n_params=facts["n_params"],
        dtype_bytes=facts["dtype_bytes"],
        optimizer_slots=slots,
        activation_bytes=activation,
        fixed_bytes=facts["fixed_bytes"],
        replay_lanes=facts["replay_lanes"],
        source=source,
    )
