"""The trial protocol of the paper (Section 3) and ``run_group``, the engine's one entry point.

A *group* is the set of trials that share a workload, an optimizer configuration and a batch size B:
learning rates x rounds (seeds). For each trial, from scratch:

1. Train with its (B, lr, seed). The seed fixes the initial weights (torch's generator is seeded with it
   just before ``make_model()``) and the order of the training examples (an independent permutation per
   epoch, drawn from the seed): trials of one round share both, across learning rates *and* batch sizes
   (a batch size only changes how many examples of the same stream make a step).
2. The loss is the mean loss on a fixed probe subset of the training set (the workload's), the same
   examples for every trial. For each target loss (strictly decreasing), S is the first step whose probe
   loss is <= the target, and E = B * S.
3. From S, exactly N = ``extra_steps`` more steps; the probe loss there, and the decrease
   ``loss_at_target - loss_after``.
4. A target not reached within the budget (``max_steps``, and ``max_examples`` // B) is *censored*
   (``reached=False``), never dropped.
5. A trial whose training loss turns NaN/inf, or whose probe loss exceeds ``divergence_factor`` times
   its initial probe loss, is *diverged*: its targets not yet reached are censored and it stops; its
   siblings go on.

How the first step is found without measuring every step. The probe loss is measured every k steps
(k a power of two, from ``probe_interval``; see :func:`probe_interval`). A measurement at step s that
finds the loss <= a target while the one at s - k did not starts a *replay*: the trial's state at s - k
(kept from that measurement) is stepped again with the same batches and the interval is bisected,
log2(k) probe measurements, <= k replayed steps, to the step S where the probe loss goes from above
the target to at or below it; then N more steps from S give ``loss_after``. Crossings are queued and
replayed 16 at a time (lockstep) or at once (loop): their intervals all have length k and halve alike,
so they are bisected together in one lockstep batch, each lane on its own batches. The replayed
trajectory is the main one bit for bit (see :mod:`surge.engine.trainer`). Resolution: S is exact when
the probe loss is monotone within that interval; if it dips below the target and back within an
interval, S is the crossing that the interval's bisection finds (never later than the measurement
that saw the target reached, never earlier than the previous one).
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from surge.engine._alloc import configure_allocator
from surge.engine.bisect import _Chunk, _Record
from surge.engine.data import DataOrder  # noqa: F401  (re-exported)
from surge.engine.pool import run_in_workers, shutdown_workers  # noqa: F401  (re-exported)
from surge.engine.schedule import choose_strategy, probe_interval, resolve_workers  # noqa: F401  (re-exported)
from surge.errors import SurgeError, SurgeTypeError
from surge.records import GroupConfig, TrialRecord
from surge.workloads import get_workload


def run_group(config: GroupConfig, *, progress: Callable[[int, int], None] | None = None) -> list[TrialRecord]:
    """Train every trial of the group; results in the order of ``config.lrs``/``config.seeds``.

    A group with ``protocol="branch"`` runs the branch protocol instead (:mod:`surge.engine.branch`).

    ``progress(done, total)`` is called now and then with trial-steps of the main runs: ``total`` is
    trials x step budget, and a finished trial counts as its whole budget. Deterministic on CPU: the
    same GroupConfig gives bit-identical results (all but ``wall_seconds``), whatever ``workers`` is.

    Args:
        config: the group: workload, optimizer, batch size, one learning rate and seed per trial, target
            losses, budget, device, strategy, workers (see :class:`~surge.records.GroupConfig`).
        progress: ``progress(done, total)``, both in trial-steps; called with ``(0, total)`` first and
            ``(total, total)`` last; None: no reports.

    Returns:
        A list of TrialRecord, one per trial, in the order of ``config.lrs``/``config.seeds``, each with
        one stage per target loss; ``wall_seconds`` is the group's wall time divided by the number of trials.

    Raises:
        SurgeTypeError: ``config`` is not a GroupConfig, or the workload's model is not an ``nn.Module``.
        SurgeError: the workload cannot be loaded (:func:`surge.workloads.get_workload`); strategy
            ``"lockstep"`` is forced for a model it cannot batch; a CUDA device is asked for where CUDA
            is not available; (branch protocol) a checkpoint file was written for
            another trunk.
        RuntimeError: an engine worker process died before the group finished.
    """
    if not isinstance(config, GroupConfig):
        raise SurgeTypeError(f"config must be a GroupConfig, got {type(config).__name__}")
    if torch.device(config.device).type == "cuda" and not torch.cuda.is_available():
        raise SurgeError(f"device {config.device!r} was asked for, but CUDA is not available here; use device='cpu'")
    if config.protocol == "branch":
        from surge.engine.branch import run_branch_group

        return run_branch_group(config, progress=progress)
    configure_allocator()
    started = time.perf_counter()
    workload = get_workload(config.workload, config.data_dir)
    strategy = choose_strategy(config, workload)
    workers = resolve_workers(config, strategy)
    n, total = config.n_trials, config.n_trials * config.step_budget
    if progress is not None:
        progress(0, total)
    records: dict[int, _Record] = {}
    if workers == 1:
        threads = torch.get_num_threads()
        if torch.device(config.device).type == "cpu":
            # One thread per process: the same bits as in the single-threaded workers, and intra-op
            # threads collapse when the cores are shared (measured: 12x slower under load at B = 8).
            torch.set_num_threads(1)
        try:
            chunk = _Chunk(config, workload, strategy)
            done_before = 0
            if strategy == "loop":
                for t in range(n):
                    rep = None if progress is None else (lambda d, b=done_before: progress(b + d, total))
                    records.update(chunk.run([t], rep))
                    done_before += config.step_budget
            else:
                rep = None if progress is None else (lambda d: progress(d, total))
                records.update(chunk.run(list(range(n)), rep))
        finally:
            torch.set_num_threads(threads)
    else:
        records = run_in_workers(config, strategy, workers, progress, total)
    wall = time.perf_counter() - started
    if progress is not None:
        progress(total, total)
    return [
        TrialRecord(
            lr=config.lrs[t],
            seed=config.seeds[t],
            status=records[t].status,
            stages=tuple(records[t].stages),
            steps_run=records[t].steps_run,
            diverged_at_step=records[t].diverged_at,
            strategy=strategy,
            wall_seconds=wall / n,
            initial_loss=records[t].initial,
            final_loss=records[t].last,
        )
        for t in range(n)
    ]
