"""The branch protocol's engine (surge.engine.branch): known truth on a quadratic, shared starting
points, reset vs carry, stored and resumed trunk checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import quadratic_workload as qw
import torch

from surge.analysis.fitted import fit_optimum
from surge.engine import branch as br
from surge.engine import run_group
from surge.errors import SurgeError
from surge.records import GroupConfig, OptimizerConfig
from surge.workloads import get_workload


def _cfg(**kw) -> GroupConfig:
    base = dict(
        workload="engine_tiny_workload:make",
        optimizer=OptimizerConfig(name="adam", betas=(0.9, 0.999)),
        batch_size=4,
        lrs=(1e-3, 3e-3, 1e-2) * 2,
        seeds=(0, 0, 0, 1, 1, 1),
        target_losses=(1.3, 1.1),
        extra_steps=5,
        max_steps=400,
        protocol="branch",
        trunk_batch_size=16,
        trunk_lr=3e-3,
    )
    base.update(kw)
    return GroupConfig(**base)


def test_known_truth_quadratic_n1_recovers_eq9_within_5_percent_and_its_peak():
    """Sign descent on the equal-SNR quadratic (tests/engine/quadratic_workload.py, the sign-gradient model
    as an engine workload): a branch sweep with N = 1 from theta0, 1,000 rounds, the second-order fitted
    optimum against the exact Eq 9 optimum at every batch size, and the peak over batch sizes."""
    lrs = tuple(float(x) for x in np.geomspace(0.004, 0.04, 9))
    batch_sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    rounds = 1000
    model = qw.problem().model
    fitted, exact = [], []
    for b in batch_sizes:
        cfg = GroupConfig(
            workload="quadratic_workload:make",
            optimizer=OptimizerConfig(name="signsgd"),
            batch_size=b,
            lrs=lrs * rounds,
            seeds=tuple(s for s in range(rounds) for _ in lrs),
            target_losses=(1.0,),
            extra_steps=1,
            max_steps=10,
            protocol="branch",
            trunk_batch_size=1,
            trunk_lr=0.01,
        )
        recs = run_group(cfg)
        V = np.array([r.stages[0].loss_decrease for r in recs]).reshape(rounds, len(lrs))
        assert {r.stages[0].loss_at_target for r in recs} == {0.0}  # every lane starts at theta0 (loss 0)
        f = fit_optimum(lrs, V, extra_steps=1, n_boot=200)
        assert f.model == "second-order"
        fitted.append(f.lr)
        exact.append(float(model.optimal_lr(b)))
    rel = np.asarray(fitted) / np.asarray(exact) - 1
    assert np.all(np.abs(rel) < 0.05), dict(zip(batch_sizes, rel.round(4)))
    assert abs(int(np.argmax(fitted)) - int(np.argmax(exact))) <= 1


def test_all_lanes_start_from_the_checkpoint_and_lockstep_equals_loop():
    lock = run_group(_cfg(strategy="lockstep", dtype="float64"))
    loop = run_group(_cfg(strategy="loop", dtype="float64"))
    cps = br.get_checkpoints(_cfg(dtype="float64"))
    assert [c.reached for c in cps] == [True, True] and cps[0].step < cps[1].step
    for j, cp in enumerate(cps):
        assert {r.stages[j].loss_at_target for r in lock} == {cp.loss}  # one theta per stage
        assert cp.loss < 1.2 * cp.target_loss  # N = 5 steps after the first crossing
    for a, b in zip(lock, loop):
        for sa, sb in zip(a.stages, b.stages):
            assert sa.reached and sa.steps is None
            assert math.isclose(sa.loss_after, sb.loss_after, rel_tol=1e-10)
    # the same (lr, seed) in another group composition gives the same bits: lanes are independent
    alone = run_group(_cfg(strategy="lockstep", dtype="float64", lrs=(1e-2, 1e-3), seeds=(1, 0)))
    assert alone[0].stages[1].loss_after == lock[5].stages[1].loss_after
    assert alone[1].stages[0].loss_after == lock[0].stages[0].loss_after


def test_n_zero_gives_zero_decrease_and_rounds_differ():
    recs = run_group(_cfg(extra_steps=0))
    assert all(s.loss_decrease == 0.0 for r in recs for s in r.stages)
    recs = run_group(_cfg())
    assert recs[0].stages[0].loss_decrease != recs[3].stages[0].loss_decrease  # round 0 vs round 1 data


def test_reset_and_carry_differ_for_adam_but_not_for_sign_descent():
    reset = run_group(_cfg())
    carry = run_group(_cfg(branch_optimizer_state="carry"))
    assert reset[1].stages[0].loss_after != carry[1].stages[0].loss_after
    sign = OptimizerConfig(name="signsgd")
    a = run_group(_cfg(optimizer=sign, trunk_lr=1e-2))
    b = run_group(_cfg(optimizer=sign, trunk_lr=1e-2, branch_optimizer_state="carry"))
    assert [s.loss_after for r in a for s in r.stages] == [s.loss_after for r in b for s in r.stages]


def test_target_the_trunk_does_not_reach_is_censored_for_every_branch():
    recs = run_group(_cfg(target_losses=(1.3, 0.01), max_steps=60))
    assert all(r.stages[0].reached and not r.stages[1].reached for r in recs)
    assert all(r.stages[1].loss_decrease is None for r in recs)


def test_checkpoints_are_stored_reused_and_a_killed_trunk_resumes_bit_identically(tmp_path, monkeypatch):
    clean = br.get_checkpoints(_cfg(checkpoint_dir=None, target_losses=(1.31, 1.12)))
    cfg = _cfg(checkpoint_dir=str(tmp_path), target_losses=(1.31, 1.12))
    real_save = br._save
    calls = []

    def save_then_die(path, payload):  # the process dies right after the first checkpoint is on disk
        real_save(path, payload)
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(br, "_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        br.get_checkpoints(cfg)
    monkeypatch.setattr(br, "_save", real_save)
    files = list(tmp_path.glob("trunk-*.pt"))
    assert len(files) == 1 and not torch.load(files[0], weights_only=False)["done"]
    resumed = br.get_checkpoints(cfg)
    for a, b in zip(clean, resumed):
        assert a.step == b.step and a.loss == b.loss and torch.equal(a.params, b.params)
        assert all(torch.equal(x, y) for x, y in zip(a.opt[1:], b.opt[1:])) and a.opt.step == b.opt.step

    def no_training(*a, **k):
        raise AssertionError("a stored trunk was retrained")

    monkeypatch.setattr(br, "_train_trunk", no_training)
    again = br.get_checkpoints(cfg)
    assert [c.loss for c in again] == [c.loss for c in clean]
    # a file written for another trunk is refused, not silently used
    other = _cfg(checkpoint_dir=str(tmp_path), target_losses=(1.31, 1.12), trunk_lr=1e-3)
    files[0].rename(tmp_path / f"trunk-{br.trunk_key(other)}.pt")
    with pytest.raises(SurgeError, match="written for another trunk"):
        br.get_checkpoints(other)


def test_groups_that_differ_only_in_extra_steps_get_their_own_trunk():
    """The trunk settles extra_steps past each crossing, so extra_steps is part of what its key hashes: a
    group with N = 0 after one with N = 5 does not reuse the N = 5 checkpoints (in memory or on disk)."""
    settled, unsettled = _cfg(extra_steps=5), _cfg(extra_steps=0)
    assert br.trunk_key(settled) != br.trunk_key(unsettled)
    a, b = br.get_checkpoints(settled), br.get_checkpoints(unsettled)
    fresh = br._train_trunk(unsettled, get_workload(unsettled.workload), None, None)
    assert [c.step for c in b] == [c.step for c in fresh]
    assert a[0].step == b[0].step + 5


def test_branch_group_config_errors():
    with pytest.raises(SurgeError, match="protocol 'branch' needs trunk_batch_size and trunk_lr"):
        _cfg(trunk_lr=None)
    with pytest.raises(SurgeError, match="branch_optimizer_state must be one of 'reset', 'carry'; got 'keep'"):
        _cfg(branch_optimizer_state="keep")
    with pytest.raises(SurgeError, match="protocol must be one of 'scratch', 'branch'; got 'fork'"):
        _cfg(protocol="fork")
    with pytest.raises(SurgeError, match="trunk_lr must be"):
        _cfg(trunk_lr=-1.0)
