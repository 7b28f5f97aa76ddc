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

import math
import multiprocessing as mp
import os
import queue as queue_mod
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from surge._validation import check_int
from surge.engine._alloc import configure_allocator
from surge.engine.optim import build_optimizer
from surge.engine.trainer import RUNNERS, Lanes, _seeded_model, lockstep_supported
from surge.errors import SurgeError, SurgeTypeError
from surge.records import GroupConfig, StageRecord, TrialRecord
from surge.workloads import Workload, get_workload

REPLAY_BYTES = 512 * 2**20  # queued replay states are flushed beyond this much memory


# ---- data order ------------------------------------------------------------------------------------


class DataOrder:
    """The example stream of one seed: epoch after epoch, each an independent permutation of 0..n-1.

    With ``epoch_size`` m, an epoch is the first m entries of its permutation (m random examples, no
    repeats within the epoch); ``None`` means all n. Step t (1-based) of batch size B takes stream
    positions ``(t-1)*B .. t*B - 1``.
    """

    def __init__(self, seed: int, n: int, epoch_size: int | None = None) -> None:
        self.seed, self.n = int(seed), int(n)
        self.size = self.n if epoch_size is None else check_int(epoch_size, "epoch_size", minimum=1)
        if self.size > self.n:
            raise SurgeError(f"epoch_size must be at most the number of examples ({self.n}), got {self.size}")
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        perm = self._perms.get(epoch)
        if perm is None:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch * 7_919 + 0x5EED) % (2**63))
            perm = torch.randperm(self.n, generator=g)
            if self.size < self.n:
                perm = perm[: self.size]
            if len(self._perms) >= 4:
                self._perms.pop(min(self._perms))
            self._perms[epoch] = perm
        return perm

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        start, m = (step - 1) * batch_size, self.size
        epoch = start // m
        if (start + batch_size - 1) // m == epoch:  # within one epoch: a slice
            offset = start - epoch * m
            return self._perm(epoch)[offset : offset + batch_size]
        pos = torch.arange(start, start + batch_size)
        epochs = pos // m
        out = torch.empty(batch_size, dtype=torch.long)
        for e in torch.unique(epochs).tolist():
            mask = epochs == e
            out[mask] = self._perm(e)[pos[mask] % m]
        return out


# ---- schedule and strategy -------------------------------------------------------------------------


def probe_interval(batch_size: int, probe_size: int) -> int:
    """Steps between probe measurements: ``probe_size / (B + 8)`` rounded to a power of two, at least 1.

    Measured for the CNN (1,024 probe examples, one thread): a probe measurement of one trial costs
    about 18 lockstep steps at B = 1, 15 at B = 4, 9 at B = 16 and 3 at B = 64 (a plain forward pass of
    the probe set; the step cost grows like B + 8, the 8 standing for the fixed per-step overhead). With
    k = probe_size / (B + 8) the measurements cost 15-30 % of training at every batch size, and finding
    S in an interval costs log2(k) more measurements and <= k replayed steps per target.
    """
    raw = probe_size / (batch_size + 8)
    return 1 if raw < 1.5 else 2 ** int(round(math.log2(raw)))


