"""The trial protocol, the lockstep and loop trainers, strategies and workers."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from surge.engine import (
    DataOrder,
    GroupConfig,
    OptimizerConfig,
    StageRecord,
    build_optimizer,
    choose_strategy,
    probe_interval,
    resolve_workers,
    run_group,
)
from surge.engine.bisect import _Chunk
from surge.engine.optim import adam
from surge.engine.trainer import LockstepRunner, LoopRunner
from surge.errors import SurgeError
from surge.workloads import get_workload

TINY = "engine_tiny_workload:make"


def _config(**kw) -> GroupConfig:
    base = dict(
        workload=TINY,
        optimizer=OptimizerConfig("adam"),
        batch_size=4,
        lrs=(3e-3, 1e-2, 3e-2),
        seeds=(0, 0, 1),
        target_losses=(1.2, 0.9),
        extra_steps=5,
        max_steps=300,
        workers=1,
    )
    base.update(kw)
    return GroupConfig(**base)


def _strip(results):
    """Results without the wall time (which differs between runs)."""
    return [dataclasses.replace(r, wall_seconds=0.0) for r in results]


# ---- trainers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,kw", [("adam", {}), ("adam", {"betas": (0.0, 0.0)}), ("sgd", {"momentum": 0.9}), ("lion", {})]
)
def test_lockstep_runner_equals_loop_runner_float64(name, kw):
    wl = get_workload(TINY)
    opt = build_optimizer(OptimizerConfig(name, **kw))
    trials = [(0, 0, 1e-3), (1, 0, 1e-2), (2, 3, 5e-3)]
    runners = [R(wl, opt, device="cpu", dtype="float64") for R in (LockstepRunner, LoopRunner)]
    lanes = [r.init_lanes(trials) for r in runners]
    assert torch.equal(lanes[0].params, lanes[1].params)
    orders = {s: DataOrder(s, wl.num_train) for s in (0, 3)}
    for step in range(1, 31):
        index = torch.stack([orders[s].batch(step, 4) for s in (0, 0, 3)])
        losses = [r.step(ln, *r.batch(index)) for r, ln in zip(runners, lanes)]
        assert torch.allclose(losses[0], losses[1], rtol=0, atol=1e-12)
    assert (lanes[0].params - lanes[1].params).abs().max() < 1e-10
    assert torch.allclose(runners[0].probe(lanes[0]), runners[1].probe(lanes[1]), rtol=0, atol=1e-12)
    assert lanes[0].pos == lanes[1].pos == (30, 30, 30)


def test_lockstep_group_equals_loop_group_float64():
    cfg = _config(dtype="float64")
    lock = run_group(dataclasses.replace(cfg, strategy="lockstep"))
    loop = run_group(dataclasses.replace(cfg, strategy="loop"))
    assert [r.strategy for r in lock] == ["lockstep"] * 3 and [r.strategy for r in loop] == ["loop"] * 3
    reached = 0
    for a, b in zip(lock, loop):
        assert (a.status, a.steps_run, a.diverged_at_step) == (b.status, b.steps_run, b.diverged_at_step)
        for sa, sb in zip(a.stages, b.stages):
            assert (sa.reached, sa.steps, sa.examples) == (sb.reached, sb.steps, sb.examples)
            if sa.reached:
                reached += 1
                assert math.isclose(sa.loss_at_target, sb.loss_at_target, rel_tol=0, abs_tol=1e-10)
                assert math.isclose(sa.loss_after, sb.loss_after, rel_tol=0, abs_tol=1e-10)
    assert reached >= 4


# ---- the protocol ---------------------------------------------------------------------------------


def _reference_trajectory(cfg: GroupConfig, trial: int, steps: int) -> list[float]:
    """Probe loss after every step of one trial, measured directly (no schedule, no replay).

    Single-threaded like the engine: plain CPU kernels give other bits with other thread counts."""
    torch.set_num_threads(1)
    wl = get_workload(cfg.workload)
    runner = LoopRunner(wl, build_optimizer(cfg.optimizer), device="cpu", dtype=cfg.dtype)
    lanes = runner.init_lanes([(trial, cfg.seeds[trial], cfg.lrs[trial])])
    order = DataOrder(cfg.seeds[trial], wl.num_train)
    losses = [float(runner.probe(lanes)[0])]
    for step in range(1, steps + 1):
        runner.step(lanes, *runner.batch(order.batch(step, cfg.batch_size)[None]))
        losses.append(float(runner.probe(lanes)[0]))
    return losses


def test_stage_is_a_down_crossing_and_loss_after_is_n_steps_later():
    """S from the sparse schedule + bisection is a step where the per-step probe loss crosses the target;
    the recorded losses are the reference's at S and S + N, bit for bit (loop strategy)."""
    cfg = _config(strategy="loop", probe_interval=16, batch_size=2, lrs=(3e-3, 1e-2), seeds=(0, 1), max_steps=250)
    dense = run_group(dataclasses.replace(cfg, probe_interval=1))
    sparse = run_group(cfg)
    threads = torch.get_num_threads()
    for t in range(2):
        last = max(s.steps for s in sparse[t].stages)
        ref = _reference_trajectory(cfg, t, last + cfg.extra_steps)
        torch.set_num_threads(threads)
        for sd, ss in zip(dense[t].stages, sparse[t].stages):
            assert sd.reached and ss.reached
            target = sd.target_loss
            # every-step schedule: S is the first step at or below the target
            assert ref[sd.steps] <= target and all(x > target for x in ref[: sd.steps])
            # sparse schedule: a down-crossing, no earlier than the first one, within the detecting interval
            assert ref[ss.steps] <= target < ref[ss.steps - 1]
            assert sd.steps <= ss.steps
            assert ss.loss_at_target == ref[ss.steps]
            assert ss.loss_after == ref[ss.steps + cfg.extra_steps]
            assert ss.loss_decrease == ss.loss_at_target - ss.loss_after
            assert ss.examples == ss.steps * cfg.batch_size


