"""Planning: trial keys, seeds, and groups as a pure function of the spec."""

import pytest
import surge_sweep_fakes as fakes

from surge.sweep import BatchGrid, LRGrid, SweepSpec, plan_sweep, trial_key
from surge.sweep.plan import WorkloadInfo


def spec(**kw) -> SweepSpec:
    base = dict(workload="fake", lr=LRGrid(values=(1e-3, 2e-3, 3e-3)), batch_size=BatchGrid(values=(2, 8)), rounds=4)
    base.update(kw)
    return SweepSpec(**base)


def test_every_grid_point_once_with_seed_base_plus_round():
    plan = plan_sweep(spec(seed=10), workload=fakes.INFO)
    points = [(t.batch_size, t.lr, t.round, t.seed) for t in plan.trials()]
    assert len(points) == len(set(points)) == plan.n_trials == 3 * 2 * 4
    assert {(b, lr, r) for b, lr, r, _ in points} == {
        (b, lr, r) for b in (2, 8) for lr in (1e-3, 2e-3, 3e-3) for r in range(4)
    }
    assert all(seed == 10 + r for _, _, r, seed in points)
    assert len({t.key for t in plan.trials()}) == plan.n_trials


def test_defaults_come_from_the_workload_unless_the_spec_sets_them():
    plan = plan_sweep(spec(), workload=fakes.INFO)
    assert plan.target_losses == (1.0, 0.5) and plan.extra_steps == 3 and plan.batch_unit == "examples"
    plan = plan_sweep(spec(target_loss=(0.9,), extra_steps=7), workload=fakes.INFO)
    assert plan.target_losses == (0.9,) and plan.extra_steps == 7
    assert plan.summary()["target_loss_source"] == "spec"


def test_resolver_is_used_and_its_errors_pass_through():
    assert plan_sweep(spec(workload="fake-tokens"), resolver=fakes.resolve).batch_unit == "tokens"
    with pytest.raises(ValueError, match=r"unknown workload 'nope'"):
        plan_sweep(spec(workload="nope"), resolver=fakes.resolve)


def test_unusable_workload_defaults_are_named():
    bad = WorkloadInfo(name="w", default_targets=(0.5, 0.9), extra_steps=3, batch_unit="examples")
    with pytest.raises(ValueError, match=r"workload 'fake' has unusable defaults: target_loss must be strictly"):
        plan_sweep(spec(), workload=bad)


def test_groups_hold_one_batch_size_and_all_lrs_of_a_chunk_of_rounds():
    plan = plan_sweep(spec(rounds=5, group_size=7), workload=fakes.INFO)  # 3 lrs -> 2 rounds per group
    for g in plan.groups:
        assert len({t.batch_size for t in g.trials}) == 1 and g.batch_size == g.trials[0].batch_size
        assert len(g) <= 7
        assert [(t.round, t.lr) for t in g.trials] == [(r, lr) for r in g.rounds for lr in (1e-3, 2e-3, 3e-3)]
    assert [(g.rounds, g.batch_size) for g in plan.groups] == [
        ((0, 1), 2),
        ((0, 1), 8),
        ((2, 3), 2),
        ((2, 3), 8),
        ((4,), 2),
        ((4,), 8),
    ]
    assert [g.index for g in plan.groups] == list(range(6))


def test_more_lrs_than_group_size_split_the_lrs():
    lrs = tuple(1e-4 * k for k in range(1, 8))
    plan = plan_sweep(spec(lr=LRGrid(values=lrs), rounds=2, group_size=3), workload=fakes.INFO)
    assert [len(g) for g in plan.groups] == [3, 3, 1] * 4
    assert sorted(t.key for t in plan.trials()) == sorted({t.key for t in plan.trials()})


def test_planning_is_pure_and_adding_rounds_keeps_whole_groups():
    a = plan_sweep(spec(rounds=6, group_size=6), workload=fakes.INFO)
    b = plan_sweep(spec(rounds=6, group_size=6), workload=fakes.INFO)
    assert a == b
    more = plan_sweep(spec(rounds=9, group_size=6), workload=fakes.INFO)
    assert more.groups[: len(a.groups)] == a.groups  # rounds 0-5 are cut the same way


def test_trial_key_covers_what_decides_the_numbers_and_nothing_else():
    base = plan_sweep(spec(), workload=fakes.INFO)
    key = base.groups[0].trials[0].key
    same = [
        spec(device="cuda"),
        spec(strategy="loop"),
        spec(data_dir="/elsewhere"),
        spec(name="other"),
        spec(group_size=1),
        spec(rounds=1),
    ]
    for s in same:
        assert plan_sweep(s, workload=fakes.INFO).groups[0].trials[0].key == key, s
    from surge.sweep import OptimizerConfig

    different = [
        spec(workload="fake2"),
        spec(optimizer=OptimizerConfig(betas=(0.0, 0.0))),
        spec(optimizer=OptimizerConfig(eps=1e-6)),
        spec(optimizer=OptimizerConfig(name="adamw")),
        spec(target_loss=(0.9,)),
        spec(extra_steps=9),
        spec(max_steps=77),
        spec(max_examples=1000),
        spec(dtype="float64"),
        spec(seed=1),
    ]
    for s in different:
        assert plan_sweep(s, workload=fakes.INFO).groups[0].trials[0].key != key, s