def choose_strategy(config: GroupConfig, workload: Workload, n_trials: int | None = None) -> str:
    """The strategy ``"auto"`` picks, or the forced one after checking it can run.

    Lockstep when the model can be vmapped, at least 2 trials share the group, and (on the CPU) the
    batch size is at most ``workload.lockstep_max_batch``; a plain loop otherwise. Measured on this
    machine for the CNN: lockstep is 2-2.5x a per-trial loop at B <= 4 and about 1.4x at B = 16, even at
    B = 32 and slower from B = 64 on (vmap batches convolutions as grouped convolutions, which at large
    batches run below the plain kernels).
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


# ---- the protocol on one chunk of trials -----------------------------------------------------------


@dataclass
class _Record:
    trial: int
    stages: list = field(default_factory=list)
    next_stage: int = 0
    initial: float | None = None
    last: float | None = None
    status: str = "ok"
    diverged_at: int | None = None
    steps_run: int = 0


class _Chunk:
    """Runs the protocol for some trials of a group with one runner."""

    def __init__(self, config: GroupConfig, workload: Workload, strategy: str) -> None:
        self.cfg = config
        self.wl = workload
        self.runner = RUNNERS[strategy](
            workload, build_optimizer(config.optimizer), device=config.device, dtype=config.dtype, probe_examples=config.probe_examples
        )
        self.strategy = strategy
        self.B = config.batch_size
        self.N = config.extra_steps
        self.budget = config.step_budget
        self.k = config.probe_interval or probe_interval(self.B, len(self.runner.probe_x))
        self.orders: dict[int, DataOrder] = {}
        self.pending: list[_Crossing] = []
        # replays wait until this many crossings are queued: a wide lockstep batch costs less per lane
        self.replay_width = 16 if strategy == "lockstep" else 1

    def _order(self, seed: int) -> DataOrder:
        if seed not in self.orders:
            self.orders[seed] = DataOrder(seed, self.wl.num_train, self.wl.epoch_size)
        return self.orders[seed]

    def _step(self, lanes: Lanes) -> torch.Tensor:
        """One step for every lane at its own position; returns the training losses."""
        cache: dict[tuple[int, int], torch.Tensor] = {}  # lanes of one seed and position share a batch
        rows = []
        for s, p in zip(lanes.seed, lanes.pos):
            if (s, p) not in cache:
                cache[(s, p)] = self._order(s).batch(p + 1, self.B)
            rows.append(cache[(s, p)])
        index = torch.stack(rows)
        x, y = self.runner.batch(index)
        return self.runner.step(lanes, x, y)

    # -- main run -----------------------------------------------------------------------------------

    def run(self, trials: Sequence[int], report: Callable[[int], None] | None = None) -> dict[int, _Record]:
        cfg, targets = self.cfg, self.cfg.target_losses
        recs = {t: _Record(trial=t, stages=[None] * len(targets)) for t in trials}
        lanes = self.runner.init_lanes([(t, cfg.seeds[t], cfg.lrs[t]) for t in trials])
        losses = self.runner.probe(lanes)
        for i, t in enumerate(lanes.trial):
            recs[t].initial = recs[t].last = float(losses[i])
        lanes = self._check(lanes, losses, step=0, prev=None, snapshot=None, recs=recs)
        snapshot, prev, step = lanes.clone(), 0, 0
        while len(lanes) and step < self.budget:
            step += 1
            train_losses = self._step(lanes)
            for t in lanes.trial:
                recs[t].steps_run = step
            bad = [i for i in range(len(lanes)) if not math.isfinite(float(train_losses[i]))]
            if bad:
                for i in bad:
                    self._diverge(recs[lanes.trial[i]], step)
                lanes = lanes.select([i for i in range(len(lanes)) if i not in bad])
            if step % self.k == 0 or step == self.budget:
                if len(lanes):
                    losses = self.runner.probe(lanes)
                    lanes = self._check(lanes, losses, step=step, prev=prev, snapshot=snapshot, recs=recs)
                snapshot, prev = lanes.clone(), step
                if report is not None:
                    active = set(lanes.trial)
                    report(sum(step if t in active else self.budget for t in recs))
        self._flush(recs)
        for r in recs.values():  # budget exhausted: the rest is censored
            for j, st in enumerate(r.stages):
                if st is None:
                    r.stages[j] = _censored(targets[j])
        return recs

    def _diverge(self, rec: _Record, step: int) -> None:
        rec.status, rec.diverged_at, rec.steps_run = "diverged", step, step

    def _check(self, lanes: Lanes, losses: torch.Tensor, *, step: int, prev, snapshot, recs) -> Lanes:
        """A probe measurement at ``step``: divergence, crossings (then replays), finished trials."""
        targets = self.cfg.target_losses
        keep, pairs = [], []
        for i, t in enumerate(lanes.trial):
            rec, loss = recs[t], float(losses[i])
            rec.last = loss
            if not math.isfinite(loss) or loss > self.cfg.divergence_factor * rec.initial:
                self._diverge(rec, step)
                continue
            j = rec.next_stage
            while j < len(targets) and loss <= targets[j]:
                pairs.append((i, t, j, loss))
                j += 1
            rec.next_stage = j
            if j < len(targets):
                keep.append(i)
        if pairs:
            self._defer(pairs, lanes, snapshot, prev, step, recs)
        return lanes.select(keep) if len(keep) != len(lanes) else lanes

    # -- crossings ----------------------------------------------------------------------------------

    def _defer(self, pairs, lanes: Lanes, snapshot: Lanes | None, lo: int | None, hi: int, recs) -> None:
        """Queue the crossings (trial, stage) seen at ``hi``; they are replayed in batches (``_flush``)."""
        rows = None if snapshot is None else {t: r for r, t in enumerate(snapshot.trial)}
        for i, t, j, loss in pairs:
            if snapshot is None:  # reached at step 0: S = 0, nothing to bisect
                self.pending.append(_Crossing(t, j, lanes.select([i]), 0, 0, loss))
            else:
                self.pending.append(_Crossing(t, j, snapshot.select([rows[t]]), lo, hi, loss))
        if len(self.pending) >= self.replay_width or self._pending_bytes() > REPLAY_BYTES:
            self._flush(recs)

    def _pending_bytes(self) -> int:
        return sum(c.state.params.numel() * c.state.params.element_size() * 3 for c in self.pending)

    def _flush(self, recs) -> None:
        """Replay the queued crossings: bisect each interval to S, then N steps on from S.

        Crossings queued at different measurements share the interval length k, so they are bisected
        together in lockstep (lanes at different positions step on their own batches)."""
        items, self.pending = self.pending, []
        if not items:
            return
        targets = self.cfg.target_losses
        while True:
            by_len: dict[int, list[_Crossing]] = {}
            for c in items:
                if c.hi - c.lo > 1:
                    by_len.setdefault(c.hi - c.lo, []).append(c)
            if not by_len:
                break
            for length, group in sorted(by_len.items()):
                half = length // 2
                batch = Lanes.cat([c.state for c in group])
                for _ in range(half):
                    self._step(batch)
                mid_losses = self.runner.probe(batch)
                for r, c in enumerate(group):
                    value = float(mid_losses[r])
                    if value <= targets[c.stage]:
                        c.hi, c.hi_loss = c.lo + half, value
                    else:
                        c.lo += half
                        c.state = batch.select([r])
        # the state at S: one step on from lo (S = lo + 1), except at step 0; then N more steps
        by_extra: dict[int, list[_Crossing]] = {}
        for c in items:
            by_extra.setdefault(self.N if c.hi == 0 else self.N + 1, []).append(c)
        for extra, group in by_extra.items():
            batch = Lanes.cat([c.state for c in group])
            finite = [True] * len(batch)
            for _ in range(extra):
                tl = self._step(batch)
                finite = [f and math.isfinite(float(x)) for f, x in zip(finite, tl)]
            after = self.runner.probe(batch) if extra > 0 else None
            for r, c in enumerate(group):
                loss_after = float(after[r]) if after is not None else c.hi_loss
                if not (finite[r] and math.isfinite(loss_after)):
                    loss_after = None
                recs[c.trial].stages[c.stage] = StageRecord(
                    target_loss=targets[c.stage],
                    reached=True,
                    steps=c.hi,
                    examples=c.hi * self.B,
                    loss_at_target=c.hi_loss,
                    loss_after=loss_after,
                    loss_decrease=None if loss_after is None else c.hi_loss - loss_after,
                )


@dataclass
class _Crossing:
    """A target seen reached at measurement ``hi`` but not at ``lo``: the replay's state and interval."""

    trial: int
    stage: int
    state: Lanes  # one lane at step lo (bisection moves it forward)
    lo: int
    hi: int
    hi_loss: float  # probe loss at hi (<= the target)


