"""How a group is trained: the probe interval, the strategy (lockstep or loop) and the worker processes."""

from __future__ import annotations

import math
import multiprocessing as mp
import os

import torch

from surge.engine.trainer import _seeded_model, lockstep_supported
from surge.errors import SurgeError
from surge.records import GroupConfig
from surge.workloads import Workload


def probe_interval(batch_size: int, probe_size: int) -> int:
    """Steps between probe measurements: ``probe_size / (B + 8)`` rounded to a power of two, at least 1.

    Measured for the CNN (1,024 probe examples, one thread): a probe measurement of one trial costs
    about 18 lockstep steps at B = 1, 15 at B = 4, 9 at B = 16 and 3 at B = 64 (a plain forward pass of
    the probe set; the step cost grows like B + 8, the 8 standing for the fixed per-step overhead). With
    k = probe_size / (B + 8) the measurements cost 15-30 % of training at every batch size, and finding
    S in an interval costs log2(k) more measurements and <= k replayed steps per target.

    Args:
        batch_size: the batch size B, in examples (>= 1; not checked).
        probe_size: the number of probe examples measured.

    Returns:
        The interval k in steps, an int: 1 when ``probe_size / (B + 8)`` < 1.5, else
        ``2**round(log2(probe_size / (B + 8)))``.
    """
    raw = probe_size / (batch_size + 8)
    return 1 if raw < 1.5 else 2 ** int(round(math.log2(raw)))


def choose_strategy(config: GroupConfig, workload: Workload, n_trials: int | None = None) -> str:
    """The strategy ``"auto"`` picks, or the forced one after checking it can run.

    Lockstep when the model can be vmapped, at least 2 trials share the group, and (on the CPU) the
    batch size is at most ``workload.lockstep_max_batch``; a plain loop otherwise. Measured on this
    machine for the CNN: lockstep is 2-2.5x a per-trial loop at B <= 4 and about 1.4x at B = 16, even at
    B = 32 and slower from B = 64 on (vmap batches convolutions as grouped convolutions, which at large
    batches run below the plain kernels). On CUDA, ``"auto"`` picks lockstep whatever the batch size.

    Args:
        config: the group; its ``strategy`` (``"auto"``, ``"lockstep"`` or ``"loop"``), ``device`` and
            ``batch_size`` decide.
        workload: the group's workload (its model is built with seed 0 to check it can be vmapped).
        n_trials: the number of trials that share the runs; None: ``config.n_trials``.

    Returns:
        ``"lockstep"`` or ``"loop"``.

    Raises:
        SurgeError: ``config.strategy`` is ``"lockstep"`` and the model cannot be vmapped (see
            :func:`surge.engine.trainer.lockstep_supported`).
        SurgeTypeError: the workload's ``make_model()`` does not return a ``torch.nn.Module``.
    """
    n = config.n_trials if n_trials is None else n_trials
    if config.strategy != "auto":
        if config.strategy == "lockstep":
            ok, why = lockstep_supported(_seeded_model(workload, 0))
            if not ok:
                raise SurgeError(f"strategy 'lockstep' cannot run workload {workload.name!r}: {why}; use 'loop'")
        return config.strategy
    ok, _ = lockstep_supported(_seeded_model(workload, 0))
    if not ok or n < 2:
        return "loop"
    if torch.device(config.device).type == "cuda":
        return "lockstep"
    return "lockstep" if config.batch_size <= workload.lockstep_max_batch else "loop"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def resolve_workers(config: GroupConfig, strategy: str) -> int:
    """Worker processes for the group: ``config.workers``, or one per core when the group is big enough.

    One process per core, each single-threaded, beats one multi-threaded process for these small models
    at every batch size measured. Groups of under ~2e5 example-steps run in this process (a worker costs
    ~2 s to start once per process pool). A child process (a pool worker of a caller) runs its groups
    in-process. The workers are 'spawn'ed: a script that calls ``run_group`` must do so under
    ``if __name__ == "__main__":``, and a user workload must be importable.

    Args:
        config: the group; ``device``, ``workers``, ``n_trials``, ``step_budget`` and ``batch_size`` decide.
        strategy: ``"lockstep"`` (each worker gets at least 2 trials) or ``"loop"``.

    Returns:
        The number of processes, an int >= 1: 1 on a non-CPU device or in a child process; else
        ``config.workers`` (or, when None, 1 if trials x step budget x (B + 8) < 2e5, else one per usable
        core), capped at the number of trials (half of it for lockstep).
    """
    n = config.n_trials
    if torch.device(config.device).type != "cpu" or mp.current_process().daemon or mp.parent_process() is not None:
        return 1  # not on a GPU, and never a pool inside a child process
    if config.workers is not None:
        want = config.workers
    else:
        work = n * config.step_budget * (config.batch_size + 8)
        want = 1 if work < 200_000 else _cores()
    most = n // 2 if strategy == "lockstep" else n
    return max(1, min(want, most))


def _chunks(n: int, workers: int) -> list[list[int]]:
    """Trials dealt round-robin to the workers (so fast and slow learning rates mix in every chunk)."""
    return [list(range(c, n, workers)) for c in range(workers)]
