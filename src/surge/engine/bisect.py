"""The protocol on one chunk of trials: probe measurements every k steps, and bisection by bit-exact
replays to the first step S at which each target is reached, then the loss N steps later.

See :mod:`surge.engine.protocol` for the protocol and why crossings are found this way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from surge.engine.data import DataOrder
from surge.engine.optim import build_optimizer
from surge.engine.schedule import probe_interval
from surge.engine.trainer import RUNNERS, Lanes
from surge.records import GroupConfig, StageRecord
from surge.workloads import Workload

REPLAY_BYTES = 512 * 2**20  # queued replay states are flushed beyond this much memory


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
            workload,
            build_optimizer(config.optimizer),
            device=config.device,
            dtype=config.dtype,
            probe_examples=config.probe_examples,
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