def _censored(target: float) -> StageRecord:
    return StageRecord(target, False, None, None, None, None, None)


# ---- workers ---------------------------------------------------------------------------------------

_POOL = None
_POOL_SIZE = 0
_QUEUE = None
_WORKER_QUEUE = None
_POOL_LOCK = threading.Lock()


def _worker_init(q) -> None:
    global _WORKER_QUEUE
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


import atexit  # noqa: E402

atexit.register(shutdown_workers)


# ---- entry point -----------------------------------------------------------------------------------


def run_group(config: GroupConfig, *, progress: Callable[[int, int], None] | None = None) -> list[TrialRecord]:
    """Train every trial of the group; results in the order of ``config.lrs``/``config.seeds``.

    ``progress(done, total)`` is called now and then with trial-steps of the main runs: ``total`` is
    trials x step budget, and a finished trial counts as its whole budget. Deterministic on CPU: the
    same GroupConfig gives bit-identical results, whatever ``workers`` is.
    """
    if not isinstance(config, GroupConfig):
        raise SurgeTypeError(f"config must be a GroupConfig, got {type(config).__name__}")
    if torch.device(config.device).type == "cuda" and not torch.cuda.is_available():
        raise SurgeError(f"device {config.device!r} was asked for, but CUDA is not available here; use device='cpu'")
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
        records = _run_in_workers(config, strategy, workers, progress, total)
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


def _run_in_workers(config, strategy, workers, progress, total) -> dict[int, _Record]:
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