def test_trial_key_is_the_hash_of_the_canonical_config():
    import hashlib
    import json

    plan = plan_sweep(spec(), workload=fakes.INFO)
    t = plan.groups[0].trials[0]
    config = plan.trial_config(t.batch_size, t.lr, t.seed)
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    assert t.key == trial_key(config) == hashlib.sha256(text.encode()).hexdigest()
    assert config["lr"] == 1e-3 and config["batch_size"] == 2 and config["target_losses"] == [1.0, 0.5]


def test_group_config_matches_the_engine_protocol(group_config_type):
    plan = plan_sweep(spec(max_examples=999, strategy="lockstep", dtype="float64"), workload=fakes.INFO)
    g = plan.groups[1]
    cfg = plan.group_config(g, device="cuda")
    assert isinstance(cfg, group_config_type)
    assert cfg.batch_size == g.batch_size and cfg.lrs == g.lrs and cfg.seeds == g.seeds
    assert cfg.target_losses == (1.0, 0.5) and cfg.extra_steps == 3 and cfg.max_examples == 999
    assert cfg.device == "cuda" and cfg.dtype == "float64" and cfg.strategy == "lockstep"
    assert cfg.optimizer.name == "adam" and cfg.optimizer.betas == (0.9, 0.999)


def test_summary_has_the_plan_json_keys():
    s = plan_sweep(spec(), workload=fakes.INFO).summary()
    for key in ("workload", "optimizer", "betas", "lr", "batch_size", "rounds", "target_loss", "extra_steps", "trials"):
        assert key in s
    assert s["trials"] == 24 and s["lr"] == [1e-3, 2e-3, 3e-3] and s["betas"] == [0.9, 0.999]


def test_a_dry_run_plans_a_workload_that_cannot_load_when_the_spec_sets_targets():
    from surge.sweep.plan import WorkloadUnavailable

    def unavailable(name, data_dir=None):
        raise WorkloadUnavailable(f"workload {name!r} cannot load: FileNotFoundError: no data")

    with pytest.raises(WorkloadUnavailable, match=r"cannot load: FileNotFoundError: no data"):
        plan_sweep(spec(target_loss=(0.9,), extra_steps=4), resolver=unavailable)  # strict: run needs it
    plan = plan_sweep(spec(target_loss=(0.9,), extra_steps=4), resolver=unavailable, strict=False)
    assert plan.target_losses == (0.9,) and plan.extra_steps == 4 and plan.n_trials == 24
    assert plan.batch_unit == "unknown" and "no data" in plan.summary()["workload_unavailable"]
    with pytest.raises(WorkloadUnavailable, match=r"no data"):  # the targets would have to come from it
        plan_sweep(spec(), resolver=unavailable, strict=False)


def test_max_examples_below_the_largest_batch_size():
    with pytest.raises(ValueError, match=r"max_examples \(4\) must be at least the largest batch size \(8\)"):
        plan_sweep(spec(max_examples=4), workload=fakes.INFO)


def test_the_registry_resolves_builtin_and_user_workloads_and_names_unknown_ones():
    pytest.importorskip("torch")
    from surge_sweep_fakes import engine_available

    if not engine_available():
        pytest.skip("the workload registry is not installed")
    from surge.sweep.plan import resolve_workload

    info = resolve_workload("surge_sweep_tiny_workload:workload")
    assert info.default_targets == (4.0, 2.0) and info.extra_steps == 3 and info.batch_unit == "examples"
    with pytest.raises(ValueError, match=r"unknown workload 'cnn-fashoin-mnist'"):
        resolve_workload("cnn-fashoin-mnist")
    with pytest.raises(
        ValueError, match=r"workload 'no_such_module_xyz:w': no module 'no_such_module_xyz' in the current folder"
    ):
        resolve_workload("no_such_module_xyz:w")


def test_the_sweep_layer_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; import surge.sweep, surge.cli.sweep; from surge.sweep import *; "
        "p = plan_sweep(get_preset('cnn-small-batch'), workload=WorkloadInfo('w', (1.0,), 10, 'examples')); "
        "SweepStore(sys.argv[1]).register_sweep(p); "
        "bad = [m for m in ('torch', 'surge.engine', 'surge.workloads') if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.db")], capture_output=True, text=True)
    assert proc.returncode == 0, f"imported: {proc.stdout.strip()} {proc.stderr}"
