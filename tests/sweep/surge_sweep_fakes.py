"""A deterministic stand-in for the engine: a closed-form loss curve per (batch size, lr, seed).

Used by the sweep tests to check the sweep layer alone. Behaviour can be steered through environment
variables (they reach worker and CLI subprocesses):

- SURGE_FAKE_FAIL_BATCH: a batch size whose groups raise RuntimeError;
- SURGE_FAKE_DIVERGE_LR: trials with lr >= this diverge (default 0.05);
- SURGE_FAKE_SLEEP: seconds each group sleeps (to make a sweep slow enough to kill);
- SURGE_FAKE_LOG: a file to which each group appends one line "batch_size seeds lrs" (who trained what).
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import sys
import time
from pathlib import Path

from surge.records import StageRecord, TrialRecord
from surge.sweep import BatchGrid, LRGrid, SweepSpec, plan_sweep
from surge.sweep.plan import WorkloadInfo

INFO = WorkloadInfo(name="fake", default_targets=(1.0, 0.5), extra_steps=3, batch_unit="examples")


def resolve(name: str, data_dir: str | None = None) -> WorkloadInfo:
    if name not in ("fake", "fake-tokens"):
        raise ValueError(f"unknown workload {name!r}; known: fake, fake-tokens")
    if name == "fake-tokens":
        return WorkloadInfo(name=name, default_targets=(1.0,), extra_steps=2, batch_unit="tokens")
    return INFO


FakeStage = StageRecord  # the engine's records, from surge.records (torch-free)
FakeTrial = TrialRecord


def _loss(t: int, rate: float, wiggle: float) -> float:
    return 2.3 * math.exp(-rate * t) * (1 + 0.01 * math.sin(wiggle * t))


def run_group(config, *, progress=None):
    sleep = float(os.environ.get("SURGE_FAKE_SLEEP", "0") or 0)
    if sleep:
        time.sleep(sleep)
    log = os.environ.get("SURGE_FAKE_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{config.batch_size} {list(config.seeds)} {list(config.lrs)}\n")
    fail = os.environ.get("SURGE_FAKE_FAIL_BATCH")
    if fail and int(fail) == config.batch_size:
        raise RuntimeError(f"boom at batch size {config.batch_size}")
    diverge_lr = float(os.environ.get("SURGE_FAKE_DIVERGE_LR", "0.05"))
    out = []
    n = len(config.lrs)
    for i, (lr, seed) in enumerate(zip(config.lrs, config.seeds)):
        rng = random.Random(f"{seed}/{config.batch_size}")  # shared by every lr of a round: common random numbers
        wiggle = rng.uniform(0.5, 2.0)
        rate = 50 * lr * math.sqrt(config.batch_size) / (1 + lr * 200) * (1 + 0.1 * rng.random())
        if lr >= diverge_lr:
            out.append(
                FakeTrial(
                    lr,
                    seed,
                    "diverged",
                    tuple(FakeStage(t, False, None, None, None, None, None) for t in config.target_losses),
                    7,
                    7,
                    "loop",
                    0.0,
                )
            )
            continue
        stages = []
        t = 0
        for target in config.target_losses:
            while _loss(t, rate, wiggle) > target and t < config.max_steps:
                t += 1
            if _loss(t, rate, wiggle) > target:
                stages.append(FakeStage(target, False, None, None, None, None, None))
                continue
            at, after = _loss(t, rate, wiggle), _loss(t + config.extra_steps, rate, wiggle)
            stages.append(FakeStage(target, True, t, t * config.batch_size, at, after, at - after))
        out.append(FakeTrial(lr, seed, "ok", tuple(stages), t, None, "loop", 0.001 * (i + 1)))
        if progress is not None:
            progress(i + 1, n)
    return out


def run_group_wrong_count(config, *, progress=None):
    return run_group(config)[:-1]


def run_group_interrupt_second(config, *, progress=None):
    """Raises KeyboardInterrupt on the second call in this process (a Ctrl-C mid-sweep)."""
    run_group_interrupt_second.calls += 1
    if run_group_interrupt_second.calls == 2:
        raise KeyboardInterrupt
    return run_group(config, progress=progress)


run_group_interrupt_second.calls = 0


def engine_available() -> bool:
    try:
        return importlib.util.find_spec("surge.engine.protocol") is not None
    except ImportError:
        return False


def group_config_type(monkeypatch=None):
    """The GroupConfig the planner hands a runner (torch-free, in surge.records)."""
    from surge.records import GroupConfig

    return GroupConfig


def install_for_subprocess() -> None:
    """In a CLI subprocess: the fake workloads next to the registry's."""
    import surge.sweep.plan as plan_module

    real = plan_module.resolve_workload

    def resolver(name, data_dir=None):
        return resolve(name, data_dir) if name.startswith("fake") else real(name, data_dir)

    plan_module.resolve_workload = resolver


def plan(**spec_fields):
    """A plan of the fake workload: 3 lrs x batch sizes 1, 4, 16 x 4 rounds, groups of 6 (fields override)."""
    base = dict(
        workload="fake",
        lr=LRGrid(values=(1e-3, 3e-3, 0.1)),
        batch_size=BatchGrid(values=(1, 4, 16)),
        rounds=4,
        group_size=6,
        max_steps=3000,
    )
    return plan_sweep(SweepSpec(**(base | spec_fields)), workload=INFO)


_DRIVER = (
    "import sys; sys.path.insert(0, {here!r}); import surge_sweep_fakes as f; f.install_for_subprocess(); "
    "from surge.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def cli_command(*args: str) -> list[str]:
    """argv of a ``surge`` CLI subprocess that also knows the fake workloads."""
    return [sys.executable, "-c", _DRIVER.format(here=str(Path(__file__).resolve().parent)), *args]
