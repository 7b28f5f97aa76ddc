"""The Ray executor: each pending group of a sweep is one Ray task; this process stays the store's writer.

:func:`surge.sweep.executor.run_sweep` with ``executor="ray"`` calls :func:`run_groups_on_ray` with
the groups still to train. Each group becomes one Ray task that asks for ``cpus_per_group`` CPUs and
``gpus_per_group`` GPUs (fractional values share a GPU between groups). The task runs the same
``runner(config)`` as a local worker process and returns the results; the *driver* (this process)
writes them into the SQLite store through the executor's ``record`` callback, so nothing on a worker
needs the store's file, the store and its resume behaviour are those of the local executor, and a
sweep can move between executors between runs.

Failures:

- A worker process that dies (SIGKILL, out of memory, a node lost) fails its task at the system
  level; Ray reruns it up to ``max_retries`` times. A group whose retries are used up is recorded as
  failed, like a local group that raised, and a rerun of the sweep retries it.
- A runner that raises inside the task is not retried by Ray: the error travels back and the group is
  recorded as failed (as with local workers).
- A group is recorded at most once per run: results are matched to groups by the group's key, and a
  second result for a key already recorded (a duplicate from a re-executed task) is dropped. The
  store never overwrites a finished trial either.
- The driver dying (SIGKILL, a lost laptop) loses only the groups in flight: Ray cancels the tasks of
  a dead driver's job, and running the same command again resumes from the store.
- Ctrl-C cancels every task in flight (force-killing their workers) and returns ``interrupted=True``;
  the groups already written stay.

``ray`` is imported only here, and only when a Ray sweep starts: ``pip install 'surge[ray]'``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from surge._validation import check_int, check_scalar
from surge.errors import SurgeError
from surge.sweep.gpu_sizing import check_gpus_per_group

DEFAULT_MAX_RETRIES = 3  # Ray reruns a task whose worker died this many times before the group fails
_TASK_PREFIX = "surge-group-"  # task names (a task's worker process is titled "ray::surge-group-<index>")


def import_ray():
    """The ``ray`` module, or a :class:`SurgeError` saying how to install it.

    Returns:
        module: the imported ``ray``.

    Raises:
        SurgeError: ``ray`` does not import here.
    """
    try:
        import ray
    except ImportError as exc:
        raise SurgeError(
            f"executor 'ray' needs the ray package, which does not import here ({exc}); "
            f"install it with: pip install 'surge[ray]'"
        ) from None
    return ray


def check_address(address: str | None) -> str | None:
    """Check a Ray address: ``None``, ``"auto"``, ``"local"``, ``"HOST:PORT"`` or ``"ray://HOST:PORT"``.

    Args:
        address: None (a local Ray instance) or the address to check; surrounding whitespace is dropped.

    Returns:
        str or None: the stripped address, or None.

    Raises:
        SurgeError: an empty or non-string address, or one of none of these forms (a port outside 1..65535).
    """
    if address is None:
        return None
    if not isinstance(address, str) or not address.strip():
        raise SurgeError(f"address must be 'auto', 'local', 'HOST:PORT' or 'ray://HOST:PORT', got {address!r}")
    address = address.strip()
    if address in ("auto", "local"):
        return address
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SurgeError(f"address must be 'auto', 'local', 'HOST:PORT' or 'ray://HOST:PORT', got {address!r}")
    return address


def check_resources(cpus_per_group: float | None, gpus_per_group: float | None, max_retries: int) -> None:
    """Validate the per-task resource requests (one line naming the bad argument).

    Args:
        cpus_per_group: CPUs per task, > 0, or None.
        gpus_per_group: GPUs per task: 0, a fraction in (0, 1] or a whole number, or None.
        max_retries: Ray reruns of a task whose worker died, an int >= 0.

    Raises:
        SurgeError: a value outside these ranges (or a bool, or not a number).
    """
    if cpus_per_group is not None:
        check_scalar(cpus_per_group, "cpus_per_group", positive=True)
    check_gpus_per_group(gpus_per_group)
    check_int(max_retries, "max_retries", minimum=0)


def task_resources(device: str, cpus_per_group: float | None, gpus_per_group: float | None) -> tuple[float, float]:
    """``(num_cpus, num_gpus)`` of one group's task: 1 CPU, and 1 GPU on CUDA (0 on the CPU), unless given.

    Args:
        device: the sweep's device, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        cpus_per_group: CPUs per task; None: 1.
        gpus_per_group: GPUs per task; None: 1 on CUDA, 0 on the CPU.

    Returns:
        tuple of two floats: ``(num_cpus, num_gpus)``.

    Raises:
        SurgeError: a CUDA device with ``gpus_per_group`` 0.
    """
    cpus = 1.0 if cpus_per_group is None else float(cpus_per_group)
    if gpus_per_group is None:
        gpus = 1.0 if device.startswith("cuda") else 0.0
    else:
        gpus = float(gpus_per_group)
    if device.startswith("cuda") and gpus == 0:
        raise SurgeError(
            f"device {device!r} needs a GPU per group: give gpus_per_group > 0 "
            f"(a fraction such as 0.5 lets two groups share a GPU), got {gpus_per_group!r}"
        )
    return cpus, gpus


def _ray_task(runner: Any, config: Any) -> tuple:
    """The body of one group's task, on a Ray worker: ``(outcome, info)``; never raises for a runner error."""
    from surge.sweep.executor import _worker_run

    started = time.time()
    outcome = _worker_run(runner, config)
    info = {"pid": os.getpid(), "host": os.uname().nodename, "started": started, "seconds": time.time() - started}
    return outcome, info