def test_sparse_and_dense_schedules_agree_in_lockstep():
    cfg = _config(strategy="lockstep", probe_interval=8)
    dense = run_group(dataclasses.replace(cfg, probe_interval=1))
    sparse = run_group(cfg)
    agree = sum(a.steps == b.steps for r, q in zip(dense, sparse) for a, b in zip(r.stages, q.stages))
    assert agree >= 4  # monotone stretches: identical S (exceptions only where the loss dips and recovers)
    for r, q in zip(dense, sparse):
        for a, b in zip(r.stages, q.stages):
            assert b.steps >= a.steps


def test_deterministic_bit_identical():
    cfg = _config(batch_size=3)
    assert _strip(run_group(cfg)) == _strip(run_group(cfg))
    cfg = _config(batch_size=32)  # loop strategy
    assert _strip(run_group(cfg)) == _strip(run_group(cfg))


def test_diverging_trial_is_masked_and_siblings_go_on():
    for strategy in ("lockstep", "loop"):
        cfg = _config(lrs=(1e-2, 50.0, 3e-3), seeds=(0, 0, 0), strategy=strategy, optimizer=OptimizerConfig("sgd"))
        res = run_group(cfg)
        bad = res[1]
        assert bad.status == "diverged" and bad.diverged_at_step is not None
        assert bad.steps_run == bad.diverged_at_step
        assert all(not s.reached and s.steps is None for s in bad.stages)
        for i in (0, 2):
            assert res[i].status == "ok"
            alone = run_group(dataclasses.replace(cfg, lrs=(cfg.lrs[i],), seeds=(0,), strategy=strategy))[0]
            for a, b in zip(res[i].stages, alone.stages):
                assert (a.reached, a.steps) == (b.reached, b.steps)
                if a.reached:
                    assert math.isclose(a.loss_after, b.loss_after, rel_tol=1e-5)


def test_nan_loss_marks_diverged_at_that_step():
    cfg = _config(lrs=(1e-2, 1e30), seeds=(0, 0), strategy="lockstep", probe_interval=64, max_steps=100)
    res = run_group(cfg)
    assert res[1].status == "diverged" and res[1].diverged_at_step < 64
    assert res[0].status == "ok" and res[0].steps_run > res[1].steps_run


def test_censored_targets_and_budgets():
    cfg = _config(target_losses=(1.2, 1e-4), max_steps=120, lrs=(1e-2,), seeds=(0,))
    r = run_group(cfg)[0]
    assert r.stages[0].reached
    assert r.stages[1] == StageRecord(1e-4, False, None, None, None, None, None)
    assert r.steps_run == 120 and r.status == "ok"
    r = run_group(dataclasses.replace(cfg, max_examples=4 * 50))[0]
    assert r.steps_run == 50


def test_target_reached_at_step_zero():
    r = run_group(_config(target_losses=(100.0, 1.0), lrs=(1e-2,), seeds=(0,)))[0]
    s0 = r.stages[0]
    assert s0.reached and s0.steps == 0 and s0.examples == 0
    assert s0.loss_after is not None and s0.loss_decrease > 0


