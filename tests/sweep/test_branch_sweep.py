"""The branch protocol in the sweep layer: spec fields and errors, trial keys, group configs, and a
real-engine branch sweep killed with SIGKILL in the middle of its branches and resumed."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from surge_sweep_fakes import INFO, engine_available
from test_resume_sigkill import group_keys, kill_part_way, numbers, run_to_end, snapshot

from surge.sweep import SweepSpec, plan_sweep
from surge.sweep.spec import TrunkConfig, spec_from_toml

BRANCH = """
workload = "fake"
protocol = "branch"
rounds = 2
[trunk]
batch_size = 32
lr = 1e-3
[lr]
values = [1e-4, 3e-4, 1e-3]
[batch_size]
values = [4, 16]
"""


def test_branch_spec_round_trips_and_scratch_specs_keep_their_json():
    spec = spec_from_toml(BRANCH)
    assert spec.protocol == "branch" and spec.trunk == TrunkConfig(batch_size=32, lr=1e-3, seed=0)
    assert spec.branch_optimizer_state == "reset"
    assert spec_from_toml(spec.to_toml()) == spec
    d = spec.to_dict()
    assert d["protocol"] == "branch" and d["trunk"] == {"batch_size": 32, "lr": 1e-3, "seed": 0}
    scratch = SweepSpec(workload="fake", lr=[1e-3], batch_size=[4])
    assert "protocol" not in scratch.to_dict() and "branch_optimizer_state" not in scratch.to_dict()
    carry = spec_from_toml('branch_optimizer_state = "carry"\n' + BRANCH)
    assert carry.branch_optimizer_state == "carry" and carry.spec_hash() != spec.spec_hash()


@pytest.mark.parametrize(
    "text, match",
    [
        (
            'protocol = "branch"\nworkload = "fake"\nlr = [1e-3]\nbatch_size = [4]\n',
            r"protocol 'branch' needs a \[trunk\] section",
        ),
        (
            'protocol = "fork"\n' + BRANCH.replace('protocol = "branch"\n', ""),
            "protocol must be one of 'scratch', 'branch'; got 'fork'",
        ),
        (
            'branch_optimizer_state = "keep"\n' + BRANCH,
            "branch_optimizer_state must be one of 'reset', 'carry'; got 'keep'",
        ),
        (BRANCH.replace("lr = 1e-3\n", "lr = 1e-3\nbatch = 3\n"), r"unknown key 'batch' in section \[trunk\]"),
        (BRANCH.replace("lr = 1e-3\n", ""), r"section \[trunk\] lacks the required key 'lr'"),
        (BRANCH.replace("batch_size = 32", "batch_size = 0"), "trunk.batch_size must be"),
        (BRANCH.replace("lr = 1e-3\n[lr]", "lr = -1.0\n[lr]"), "trunk.lr must be"),
        (BRANCH.replace('protocol = "branch"\n', ""), r"a \[trunk\] section is only used with protocol = 'branch'"),
    ],
)
def test_branch_spec_errors_name_the_key(text, match):
    with pytest.raises(ValueError, match=match):
        spec_from_toml(text)


def test_trial_keys_hold_the_trunk_and_scratch_keys_are_unchanged():
    spec = spec_from_toml(BRANCH)
    plan = plan_sweep(spec, workload=INFO)
    cfg = plan.trial_config(4, 1e-4, 0)
    assert cfg["protocol"] == "branch" and cfg["trunk"]["lr"] == 1e-3 and cfg["branch_optimizer_state"] == "reset"
    keys = {t.key for t in plan.trials()}
    for change in (
        {"trunk": TrunkConfig(32, 2e-3)},
        {"trunk": TrunkConfig(32, 1e-3, seed=1)},
        {"branch_optimizer_state": "carry"},
    ):
        other = {t.key for t in plan_sweep(spec.replace(**change), workload=INFO).trials()}
        assert not keys & other, change
    scratch = plan_sweep(spec.replace(protocol="scratch", trunk=None), workload=INFO)
    assert "protocol" not in scratch.trial_config(4, 1e-4, 0) and not keys & {t.key for t in scratch.trials()}
    g = plan.groups[0]
    gc = plan.group_config(g, checkpoint_dir="/tmp/x")
    assert (gc.protocol, gc.trunk_batch_size, gc.trunk_lr, gc.trunk_seed, gc.checkpoint_dir) == (
        "branch",
        32,
        1e-3,
        0,
        "/tmp/x",
    )
    assert plan.summary()["protocol"] == "branch" and plan.summary()["trunk"]["batch_size"] == 32
    assert scratch.group_config(scratch.groups[0], checkpoint_dir="/tmp/x").protocol == "scratch"


@pytest.mark.skipif(not engine_available(), reason="the engine (surge.engine) is not installed")
def test_sigkill_in_the_middle_of_branches_loses_and_recomputes_nothing(tmp_path):
    spec = tmp_path / "branch.toml"
    spec.write_text("""
