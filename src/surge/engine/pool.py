"""The engine's worker processes: a 'spawn' pool of single-threaded processes, kept between groups, each
training a round-robin chunk of a group's trials; progress comes back over a queue."""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import threading
import time

import torch

from surge._parent_watch import die_with_parent
from surge.engine._alloc import configure_allocator
from surge.engine.bisect import _Chunk, _Record
from surge.engine.schedule import _chunks
from surge.records import GroupConfig
from surge.workloads import get_workload

_POOL = None
_POOL_SIZE = 0
_QUEUE = None
_WORKER_QUEUE = None
_POOL_LOCK = threading.Lock()


def _worker_init(q) -> None:
    """Worker start-up: one torch thread, Ctrl-C handled by the parent alone, death with the parent."""
    global _WORKER_QUEUE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    configure_allocator()
    torch.set_num_threads(1)
    _WORKER_QUEUE = q


def _worker_run(config: GroupConfig, strategy: str, trials: list[int], tag: tuple) -> dict[int, _Record]:
    workload = get_workload(config.workload, config.data_dir)
    chunk = _Chunk(config, workload, strategy)
    last = [0.0]

    def report(done: int) -> None:
        now = time.monotonic()
        if _WORKER_QUEUE is not None and now - last[0] > 0.5:
            last[0] = now
            _WORKER_QUEUE.put((tag, done))

    out: dict[int, _Record] = {}
    if strategy == "lockstep":
        out.update(chunk.run(trials, report))
    else:
        for done_before, t in enumerate(trials):
            out.update(chunk.run([t], lambda d, b=done_before * config.step_budget: report(b + d)))
    return out


def _pool(size: int):
    global _POOL, _POOL_SIZE, _QUEUE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE != size:
            shutdown_workers()
            ctx = mp.get_context("spawn")
            _QUEUE = ctx.Queue()
            _POOL = ctx.Pool(size, initializer=_worker_init, initargs=(_QUEUE,))
            _POOL_SIZE = size
        return _POOL, _QUEUE


def shutdown_workers() -> None:
    """Stop the engine's worker processes (they are kept between groups; also done at exit)."""
    global _POOL, _POOL_SIZE, _QUEUE
    if _POOL is not None:
        _POOL.terminate()
        _POOL.join()
    _POOL, _POOL_SIZE, _QUEUE = None, 0, None


atexit.register(shutdown_workers)


def run_in_workers(config, strategy, workers, progress, total) -> dict[int, _Record]:
    """Train the group's trials in the worker pool, dealt round-robin into ``workers`` chunks.

    The pool (``workers`` 'spawn'ed single-threaded processes) is started, or restarted at another size,
    and kept for later groups. Progress reports come back over a queue, at most every 0.5 s per chunk.

    Args:
        config: the group (a :class:`~surge.records.GroupConfig`).
        strategy: ``"lockstep"`` (each chunk in one runner) or ``"loop"`` (the chunk's trials one by one).
        workers: the number of worker processes and chunks, >= 1.
        progress: ``progress(done, total)`` called with the trial-steps done so far (capped at
            ``total``), or None.
        total: the trial-steps of the whole group (trials x step budget), passed on to ``progress``.

    Returns:
        A dict: trial index (0-based, in ``config.lrs`` order) -> that trial's internal record.

    Raises:
        RuntimeError: a worker process died (out of memory?) before its chunk finished.
        Exception: whatever a worker raised, re-raised here. On any error (and on ``KeyboardInterrupt``)
            the pool is shut down first.
    """
    pool, q = _pool(workers)
    call = (os.getpid(), time.monotonic_ns())
    chunks = _chunks(config.n_trials, workers)
    pids = {p.pid for p in pool._pool}
    pending = [pool.apply_async(_worker_run, (config, strategy, c, (call, i))) for i, c in enumerate(chunks)]
    done_by_chunk = [0] * len(chunks)
    records: dict[int, _Record] = {}
    try:
        while pending:
            try:
                tag, done = q.get(timeout=0.2)
                if tag[0] == call:
                    done_by_chunk[tag[1]] = done
                    if progress is not None:
                        progress(min(sum(done_by_chunk), total), total)
            except queue_mod.Empty:
                pass
            still = []
            for r in pending:
                if r.ready():
                    records.update(r.get())
                else:
                    still.append(r)
            pending = still
            if pending and {p.pid for p in pool._pool} != pids:  # a worker died: its task would never finish
                raise RuntimeError("an engine worker process died (out of memory?); the group was not finished")
    except BaseException:
        shutdown_workers()
        raise
    return records