def test_workers_give_the_same_bits():
    cfg = _config(batch_size=2, lrs=(3e-3, 1e-2, 2e-2, 5e-3), seeds=(0, 1, 0, 1), max_steps=200)
    seen = []
    one = run_group(cfg)
    two = run_group(dataclasses.replace(cfg, workers=2), progress=lambda d, t: seen.append((d, t)))
    assert _strip(one) == _strip(two)
    assert seen[0] == (0, 4 * 200) and seen[-1] == (4 * 200, 4 * 200)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_progress_in_process():
    seen = []
    run_group(_config(), progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 900) and seen[-1] == (900, 900) and len(seen) > 2


# ---- schedule, strategy, workers ------------------------------------------------------------------


def test_data_order_is_a_stream_of_permutations():
    order = DataOrder(5, 10)
    stream = torch.cat([order.batch(t, 1) for t in range(1, 31)])
    for e in range(3):
        assert sorted(stream[10 * e : 10 * (e + 1)].tolist()) == list(range(10))
    assert not torch.equal(stream[:10], stream[10:20])
    # batch size only regroups the same stream; a new DataOrder of the same seed gives the same stream
    assert torch.equal(torch.cat([DataOrder(5, 10).batch(t, 3) for t in range(1, 11)]), stream)
    assert not torch.equal(torch.cat([DataOrder(6, 10).batch(t, 3) for t in range(1, 11)]), stream)


def test_data_order_epoch_size():
    """Each epoch is the first epoch_size entries of that epoch's permutation; None is the whole set."""
    full, part = DataOrder(5, 10), DataOrder(5, 10, epoch_size=4)
    stream = torch.cat([part.batch(t, 3) for t in range(1, 9)])  # 24 positions = 6 epochs of 4
    expected = torch.cat([full._perm(e)[:4] for e in range(6)])
    assert torch.equal(stream, expected)
    assert all(len(set(stream[4 * e : 4 * e + 4].tolist())) == 4 for e in range(6))  # no repeats in an epoch
    assert torch.equal(
        torch.cat([DataOrder(5, 10, epoch_size=10).batch(t, 7) for t in range(1, 5)]),
        torch.cat([full.batch(t, 7) for t in range(1, 5)]),
    )
    with pytest.raises(ValueError, match=r"epoch_size must be at most the number of examples \(10\), got 11"):
        DataOrder(5, 10, epoch_size=11)
    with pytest.raises(ValueError, match="epoch_size must be positive, got 0"):
        DataOrder(5, 10, epoch_size=0)
    wl = dataclasses.replace(get_workload(TINY), epoch_size=64)
    chunk = _Chunk(_config(), wl, "loop")
    assert chunk._order(0).size == 64 and torch.equal(chunk._order(0).batch(17, 4), DataOrder(0, 768, 64).batch(17, 4))
    with pytest.raises(
        ValueError,
        match=r"Workload.epoch_size must be at most the number of training examples \(768\), got 769",
    ):
        dataclasses.replace(wl, epoch_size=769)
    with pytest.raises(TypeError, match="Workload.epoch_size must be an integer, got 2.5"):
        dataclasses.replace(wl, epoch_size=2.5)


def test_probe_interval():
    assert probe_interval(1, 1024) == 128
    assert probe_interval(4, 1024) == 64
    assert probe_interval(16, 1024) == 32
    assert probe_interval(64, 1024) == 16
    assert probe_interval(1024, 1024) == 1
    for b in (1, 3, 12, 100, 5000):
        k = probe_interval(b, 1024)
        assert k >= 1 and k & (k - 1) == 0


def test_choose_strategy_and_workers():
    wl = get_workload(TINY)
    assert choose_strategy(_config(batch_size=16), wl) == "lockstep"
    assert choose_strategy(_config(batch_size=17), wl) == "loop"
    assert choose_strategy(_config(lrs=(1e-3,), seeds=(0,)), wl) == "loop"
    assert choose_strategy(_config(strategy="loop", batch_size=1), wl) == "loop"
    bn = get_workload("engine_tiny_workload:make_bn")
    # BatchNorm runs in lockstep (per-lane running statistics); refusals: tests/engine/test_batchnorm.py
    assert choose_strategy(_config(workload="engine_tiny_workload:make_bn"), bn) == "lockstep"
    assert resolve_workers(_config(workers=None), "lockstep") == 1  # small group: in-process
    assert resolve_workers(_config(workers=8), "lockstep") == 1  # 3 trials: lanes of >= 2
    assert resolve_workers(_config(workers=8), "loop") == 3