def _ray_config(config: Any) -> Any:
    """Inside a Ray task, CUDA_VISIBLE_DEVICES holds the task's GPUs: 'cuda:N' becomes 'cuda'."""
    device = getattr(config, "device", "cpu")
    if isinstance(device, str) and device.startswith("cuda:"):
        import dataclasses

        return dataclasses.replace(config, device="cuda")
    return config


def run_groups_on_ray(
    runner: Any,
    pending: Sequence[Any],
    configs: dict[int, Any],
    record: Callable[[Any, tuple], None],
    started: Callable[[Any], None],
    *,
    device: str = "cpu",
    address: str | None = None,
    cpus_per_group: float | None = None,
    gpus_per_group: float | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    max_in_flight: int | None = None,
    on_result: Callable[[Any, dict], None] | None = None,
) -> bool:
    """Train ``pending`` groups as Ray tasks; record each result in this process. True if interrupted.

    Ray is initialised here (and shut down at the end) when it is not initialised yet.

    Args:
        runner: the runner to call on the workers: a "package.module:attribute" string (importable there)
            or a callable that Ray can pickle.
        pending: the groups (``TrialGroup``) to train, in submission order.
        configs: the groups' engine configs by group index; a ``"cuda:N"`` device becomes ``"cuda"`` in
            the task (Ray sets its ``CUDA_VISIBLE_DEVICES``).
        record: ``record(group, outcome)`` writes a group into the store; ``outcome`` is
            ``("ok", results)`` or ``("error", text, traceback)``. Called here (the driver), once per group
            at most.
        started: ``started(group)`` when a group's task is submitted (progress: "group_start").
        device: the sweep's device, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (decides the default GPUs).
        address: ``None`` starts (or reuses) a Ray instance in this process; ``"auto"`` joins the cluster
            this machine belongs to; ``"HOST:PORT"`` or ``"ray://HOST:PORT"`` (through Ray Client) connects
            to one. Used only when Ray is not initialized yet.
        cpus_per_group: CPUs each task asks for (default 1).
        gpus_per_group: GPUs each task asks for (default 1 on CUDA, 0 on the CPU).
        max_retries: Ray's ``max_retries`` for a task whose worker process dies (default 3).
        max_in_flight: most tasks submitted at once (default: twice the cluster's slots for one task, at
            least 2).
        on_result: ``on_result(group, info)`` with the worker's pid, host, start time and seconds
            (diagnostics); None: not called.

    Returns:
        bool: True if interrupted (Ctrl-C cancelled the tasks in flight), else False.

    Raises:
        SurgeError: Ray is not installed or cannot connect, a bad address or resource request, a CUDA
            device with no GPU per group, or a cluster with fewer GPUs than one task asks for.
    """
    check_resources(cpus_per_group, gpus_per_group, max_retries)
    address = check_address(address)
    num_cpus, num_gpus = task_resources(device, cpus_per_group, gpus_per_group)
    ray = import_ray()
    own = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if address is not None:
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            raise SurgeError(f"address {address!r}: cannot connect to a Ray cluster ({exc})") from None
        own = True
    try:
        return _drive(
            ray,
            runner,
            pending,
            configs,
            record,
            started,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            max_retries=max_retries,
            max_in_flight=max_in_flight,
            on_result=on_result,
        )
    finally:
        if own:
            ray.shutdown()


def _slots(ray, num_cpus: float, num_gpus: float) -> int:
    """How many tasks of this size the cluster can run at once (at least 1)."""
    total = ray.cluster_resources()
    n = int(total.get("CPU", 1) // num_cpus) if num_cpus > 0 else 1 << 20
    if num_gpus > 0:
        n = min(n, int(total.get("GPU", 0) // num_gpus))
    return max(1, n)


def _drive(
    ray, runner, pending, configs, record, started, *, num_cpus, num_gpus, max_retries, max_in_flight, on_result
) -> bool:
    if num_gpus > 0 and ray.cluster_resources().get("GPU", 0) < num_gpus:
        raise SurgeError(
            f"gpus_per_group={num_gpus:g}: the Ray cluster has "
            f"{ray.cluster_resources().get('GPU', 0):g} GPUs; start its nodes with GPUs "
            f"(ray start ... --num-gpus N) or run on the CPU"
        )
    if max_in_flight is None:
        max_in_flight = max(2, 2 * _slots(ray, num_cpus, num_gpus))
    remote = ray.remote(_ray_task)
    queue = list(pending)
    in_flight: dict[Any, Any] = {}  # ObjectRef -> group
    recorded: set[str] = set()  # group keys written by this run
    try:
        while queue or in_flight:
            while queue and len(in_flight) < max_in_flight:
                group = queue.pop(0)
                options = dict(
                    num_cpus=num_cpus,
                    num_gpus=num_gpus,
                    max_retries=max_retries,
                    retry_exceptions=False,
                    name=f"{_TASK_PREFIX}{group.index}",
                )
                ref = remote.options(**options).remote(runner, _ray_config(configs[group.index]))
                in_flight[ref] = group
                started(group)
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
            for ref in done:
                group = in_flight.pop(ref)
                try:
                    outcome, info = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - retries used up, a lost node, an unpicklable result
                    outcome, info = ("error", _ray_error(exc, max_retries), ""), {}
                if group.key in recorded:  # a duplicate result for a group already written
                    continue
                recorded.add(group.key)
                if on_result is not None and info:
                    on_result(group, info)
                record(group, outcome)
    except KeyboardInterrupt:
        for ref in in_flight:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or its worker already gone
                pass
        return True
    return False


def _ray_error(exc: BaseException, max_retries: int) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    if len(text) > 500:
        text = text[:497] + "..."
    name = type(exc).__name__
    if "WorkerCrashed" in name or "NodeDied" in name or "OutOfMemory" in name:
        return f"the Ray worker training this group died {max_retries + 1} times ({text})"
    return text
