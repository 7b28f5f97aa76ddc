"""BatchNorm in the lockstep runner: per-lane running statistics, equal to the loop runner in float64."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from surge import workloads
from surge.engine import DataOrder, GroupConfig, OptimizerConfig, build_optimizer, choose_strategy, run_group
from surge.engine.trainer import LockstepRunner, LoopRunner, lockstep_supported
from surge.workloads import Workload
from surge.workloads.tiny_imagenet import TinyImageNetResNet18

NAME = "test-bn-resnet"


class SmallResNet(nn.Module):
    """A ResNet in miniature: conv-BN stem, one residual block with a BN'd 1x1 downsample, pooled head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.conv1 = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6, momentum=0.3)
        self.down = nn.Sequential(nn.Conv2d(4, 6, 1, stride=2, bias=False), nn.BatchNorm2d(6))
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = self.stem(x)
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return self.fc(F.relu(y + self.down(x)).mean((-2, -1)))


def _workload() -> Workload:
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(512) % 4
    x = torch.randn(4, 1, 8, 8, generator=g)[labels] + torch.randn(512, 1, 8, 8, generator=g)
    return Workload(
        name=NAME,
        make_model=SmallResNet,
        train_inputs=x,
        train_targets=labels,
        probe_inputs=x[:96],
        probe_targets=labels[:96],
        default_targets=(1.2, 1.0),
        extra_steps=4,
    )


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setattr(workloads, "_FACTORIES", {**workloads._FACTORIES, NAME: _workload})
    workloads.clear_cache()
    yield NAME
    workloads.clear_cache()


def _run(runner, lanes, wl, seeds, steps, batch_size):
    orders = {s: DataOrder(s, wl.num_train) for s in set(seeds)}
    losses = []
    for step in range(1, steps + 1):
        index = torch.stack([orders[s].batch(step, batch_size) for s in seeds])
        losses.append(runner.step(lanes, *runner.batch(index)))
    return torch.stack(losses)


def test_lockstep_equals_loop_with_batchnorm_float64():
    wl = _workload()
    trials = [(0, 0, 1e-3), (1, 0, 1e-2), (2, 5, 3e-3)]
    seeds = [s for _, s, _ in trials]
    opt = build_optimizer(OptimizerConfig("adam"))
    runners = [R(wl, opt, device="cpu", dtype="float64") for R in (LockstepRunner, LoopRunner)]
    lanes = [r.init_lanes(trials) for r in runners]
    losses = [_run(r, ln, wl, seeds, 15, 4) for r, ln in zip(runners, lanes)]
    assert (losses[0] - losses[1]).abs().max() < 1e-12
    assert (lanes[0].params - lanes[1].params).abs().max() < 1e-10
    assert set(lanes[0].buffers) == {
        f"{m}.{b}"
        for m in ("stem.1", "bn1", "bn2", "down.1")
        for b in ("running_mean", "running_var", "num_batches_tracked")
    }
    for name, value in lanes[0].buffers.items():
        if name.endswith("num_batches_tracked"):
            assert value.tolist() == lanes[1].buffers[name].tolist() == [15, 15, 15]
        else:
            assert (value - lanes[1].buffers[name]).abs().max() < 1e-12
            assert not torch.equal(value[0], value[1])  # per-lane statistics: lanes of different lr differ
    # the probe runs in eval mode on each lane's own running statistics, the same in both runners
    probes = [r.probe(ln) for r, ln in zip(runners, lanes)]
    assert (probes[0] - probes[1]).abs().max() < 1e-12
    model = SmallResNet().double().eval()  # lane 2 by hand: its parameters and running statistics
    model.load_state_dict(
        {**runners[1].layout.unflatten(lanes[1].params[2]), **{k: v[2] for k, v in lanes[1].buffers.items()}}
    )
    with torch.no_grad():
        by_hand = float(F.cross_entropy(model(wl.probe_inputs.double()), wl.probe_targets))
    assert math.isclose(by_hand, float(probes[1][2]), rel_tol=0, abs_tol=1e-12)


def test_batchnorm_lane_is_bitwise_independent_of_its_neighbours():
    """The protocol's replays rely on it: a lane's bits do not depend on which lanes share its vmap."""
    wl = _workload()
    opt = build_optimizer(OptimizerConfig("adam", betas=(0.0, 0.0)))
    runner = LockstepRunner(wl, opt, device="cpu", dtype="float32")
    groups = [[(0, 0, 1e-3), (1, 5, 1e-2), (2, 0, 3e-3)], [(1, 5, 1e-2), (2, 0, 3e-3)], [(2, 0, 3e-3)]]
    out = []
    for trials in groups:
        lanes = runner.init_lanes(trials)
        _run(runner, lanes, wl, [s for _, s, _ in trials], 12, 4)
        out.append((lanes.params[-1], {k: v[-1] for k, v in lanes.buffers.items()}))
    for params, buffers in out[1:]:
        assert torch.equal(params, out[0][0])
        assert all(torch.equal(buffers[k], out[0][1][k]) for k in buffers)