def test_batchnorm_model_trains_in_loop_with_per_trial_buffers():
    cfg = _config(
        workload="engine_tiny_workload:make_bn",
        target_losses=(1.2,),
        extra_steps=3,
        lrs=(1e-2, 3e-2),
        seeds=(0, 0),
        strategy="loop",
    )
    res = run_group(cfg)
    assert [r.strategy for r in res] == ["loop", "loop"]
    assert all(r.stages[0].reached for r in res)
    assert res[0].stages[0].steps != res[1].stages[0].steps


def test_optimizers_run_in_the_engine():
    for opt in (
        OptimizerConfig("adamw", weight_decay=0.01),
        OptimizerConfig("signsgd"),
        OptimizerConfig("lion", betas=(0.9, 0.99)),
    ):
        res = run_group(_config(optimizer=opt, lrs=(1e-3, 3e-3), seeds=(0, 0), max_steps=150))
        assert all(r.status == "ok" for r in res)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
def test_cuda_missing_error():
    with pytest.raises(ValueError, match="device 'cuda' was asked for, but CUDA is not available here"):
        run_group(_config(device="cuda"))
    with pytest.raises(SurgeError, match="device 'cuda' was asked for, but CUDA is not available here"):
        run_group(_config(device="cuda", protocol="branch", trunk_batch_size=16, trunk_lr=3e-3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu():
    cfg = _config(dtype="float64", strategy="lockstep")
    gpu = run_group(dataclasses.replace(cfg, device="cuda"))
    cpu = run_group(cfg)
    for a, b in zip(gpu, cpu):
        for sa, sb in zip(a.stages, b.stages):
            assert sa.steps == sb.steps
            if sa.reached:
                assert math.isclose(sa.loss_after, sb.loss_after, rel_tol=1e-9)
    loop = run_group(dataclasses.replace(cfg, device="cuda", strategy="loop"))
    assert [r.stages[0].steps for r in loop] == [r.stages[0].steps for r in cpu]


# ---- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw,exc,match",
    [
        ({"lrs": (1e-3,), "seeds": (0, 1)}, ValueError, "lrs and seeds must have the same length"),
        ({"lrs": (), "seeds": ()}, ValueError, "lrs must hold at least one"),
        ({"lrs": (-1.0,), "seeds": (0,)}, ValueError, "lrs element must be > 0, got -1.0"),
        ({"target_losses": (0.5, 0.9)}, ValueError, r"target_losses must be strictly decreasing, got \(0.5, 0.9\)"),
        ({"target_losses": ()}, ValueError, "target_losses must hold at least one"),
        ({"batch_size": 0}, ValueError, "batch_size must be positive, got 0"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be an integer"),
        ({"extra_steps": -1}, ValueError, "extra_steps must be >= 0"),
        ({"max_steps": 0}, ValueError, "max_steps must be positive"),
        ({"dtype": "float16"}, ValueError, "dtype must be one of 'float32', 'float64'; got 'float16'"),
        ({"strategy": "fast"}, ValueError, "strategy must be one of 'auto', 'lockstep', 'loop'"),
        ({"device": "tpu"}, ValueError, "device must be"),
        ({"probe_interval": 12}, ValueError, "probe_interval must be a power of two, got 12"),
        ({"workers": 0}, ValueError, "workers must be positive"),
        ({"probe_examples": 0}, ValueError, "probe_examples must be positive"),
        ({"optimizer": "adam"}, TypeError, "optimizer must be an OptimizerConfig"),
        ({"seeds": (0, 0, -1)}, ValueError, "seeds element must be >= 0"),
    ],
)
def test_group_config_errors(kw, exc, match):
    with pytest.raises(exc, match=match):
        _config(**kw)


def test_optimizer_config_errors():
    with pytest.raises(ValueError, match="optimizer.name must be one of 'adam', 'adamw', 'sgd', 'signsgd', 'lion'"):
        OptimizerConfig("rmsprop")
    with pytest.raises(ValueError, match=r"optimizer.betas\[1\] must be < 1, got 1.5"):
        OptimizerConfig("adam", betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="optimizer.betas must be an array"):
        OptimizerConfig("adam", betas=0.9)
    with pytest.raises(TypeError, match="config must be a GroupConfig"):
        run_group({"workload": TINY})
    assert OptimizerConfig("adam", betas=[0, 0]).betas == (0.0, 0.0)
    assert adam((0.0, 0.0)).hyperparams["betas"] == (0.0, 0.0)