name = "branch-kill"
workload = "surge_sweep_tiny_workload:workload"
protocol = "branch"
rounds = 6
group_size = 2
max_steps = 400
extra_steps = 3
[trunk]
batch_size = 8
lr = 3e-2
[lr]
values = [1e-2, 3e-2]
[batch_size]
values = [2, 4, 8, 16]
""")
    total = 2 * 4 * 6
    store = tmp_path / "killed.db"
    env = {"OMP_NUM_THREADS": "1"}
    kill_part_way(["sweep", "run", str(spec), "--store", str(store)], env, store, total)
    before = snapshot(store)
    ckpt = list((tmp_path / "killed.db.checkpoints").glob("trunk-*.pt"))
    assert len(ckpt) == 1
    stamp = ckpt[0].stat().st_mtime_ns
    out = json.loads(run_to_end(["sweep", "run", str(spec), "--store", str(store), "--json"], env))
    assert out["skipped"] == len(before) and out["ran"] == total - len(before)
    after = snapshot(store)
    assert set(before) <= set(after) and len(after) == total
    assert ckpt[0].stat().st_mtime_ns == stamp  # the trunk was not retrained
    clean = tmp_path / "clean.db"
    run_to_end(["sweep", "run", str(spec), "--store", str(clean)], env)
    a, b = numbers(store), numbers(clean)
    assert a.reached.all() and a.steps.isna().all()
    assert (a.groupby("target_loss")["loss_at_target"].nunique() == 1).all()  # one theta per stage
    pd.testing.assert_frame_equal(a, b)
    assert group_keys(store) == group_keys(clean)


WORKLOAD_SRC = """
import torch
from torch import nn
from torch.nn import functional as F
from surge.workloads import Workload

SCALE = {scale}

def workload():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g) * SCALE
    y = x.sum(1, keepdim=True)
    return Workload(name="fp", make_model=lambda: nn.Linear(4, 1), train_inputs=x, train_targets=y,
                    probe_inputs=x[:16], probe_targets=y[:16], loss_fn=F.mse_loss, default_targets=(1e6,),
                    extra_steps=1)
"""


@pytest.mark.skipif(not engine_available(), reason="the engine (surge.engine) is not installed")
def test_a_changed_user_workload_is_not_silently_reused(tmp_path, monkeypatch):
    import sys

    import surge.workloads as workloads
    from surge.sweep.executor import run_sweep

    mod = tmp_path / "fp_workload_mod.py"
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(scale):
        mod.write_text(WORKLOAD_SRC.format(scale=scale))
        sys.modules.pop("fp_workload_mod", None)
        workloads._CACHE.clear()

    spec = SweepSpec(workload="fp_workload_mod:workload", lr=[1e-2, 2e-2], batch_size=[2, 4], max_steps=5)
    write(1.0)
    first = run_sweep(spec, tmp_path / "s.db")
    assert first.ran == 4
    write(1.0)
    assert run_sweep(spec, tmp_path / "s.db").skipped == 4  # unchanged: reused
    write(2.0)
    again = run_sweep(spec, tmp_path / "s.db")
    assert again.skipped == 0 and again.ran == 4  # changed data: trained again, not reused
    plan = plan_sweep(spec)
    assert "workload_fingerprint" in plan.trial_config(2, 1e-2, 0)
    assert "workload_fingerprint" not in plan_sweep(spec.replace(workload="fake"), workload=INFO).trial_config(
        2, 1e-2, 0
    )
