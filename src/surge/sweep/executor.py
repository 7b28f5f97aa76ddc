"""The executor: trains a plan's pending groups, in this process or in worker processes, into a store.

It knows nothing of the CLI: progress goes to a callback as :class:`SweepProgress` events. It knows
nothing of torch either: a *runner* trains a group, by default ``surge.engine.run_group`` (imported
only when a group is about to train, so planning and status work without torch).

- A group whose runner raises (or returns results that do not fit the group) is recorded as failed,
  every trial of it with the error text and traceback, and the sweep goes on. A rerun retries it.
- A trial the engine reports as diverged is recorded as ``diverged``: finished, not retried.
- A KeyboardInterrupt (Ctrl-C) stops the sweep: groups already written stay in the store, the running
  ones are dropped whole, and :func:`run_sweep` returns with ``interrupted=True``. Running the same
  command again resumes.
- With ``workers > 1`` groups train in that many 'spawn' processes, each with single-threaded torch
  (one core each beats a shared pool of threads for the small models of the paper's grids).

Why one module of ~500 lines: running in this process and in a worker pool share the pending-group selection,
the failure recording and the Ctrl-C contract above; the Ray executor is its own module.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback as tb_module
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from surge._validation import check_int
from surge.errors import SurgeError
from surge.sweep.plan import SweepPlan, TrialGroup, WorkloadInfo, plan_sweep
from surge.sweep.spec import SweepSpec
from surge.sweep.store import FINISHED, SweepStore

DEFAULT_RUNNER = "surge.engine:run_group"

Runner = Union[Callable[..., Any], str]


@dataclass(frozen=True)
class SweepProgress:
    """One progress event. ``event`` is "start", "group_start", "step", "group_done" or "end".

    Attributes:
        event: ``"start"``, ``"group_start"``, ``"step"``, ``"group_done"`` or ``"end"``.
        trials_total: the trials the sweep plans.
        trials_done: the finished trials (ok + diverged) in the store, earlier runs' included.
        trials_failed: the trials whose latest attempt failed.
        groups_total: the groups this run has to train.
        groups_done: of those, how many are written (finished or failed).
        group: the group the event is about (``"group_*"`` and ``"step"`` events), else None.
        group_fraction: the progress of that group, 0..1 (``"step"`` events; single-process runs only).
        error: for the ``"group_done"`` event of a failed group, its error text; else None.
    """

    event: str
    trials_total: int  # trials the sweep plans
    trials_done: int  # finished trials (ok + diverged) in the store, including earlier runs'
    trials_failed: int  # trials whose latest attempt failed
    groups_total: int  # groups this run has to train
    groups_done: int  # of those, how many are written (finished or failed)
    group: TrialGroup | None = None  # the group the event is about ("group_*", "step")
    group_fraction: float = 0.0  # progress of that group, 0..1 ("step" events; single-process runs only)
    error: str | None = None  # "group_done" of a failed group: its error


@dataclass(frozen=True)
class RunSummary:
    """What one call of :func:`run_sweep` did.

    Attributes:
        store: the store's path.
        sweep: the spec's name.
        sweep_id: the sweep's id in the store.
        total: the trials the sweep plans.
        skipped: the trials finished before this run (not retrained).
        ran: the trials trained (or attempted) by this run.
        ok: of those, the ones that finished normally.
        diverged: of those, the ones that diverged.
        failed: of those, the ones that failed (recorded with their error).
        done: the sweep's finished trials (ok + diverged) after this run, earlier runs' included.
        failed_total: the sweep's trials whose latest attempt failed, after this run.
        pending: the sweep's trials never attempted (``total = done + failed_total + pending``).
        interrupted: True when stopped by Ctrl-C before the end.
        wall_seconds: the run's wall-clock time, in seconds.
    """

    store: str
    sweep: str  # the spec's name
    sweep_id: int
    total: int  # trials the sweep plans
    skipped: int  # finished before this run (not retrained)
    ran: int  # trials trained (or attempted) by this run
    ok: int  # of those, finished normally
    diverged: int  # of those, diverged
    failed: int  # of those, failed (recorded with their error)
    done: int  # the sweep's finished trials (ok + diverged) after this run, earlier runs' included
    failed_total: int  # the sweep's trials whose latest attempt failed, after this run
    pending: int  # the sweep's trials never attempted (total = done + failed_total + pending)
    interrupted: bool  # stopped by Ctrl-C before the end
    wall_seconds: float


def resolve_runner(runner: Runner | None) -> Callable[..., Any]:
    """A runner callable from a callable, a "package.module:attribute" string, or None (the engine).

    Args:
        runner: a callable (returned as is), a ``"package.module:attribute"`` string (imported), or None
            for ``DEFAULT_RUNNER`` (``"surge.engine:run_group"``, which imports torch).

    Returns:
        Callable: ``runner(config, progress=...)``, training one group.

    Raises:
        SurgeError: not a callable nor a string with ``":"``, a module that does not import, a missing
            attribute, or an attribute that is not callable.
    """
    if runner is None:
        runner = DEFAULT_RUNNER
    if callable(runner):
        return runner
    if not isinstance(runner, str) or ":" not in runner:
        raise SurgeError(f"runner must be a callable or 'package.module:attribute', got {runner!r}")
    module_name, _, attr = runner.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SurgeError(f"runner {runner!r}: cannot import {module_name!r}: {exc}") from None
    try:
        fn = getattr(module, attr)
    except AttributeError:
        raise SurgeError(f"runner {runner!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(fn):
        raise SurgeError(f"runner {runner!r} is not callable")
    return fn


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _init_worker() -> None:
    """Worker start-up: one thread per worker, Ctrl-C handled by the parent alone, death with the parent."""
    from surge._parent_watch import die_with_parent

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()


def _worker_run(runner: Runner, config: Any) -> tuple:
    """Train one group in a worker; never raises (the error travels back as text)."""
    try:
        fn = resolve_runner(runner)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
        return ("ok", fn(config))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a failed group
        return ("error", _error_text(exc), tb_module.format_exc())


def _pending(plan: SweepPlan, statuses: dict[str, str], retry_failed: bool) -> list[TrialGroup]:
    """The groups (or, after a spec change, the unfinished parts of groups) still to train."""
    out = []
    for group in plan.groups:
        todo = tuple(
            t
            for t in group.trials
            if statuses.get(t.key) not in FINISHED and (retry_failed or statuses.get(t.key) != "failed")
        )
        if not todo:
            continue
        if len(todo) < len(group.trials):
            group = TrialGroup(
                index=group.index,
                batch_size=group.batch_size,
                rounds=tuple(sorted({t.round for t in todo})),
                trials=todo,
                strategy=group.strategy,
            )
        out.append(group)
    return out


def run_sweep(
    spec: SweepSpec | SweepPlan,
    store: SweepStore | str | Path,
    *,
    runner: Runner | None = None,
    workers: int = 1,
    progress: Callable[[SweepProgress], None] | None = None,
    retry_failed: bool = True,
    workload: WorkloadInfo | None = None,
    executor: str = "local",
    address: str | None = None,
    gpus_per_group: float | None = None,
    cpus_per_group: float | None = None,
    max_retries: int | None = None,
    gpu_memory_fraction: float | None = None,
    gpu_memory_gb: float | None = None,
) -> RunSummary:
    """Train the sweep's pending groups into ``store`` and return what was done.

    ``runner(config, progress=callback)`` trains one group (a ``surge.engine.GroupConfig``) and returns
    one ``TrialRecord`` per trial, in order; a "package.module:attribute" string names one (required
    form for ``workers > 1`` unless the callable pickles). ``workload`` skips the workload registry.

    ``executor="ray"`` trains each group as a Ray task (:mod:`surge.sweep.ray_executor`) on the cluster
    at ``address`` (None: a Ray instance in this process; "auto"; "ray://HOST:PORT"), each asking for
    ``cpus_per_group`` CPUs and ``gpus_per_group`` GPUs, retried ``max_retries`` times when its worker
    dies; this process still writes the store. On CUDA the groups are cut to the lanes that fit
    ``gpu_memory_fraction`` of the GPU (:mod:`surge.sweep.gpu_sizing`; ``gpu_memory_gb`` when this
    process cannot see the GPU).

    A group whose runner raises is recorded as failed and the sweep goes on; Ctrl-C stops it with
    ``interrupted=True`` (the groups written stay). The store is held under :meth:`SweepStore.exclusive`.

    Args:
        spec: the sweep spec, or a plan already made (then ``workload`` is not used).
        store: an open :class:`SweepStore` (left open), or the path of one (opened, created if missing,
            and closed).
        runner: a callable or ``"package.module:attribute"``; None: ``surge.engine:run_group``.
        workers: local processes training groups at once, >= 1; 1 trains in this process.
        progress: called with each :class:`SweepProgress` event; None: no progress.
        retry_failed: True retrains trials whose last attempt failed; False leaves them failed.
        workload: the workload's defaults, skipping the registry (only when ``spec`` is a spec).
        executor: ``"local"`` (this process or ``workers`` processes) or ``"ray"``.
        address: the Ray cluster (``executor="ray"`` only): None, ``"auto"``, ``"local"``, ``"HOST:PORT"``
            or ``"ray://HOST:PORT"``.
        gpus_per_group: GPUs each Ray task asks for: 0, a fraction in (0, 1] or a whole number; None: 1 on
            CUDA, 0 on the CPU. Below 1 it also shrinks the GPU memory budget (``executor="ray"`` only).
        cpus_per_group: CPUs each Ray task asks for, > 0; None: 1 (``executor="ray"`` only).
        max_retries: Ray reruns of a task whose worker died, >= 0; None: 3 (``executor="ray"`` only).
        gpu_memory_fraction: the fraction of the GPU's memory the groups may use, in (0, 1]; None: 0.8.
        gpu_memory_gb: the GPU's memory in GiB when this process cannot see it; given, the plan is sized
            even for a CPU spec.

    Returns:
        RunSummary: what this run trained and the sweep's totals after it.

    Raises:
        SurgeError: a bad ``workers``, ``executor``, Ray option, runner, GPU size or memory fraction; Ray
            options with ``executor="local"``; a batch size that does not fit the GPU; a runner that does
            not pickle with ``workers > 1``; Ray not installed or unreachable; a store that cannot be
            opened or is in use by another sweep; the planning errors of
            :func:`~surge.sweep.plan.plan_sweep`.
        WorkloadUnavailable: the workload cannot be loaded here (no torch, no data).
    """
    check_int(workers, "workers", minimum=1)
    if executor not in ("local", "ray"):
        raise SurgeError(f"executor must be 'local' or 'ray', got {executor!r}")
    if executor == "local" and (address, gpus_per_group, cpus_per_group, max_retries) != (None,) * 4:
        raise SurgeError("address, gpus_per_group, cpus_per_group and max_retries apply to executor='ray' only")
    plan = spec if isinstance(spec, SweepPlan) else plan_sweep(spec, workload=workload)
    if plan.spec.device.startswith("cuda") or gpu_memory_gb is not None:
        from surge.sweep.gpu_sizing import size_plan_for_device

        plan = size_plan_for_device(
            plan, memory_fraction=gpu_memory_fraction, gpu_memory_gb=gpu_memory_gb, gpus_per_group=gpus_per_group
        )
    ray_options = None
    if executor == "ray":
        from surge.sweep.ray_executor import DEFAULT_MAX_RETRIES, check_address, check_resources

        retries = DEFAULT_MAX_RETRIES if max_retries is None else max_retries
        check_resources(cpus_per_group, gpus_per_group, retries)
        ray_options = dict(
            address=check_address(address),
            cpus_per_group=cpus_per_group,
            gpus_per_group=gpus_per_group,
            max_retries=retries,
        )
    own_store = not isinstance(store, SweepStore)
    st = SweepStore(store) if own_store else store
    try:
        with st.exclusive():
            return _run(
                plan,
                st,
                runner=runner,
                workers=workers,
                progress=progress,
                retry_failed=retry_failed,
                ray_options=ray_options,
            )
    finally:
        if own_store:
            st.close()


class _Tally:
    def __init__(self, plan: SweepPlan, statuses: dict[str, str], n_groups: int):
        keys = {t.key for t in plan.trials()}
        self.total = plan.n_trials
        self.done = sum(1 for k in keys if statuses.get(k) in FINISHED)
        self.failed = sum(1 for k in keys if statuses.get(k) == "failed")
        self.skipped = self.done
        self.groups_total = n_groups
        self.groups_done = 0
        self.ran = self.ok = self.diverged = self.failed_now = 0
        self.statuses = statuses

    def event(self, name: str, group: TrialGroup | None = None, fraction: float = 0.0, error: str | None = None):
        return SweepProgress(
            event=name,
            trials_total=self.total,
            trials_done=self.done,
            trials_failed=self.failed,
            groups_total=self.groups_total,
            groups_done=self.groups_done,
            group=group,
            group_fraction=fraction,
            error=error,
        )

    def finish(self, group: TrialGroup, results: list | None) -> None:
        self.groups_done += 1
        self.ran += len(group.trials)
        for i, t in enumerate(group.trials):
            was_failed = self.statuses.get(t.key) == "failed"
            status = "failed" if results is None else results[i].status
            self.statuses[t.key] = status
            if status == "failed":
                self.failed_now += 1
                self.failed += not was_failed
            else:
                self.ok += status == "ok"
                self.diverged += status == "diverged"
                self.done += 1
                self.failed -= was_failed


def _run(
    plan: SweepPlan, store: SweepStore, *, runner, workers, progress, retry_failed, ray_options=None
) -> RunSummary:
    t0 = time.perf_counter()
    sweep_id = store.register_sweep(plan)
    statuses = store.trial_statuses()
    pending = _pending(plan, statuses, retry_failed)
    tally = _Tally(plan, dict(statuses), len(pending))
    emit = progress or (lambda _event: None)
    device = plan.spec.device

    def record(group: TrialGroup, outcome: tuple) -> None:
        if outcome[0] == "ok":
            try:
                store.record_trials(sweep_id, plan, group.trials, group.key, results=outcome[1], device=device)
                tally.finish(group, list(outcome[1]))
                emit(tally.event("group_done", group))
                return
            except (ValueError, TypeError, AttributeError) as exc:  # results that do not fit the group
                outcome = ("error", _error_text(exc), tb_module.format_exc())
        store.record_trials(
            sweep_id, plan, group.trials, group.key, error=outcome[1], traceback=outcome[2], device=device
        )
        tally.finish(group, None)
        emit(tally.event("group_done", group, error=outcome[1]))

    emit(tally.event("start"))
    interrupted = False
    if pending:
        # Fail fast (not once per group) when the engine or its config type cannot be imported.
        # With several groups at once, each group trains in its own process alone (no engine workers).
        engine_workers = None if workers == 1 else 1
        if ray_options is not None:  # a Ray task uses the CPUs it asked for
            engine_workers = max(1, int(ray_options["cpus_per_group"] or 1))
        checkpoints = str(store.path) + ".checkpoints" if plan.spec.protocol == "branch" else None
        configs = {
            g.index: plan.group_config(g, device=device, engine_workers=engine_workers, checkpoint_dir=checkpoints)
            for g in pending
        }
        if ray_options is not None:
            from surge.sweep.ray_executor import run_groups_on_ray

            resolve_runner(runner)  # a bad name is a usage error, not N failed groups
            interrupted = run_groups_on_ray(
                runner or DEFAULT_RUNNER,
                pending,
                configs,
                record,
                lambda g: emit(tally.event("group_start", g)),
                device=device,
                **ray_options,
            )
        elif workers == 1:
            fn = resolve_runner(runner)
            interrupted = _run_here(fn, pending, configs, record, tally, emit)
        else:
            resolve_runner(runner)  # a bad name is a usage error, not N failed groups
            if callable(runner):
                try:
                    pickle.dumps(runner)
                except Exception as exc:  # noqa: BLE001
                    raise SurgeError(
                        f"with workers > 1 the runner must pickle (a module-level function, or "
                        f"'package.module:attribute'); {runner!r} does not: {exc}"
                    ) from None
            interrupted = _run_pool(runner or DEFAULT_RUNNER, pending, configs, record, tally, emit, workers)
    emit(tally.event("end"))
    return RunSummary(
        store=str(store.path),
        sweep=plan.spec.name,
        sweep_id=sweep_id,
        total=tally.total,
        skipped=tally.skipped,
        ran=tally.ran,
        ok=tally.ok,
        diverged=tally.diverged,
        failed=tally.failed_now,
        done=tally.done,
        failed_total=tally.failed,
        pending=tally.total - tally.done - tally.failed,
        interrupted=interrupted,
        wall_seconds=time.perf_counter() - t0,
    )


def _run_here(fn, pending, configs, record, tally, emit) -> bool:
    """Train the groups one after another in this process; True if interrupted."""
    for group in pending:
        emit(tally.event("group_start", group))
        last = [0.0]

        def on_step(done: int, total: int, group=group, last=last) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.1 and total:
                last[0] = now
                emit(tally.event("step", group, fraction=min(1.0, max(0.0, done / total))))

        try:
            try:
                results = fn(configs[group.index], progress=on_step)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - a group that raises is recorded as failed
                record(group, ("error", _error_text(exc), tb_module.format_exc()))
                continue
            record(group, ("ok", results))
        except KeyboardInterrupt:
            return True
    return False


def _terminate(pool: ProcessPoolExecutor) -> None:
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
    else:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            if proc.is_alive():
                proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _run_pool(runner, pending, configs, record, tally, emit, workers) -> bool:
    """Train the groups in ``workers`` spawned processes, at most one queued group per worker."""
    ctx = multiprocessing.get_context("spawn")
    queue = list(pending)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)
    in_flight: dict = {}
    try:
        while queue or in_flight:
            while queue and len(in_flight) < workers:
                group = queue.pop(0)
                emit(tally.event("group_start", group))
                in_flight[pool.submit(_worker_run, runner, configs[group.index])] = group
            done, _ = wait(list(in_flight), timeout=0.5, return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                group = in_flight.pop(fut)
                try:
                    outcome = fut.result()
                except BrokenProcessPool as exc:
                    broken = True
                    outcome = ("error", f"worker process died while training this group ({_error_text(exc)})", "")
                except Exception as exc:  # noqa: BLE001 - e.g. a result that does not pickle
                    outcome = ("error", _error_text(exc), "")
                record(group, outcome)
            if broken:  # the pool is unusable: start a fresh one for what is left
                for fut, group in list(in_flight.items()):
                    record(group, ("error", "worker pool broke while training this group", ""))
                in_flight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)
    except KeyboardInterrupt:
        _terminate(pool)
        return True
    pool.shutdown(wait=True)
    return False
