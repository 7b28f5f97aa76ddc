"""The branch protocol: the optimal learning rate at a point of training (one theta per target loss).

The paper's protocol (:mod:`surge.engine.protocol`) trains every (batch size, lr, round) cell from
scratch, and the cells reach a target at different parameters. The theory (Lemma 1, Theorems 2-4) is
about the optimal learning rate at one point theta. The branch protocol measures that:

1. **Trunk.** One run with a reference configuration (``trunk_batch_size``, ``trunk_lr``, the group's
   optimizer, ``trunk_seed``) trains until its probe loss is at or below each target loss (measured every
   :func:`~surge.engine.schedule.probe_interval` / 8 steps, at least 1, or ``probe_interval``), goes on
   N = ``extra_steps`` more steps (fewer where the budget ends first; none for a target met at
   initialisation) and is *checkpointed* there: flat parameters, buffers, the optimizer state and the data
   position (the trunk's step). A target the trunk does not reach within the budget (``max_steps``,
   ``max_examples``), or not before its probe loss turns NaN/inf, is censored for every branch.
2. **Branches.** From each checkpoint, every trial of the group (one batch size; learning rates x rounds)
   is a lane; all lanes start from the checkpoint's parameters, with the optimizer state reset
   (``branch_optimizer_state="reset"``) or the trunk's (``"carry"``), and train exactly N =
   ``extra_steps`` steps in lockstep. Round r draws its batches from the data order of its seed
   (:class:`~surge.engine.data.DataOrder`, steps 1..N), common to every learning rate and batch size of
   the round. The stage's record is the probe loss at the checkpoint (``loss_at_target``), the probe
   loss N steps later (``loss_after``) and their difference (``loss_decrease``); ``steps``/``examples``
   stay empty (a branch does not measure S). A branch whose loss turns NaN/inf has no decrease (the
   analysis counts it as diverged at that stage).

Checkpoints are files ``trunk-<key>.pt`` in ``config.checkpoint_dir`` (the executor puts them beside the
store), keyed by a hash of everything that decides the trunk; written atomically (temporary file, then
rename) after every checkpoint, with the trunk's state, so a killed trunk resumes where it was saved and a
finished one is never recomputed. A file lock makes concurrent groups (worker processes) wait for one
trunk rather than each training it. The trunk is deterministic on the CPU (one lane, single-threaded), so
its configuration identifies its checkpoints: it is part of every branch trial's key.

Why one module of ~440 lines: the trunk, its checkpoints (on disk and cached) and the branches from them are
one protocol that only makes sense together; about 300 lines are code, the rest docstrings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from surge.engine._alloc import configure_allocator
from surge.engine.data import DataOrder
from surge.engine.optim import build_optimizer, select_state
from surge.engine.schedule import choose_strategy, probe_interval
from surge.engine.trainer import RUNNERS, Lanes, LoopRunner, _Runner
from surge.errors import SurgeError
from surge.records import BRANCH_VERSION, GroupConfig, StageRecord, TrialRecord
from surge.workloads import Workload, get_workload

CHECKPOINT_VERSION = BRANCH_VERSION  # 2: checkpoints N steps after the crossing
BRANCH_EXAMPLES = 2**16  # lanes x batch size stepped at once (bounds the batch tensors' memory)


@dataclass
class Checkpoint:
    """The trunk at one target loss (or the fact that it did not reach it).

    Attributes:
        target_loss: the target probe loss, in nats.
        reached: whether the trunk reached it within its budget; when False, the fields below are None.
        step: the trunk's step (its data position) at the checkpoint.
        loss: the probe loss there, in nats (near ``target_loss``: N steps after the first crossing).
        params: the trunk's flat parameters, a tensor ``[P]``.
        buffers: the model's buffers, name -> tensor (BatchNorm running statistics).
        opt: the optimizer state of the one trunk lane (a state NamedTuple of :mod:`surge.engine.optim`).
    """

    target_loss: float
    reached: bool
    step: int | None  # the trunk's step (its data position) at the checkpoint
    loss: float | None  # the probe loss there (near target_loss: N steps after the first crossing)
    params: torch.Tensor | None  # [P]
    buffers: dict | None  # name -> tensor
    opt: object | None  # the optimizer state of the one trunk lane


def trunk_config(config: GroupConfig) -> dict:
    """Everything that decides the trunk's checkpoints (what its key hashes).

    Args:
        config: a branch-protocol group (``trunk_batch_size`` and ``trunk_lr`` set).

    Returns:
        A JSON-able dict: the checkpoint version, workload, optimizer settings, the trunk's batch size, lr
        and seed, the target losses, ``extra_steps`` (the settling steps after each crossing), ``max_steps``, ``max_examples``, ``dtype``, ``probe_examples`` and
        ``probe_interval``.
    """
    return {
        "v": CHECKPOINT_VERSION,
        "workload": config.workload,
        "optimizer": config.optimizer.as_dict(),
        "batch_size": int(config.trunk_batch_size),
        "lr": float(config.trunk_lr),
        "seed": int(config.trunk_seed),
        "target_losses": list(config.target_losses),
        "extra_steps": int(config.extra_steps),  # the trunk settles N steps past each crossing
        "max_steps": int(config.max_steps),
        "max_examples": config.max_examples,
        "dtype": config.dtype,
        "probe_examples": config.probe_examples,
        "probe_interval": config.probe_interval,
    }


def trunk_key(config: GroupConfig) -> str:
    """The trunk's key: the first 24 hex digits of the SHA-256 of :func:`trunk_config` as canonical JSON.

    Args:
        config: a branch-protocol group.

    Returns:
        A string of 24 lowercase hex characters; names the checkpoint file ``trunk-<key>.pt``.
    """
    text = json.dumps(trunk_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


_MEMORY: dict[str, list[Checkpoint]] = {}  # trunks computed in this process without a checkpoint_dir


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _save(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(payload, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _state_dict(cp: Checkpoint) -> dict:
    return {
        "target_loss": cp.target_loss,
        "reached": cp.reached,
        "step": cp.step,
        "loss": cp.loss,
        "params": cp.params,
        "buffers": cp.buffers,
        "opt": None if cp.opt is None else (type(cp.opt).__name__, cp.opt._asdict()),
    }


def _from_state(d: dict, opt_type) -> Checkpoint:
    opt = None if d["opt"] is None else opt_type(**d["opt"][1])
    return Checkpoint(d["target_loss"], d["reached"], d["step"], d["loss"], d["params"], d["buffers"], opt)


def get_checkpoints(config: GroupConfig, workload: Workload | None = None) -> list[Checkpoint]:
    """The trunk's checkpoints, one per target loss: loaded when stored, else trained (and stored).

    With ``config.checkpoint_dir`` None the trunk is kept in this process's memory only; else in the file
    ``trunk-<key>.pt`` there (the folder is created), under a file lock, resumed when a killed run left it
    unfinished.

    Args:
        config: a branch-protocol group.
        workload: the group's workload when already loaded; None: loaded from ``config.workload``.

    Returns:
        A list of :class:`Checkpoint`, one per target loss of ``config.target_losses``, in that order.

    Raises:
        SurgeError: ``config.protocol`` is not ``"branch"``; a stored file was written for another trunk;
            the workload cannot be loaded.
    """
    if config.protocol != "branch":
        raise SurgeError(f"get_checkpoints needs protocol 'branch', got {config.protocol!r}")
    key = trunk_key(config)
    if config.checkpoint_dir is None:
        if key not in _MEMORY:
            _MEMORY[key] = _train_trunk(config, workload or get_workload(config.workload, config.data_dir), None, None)
        return _MEMORY[key]
    folder = Path(config.checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"trunk-{key}.pt"
    with _locked(folder / f"trunk-{key}.lock"):
        saved = torch.load(path, weights_only=False) if path.is_file() else None
        if saved is not None and saved.get("config") != trunk_config(config):
            raise SurgeError(f"checkpoint file {str(path)!r} was written for another trunk; delete it to retrain")
        if saved is not None and saved["done"]:
            return _unpack(saved, config)
        return _train_trunk(config, workload or get_workload(config.workload, config.data_dir), path, saved)


def _unpack(saved: dict, config: GroupConfig) -> list[Checkpoint]:
    opt_type = type(build_optimizer(config.optimizer).init(torch.zeros(1, 1)))
    return [_from_state(d, opt_type) for d in saved["checkpoints"]]


def _train_trunk(config: GroupConfig, workload: Workload, path: Path | None, saved: dict | None) -> list[Checkpoint]:
    """Train the trunk (one lane, plain loop) from the start or from ``saved``; checkpoint at each target."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same bits in every process
    try:
        runner = LoopRunner(
            workload,
            build_optimizer(config.optimizer),
            device=config.device,
            dtype=config.dtype,
            probe_examples=config.probe_examples,
        )
        B = int(config.trunk_batch_size)
        budget = config.max_steps if config.max_examples is None else min(config.max_steps, config.max_examples // B)
        # the trunk is one lane: probing 8x as often as a scratch trial costs little and puts each
        # checkpoint's loss close to its target
        k = config.probe_interval or max(1, probe_interval(B, len(runner.probe_x)) // 8)
        order = DataOrder(config.trunk_seed, workload.num_train, workload.epoch_size)
        targets = config.target_losses
        settle = int(config.extra_steps)
        checkpoints: list[Checkpoint] = []
        if saved is not None:
            opt_type = type(runner.optimizer.init(torch.zeros(1, 1)))
            checkpoints = [_from_state(d, opt_type) for d in saved["checkpoints"]]
            st = saved["state"]
            lanes = Lanes(
                trial=[0],
                seed=[config.trunk_seed],
                lr=[float(config.trunk_lr)],
                params=st["params"].clone(),
                opt=opt_type(**st["opt"]),
                buffers={n: b.clone() for n, b in st["buffers"].items()},
            )
            step = int(st["step"])
            loss = st["loss"]
        else:
            lanes = runner.init_lanes([(0, config.trunk_seed, config.trunk_lr)])
            step = 0
            loss = float(runner.probe(lanes)[0])

        def save(done: bool) -> None:
            if path is None:
                return
            _save(
                path,
                {
                    "config": trunk_config(config),
                    "done": done,
                    "checkpoints": [_state_dict(c) for c in checkpoints],
                    "state": {
                        "step": step,
                        "loss": loss,
                        "params": lanes.params,
                        "opt": lanes.opt._asdict(),
                        "buffers": lanes.buffers,
                    },
                },
            )

        while len(checkpoints) < len(targets):
            if loss is not None and math.isfinite(loss) and loss <= targets[len(checkpoints)]:
                # settle: N more steps, so that the checkpoint is not the dip that the first crossing selects
                # (a target met at initialisation is checkpointed there: no crossing selected it)
                n_settle = min(settle, budget - step) if step > 0 else 0
                for _ in range(n_settle):
                    step += 1
                    x, y = runner.batch(order.batch(step, B)[None])
                    runner.step(lanes, x, y)
                if n_settle:
                    loss = float(runner.probe(lanes)[0])
                    if not math.isfinite(loss):
                        continue
                one = lanes.select([0])
                checkpoints.append(
                    Checkpoint(
                        targets[len(checkpoints)],
                        True,
                        step,
                        loss,
                        one.params[0].clone(),
                        {n: b[0].clone() for n, b in one.buffers.items()},
                        one.opt,
                    )
                )
                save(False)
                continue
            if step >= budget or (loss is not None and not math.isfinite(loss)):
                for t in targets[len(checkpoints) :]:
                    checkpoints.append(Checkpoint(t, False, None, None, None, None, None))
                break
            for _ in range(min(k, budget - step)):
                step += 1
                x, y = runner.batch(order.batch(step, B)[None])
                runner.step(lanes, x, y)
            loss = float(runner.probe(lanes)[0])
        save(True)
        return checkpoints
    finally:
        torch.set_num_threads(threads)


def _branch_lanes(runner: _Runner, cp: Checkpoint, trials: list[tuple[int, int, float]], carry: bool) -> Lanes:
    n = len(trials)
    params = cp.params[None].expand(n, -1).clone().contiguous()
    if carry:
        opt = select_state(cp.opt, [0] * n)
    else:
        opt = runner.optimizer.init(params)
    return Lanes(
        trial=[t for t, _, _ in trials],
        seed=[s for _, s, _ in trials],
        lr=[float(r) for _, _, r in trials],
        params=params,
        opt=opt,
        buffers={k: v[None].expand(n, *v.shape).clone() for k, v in cp.buffers.items()},
    )


def run_branch_group(config: GroupConfig, *, progress: Callable[[int, int], None] | None = None) -> list[TrialRecord]:
    """Branch every trial of the group from each trunk checkpoint for N steps (see the module docstring).

    ``progress(done, total)`` counts branch steps x lanes. Deterministic on CPU: the same GroupConfig
    gives the same bits.

    Args:
        config: a branch-protocol group (see :class:`~surge.records.GroupConfig`).
        progress: ``progress(done, total)`` in lane-steps, ``total`` = trials x ``extra_steps`` x targets
            (a censored target counts as done); None: no reports.

    Returns:
        A list of :class:`~surge.records.TrialRecord`, one per trial, in the order of
        ``config.lrs``/``seeds``, each with one stage per target loss (``steps``/``examples`` None;
        ``loss_after``/``loss_decrease`` None where the branch turned NaN/inf); ``status`` is always ``"ok"``.

    Raises:
        SurgeError: ``config.protocol`` is not ``"branch"``; the workload cannot be loaded; a stored
            checkpoint file was written for another trunk; strategy ``"lockstep"`` is forced for a model
            it cannot batch.
    """
    if config.protocol != "branch":
        raise SurgeError(f"run_branch_group needs protocol 'branch', got {config.protocol!r}")
    configure_allocator()
    started = time.perf_counter()
    workload = get_workload(config.workload, config.data_dir)
    checkpoints = get_checkpoints(config, workload)
    strategy = choose_strategy(config, workload)
    threads = torch.get_num_threads()
    if torch.device(config.device).type == "cpu":
        torch.set_num_threads(1)
    try:
        runner = RUNNERS[strategy](
            workload,
            build_optimizer(config.optimizer),
            device=config.device,
            dtype=config.dtype,
            probe_examples=config.probe_examples,
        )
        n, N, B = config.n_trials, config.extra_steps, config.batch_size
        total = n * N * len(checkpoints)
        stages: list[list[StageRecord]] = [[] for _ in range(n)]
        last = [None] * n
        orders: dict[int, DataOrder] = {}
        per = max(2, BRANCH_EXAMPLES // B)
        done = 0
        if progress is not None:
            progress(0, total)
        for cp in checkpoints:
            if not cp.reached:
                for t in range(n):
                    stages[t].append(StageRecord(cp.target_loss, False, None, None, None, None, None))
                done += n * N
                continue
            for start in range(0, n, per):
                idx = list(range(start, min(n, start + per)))
                lanes = _branch_lanes(
                    runner,
                    cp,
                    [(t, config.seeds[t], config.lrs[t]) for t in idx],
                    config.branch_optimizer_state == "carry",
                )
                finite = [True] * len(idx)
                for step in range(1, N + 1):
                    rows = []
                    for s in lanes.seed:
                        if s not in orders:
                            orders[s] = DataOrder(s, workload.num_train, workload.epoch_size)
                        rows.append(orders[s].batch(step, B))
                    x, y = runner.batch(torch.stack(rows))
                    losses = runner.step(lanes, x, y)
                    finite = [f and math.isfinite(float(v)) for f, v in zip(finite, losses)]
                    done += len(idx)
                    if progress is not None:
                        progress(done, total)
                after = runner.probe(lanes) if N > 0 else torch.full((len(idx),), cp.loss, dtype=torch.float64)
                for r, t in enumerate(idx):
                    value = float(after[r])
                    ok = finite[r] and math.isfinite(value)
                    last[t] = value
                    stages[t].append(
                        StageRecord(
                            target_loss=cp.target_loss,
                            reached=True,
                            steps=None,
                            examples=None,
                            loss_at_target=cp.loss,
                            loss_after=value if ok else None,
                            loss_decrease=cp.loss - value if ok else None,
                        )
                    )
    finally:
        torch.set_num_threads(threads)
    wall = time.perf_counter() - started
    first = next((c.loss for c in checkpoints if c.reached), None)
    return [
        TrialRecord(
            lr=config.lrs[t],
            seed=config.seeds[t],
            status="ok",
            stages=tuple(stages[t]),
            steps_run=N * sum(c.reached for c in checkpoints),
            diverged_at_step=None,
            strategy=strategy,
            wall_seconds=wall / n,
            initial_loss=first,
            final_loss=last[t],
        )
        for t in range(n)
    ]