def test_group_with_batchnorm_lockstep_equals_loop(registered):
    cfg = GroupConfig(
        workload=registered,
        optimizer=OptimizerConfig("adam"),
        batch_size=4,
        lrs=(3e-3, 1e-2, 3e-2),
        seeds=(0, 0, 1),
        target_losses=(1.2, 1.0),
        extra_steps=4,
        max_steps=200,
        dtype="float64",
        workers=1,
        probe_interval=8,
    )
    assert choose_strategy(cfg, workloads.get_workload(registered)) == "lockstep"
    lock = run_group(cfg)
    loop = run_group(dataclasses.replace(cfg, strategy="loop"))
    assert [r.strategy for r in lock] == ["lockstep"] * 3 and [r.strategy for r in loop] == ["loop"] * 3
    reached = 0
    for a, b in zip(lock, loop):
        assert (a.status, a.steps_run) == (b.status, b.steps_run)
        for sa, sb in zip(a.stages, b.stages):
            assert (sa.reached, sa.steps) == (sb.reached, sb.steps)
            if sa.reached:
                reached += 1
                assert math.isclose(sa.loss_after, sb.loss_after, rel_tol=0, abs_tol=1e-10)
    assert reached >= 4


def test_real_resnet18_lockstep_equals_loop_float64():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 64, 64), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 200, (16,), generator=g)
    wl = Workload(
        name="resnet18-random",
        make_model=TinyImageNetResNet18,
        train_inputs=x,
        train_targets=y,
        probe_inputs=x[:4],
        probe_targets=y[:4],
    )
    opt = build_optimizer(OptimizerConfig("adam", betas=(0.0, 0.0)))
    runners = [R(wl, opt, device="cpu", dtype="float64") for R in (LockstepRunner, LoopRunner)]
    trials = [(0, 0, 1e-4), (1, 0, 7e-4)]
    lanes = [r.init_lanes(trials) for r in runners]
    losses = [_run(r, ln, wl, [0, 0], 2, 2) for r, ln in zip(runners, lanes)]
    assert (losses[0] - losses[1]).abs().max() < 1e-10
    assert (lanes[0].params - lanes[1].params).abs().max() < 1e-10
    assert all(
        (lanes[0].buffers[k].double() - lanes[1].buffers[k].double()).abs().max() < 1e-10 for k in lanes[0].buffers
    )
    assert (runners[0].probe(lanes[0]) - runners[1].probe(lanes[1])).abs().max() < 1e-10


class _Counted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        return self.fc(x)


def test_lockstep_supported_rules(registered):
    assert lockstep_supported(SmallResNet()) == (True, "")
    assert lockstep_supported(TinyImageNetResNet18()) == (True, "")
    assert lockstep_supported(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3, track_running_stats=False))) == (
        True,
        "",
    )
    ok, why = lockstep_supported(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3, momentum=None)))
    assert not ok and why == "BatchNorm '1' has momentum=None (a cumulative average), which vmap cannot batch"
    ok, why = lockstep_supported(_Counted())
    assert not ok and why == "the model has buffers other than BatchNorm running statistics ('calls')"
    ok, why = lockstep_supported(nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.1)))
    assert not ok and why == "the model uses dropout"
    x, y = torch.zeros(8, 3), torch.zeros(8, dtype=torch.long)
    wl = Workload(name="counted", make_model=_Counted, train_inputs=x, train_targets=y, probe_inputs=x, probe_targets=y)
    cfg = GroupConfig(
        workload="counted",
        optimizer=OptimizerConfig("adam"),
        batch_size=2,
        lrs=(1e-3, 1e-2),
        seeds=(0, 0),
        target_losses=(0.5,),
        extra_steps=1,
        max_steps=2,
        strategy="lockstep",
    )
    with pytest.raises(
        ValueError,
        match=r"strategy 'lockstep' cannot run workload 'counted': the model has buffers "
        r"other than BatchNorm running statistics \('calls'\); use 'loop'",
    ):
        choose_strategy(cfg, wl)
    with pytest.raises(ValueError, match="strategy 'lockstep' cannot run workload 'counted': the model has buffers"):
        LockstepRunner(wl, build_optimizer(OptimizerConfig("adam")), device="cpu", dtype="float32")
    assert choose_strategy(dataclasses.replace(cfg, strategy="auto"), wl) == "loop"
