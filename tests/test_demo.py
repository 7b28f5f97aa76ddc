"""`surge demo`: the end-to-end composition, its files, its JSON, and resuming from the store.

The grid is shrunk (monkeypatched) so the test is quick; the real demo grid is exercised by
`bash scripts/demo.sh` and timed in docs/demo.md.
"""

import json

import pytest

import surge.demo
from surge.records import OptimizerConfig
from surge.sweep.spec import BatchGrid, LRGrid, SweepSpec

pytest.importorskip("torch")


@pytest.fixture
def tiny_demo(monkeypatch):
    def spec(quick=False, protocol="branch"):
        return SweepSpec(
            name="demo-test-quick" if quick else "demo-test",
            workload=surge.demo.DEMO_WORKLOAD,
            optimizer=OptimizerConfig(name="adam", betas=(0.0, 0.0)),
            lr=LRGrid(values=(1e-3, 3e-3, 1e-2)),
            batch_size=BatchGrid(values=(4, 16, 64, 256)),
            rounds=2 if quick else 3,
            target_loss=(2.0, 1.6),
            extra_steps=3,
            max_steps=300,
        )

    monkeypatch.setattr(surge.demo, "demo_spec", spec)


def test_demo_writes_everything_and_a_rerun_resumes(tiny_demo, tmp_path, run_cli):
    out = tmp_path / "demo"
    code, stdout, err = run_cli("demo", "--quick", "--out", str(out), "--json")
    assert code == 0, err
    first = json.loads(stdout)
    assert {"stages", "files", "figure1", "sweep"} <= first.keys()
    assert {"batch_size", "mc_optimal_lr", "exact_optimal_lr", "b_noise"} <= first["figure1"].keys()
    assert [s["target_loss"] for s in first["stages"]] == [2.0, 1.6]
    for st in first["stages"]:
        assert {
            "b_noise",
            "b_noise_ci",
            "eps_max",
            "batch_size",
            "optimal_lr",
            "optimal_lr_ci",
            "best_law",
        } <= st.keys()
        assert st["batch_size"] == [4, 16, 64, 256]
    assert first["sweep"]["total"] == 24 and first["sweep"]["ran"] == 24
    for name in ("figure1.png", "report.html", "report.md", "analysis.json", "sweep.sqlite", "b_noise_vs_target.png"):
        assert (out / name).stat().st_size > 0, name

    code, stdout, err = run_cli("demo", "--quick", "--out", str(out), "--json")
    assert code == 0, err
    again = json.loads(stdout)
    assert again["sweep"]["ran"] == 0 and again["sweep"]["skipped"] == 24  # resumed from the store
    assert again["stages"] == first["stages"]

    code, stdout, err = run_cli("demo", "--quick", "--out", str(out))
    assert code == 0 and "What the sweep found" in stdout and "report.html" in stdout


def test_demo_grids_are_what_the_readme_describes():
    full, quick = surge.demo.demo_spec(False), surge.demo.demo_spec(True)
    assert full.workload == quick.workload == "cnn-mnist-sample"
    assert full.optimizer.betas == quick.optimizer.betas == (0.0, 0.0)
    assert (
        len(full.lr.points()) * len(full.batch_size.points()) * full.rounds
        > len(quick.lr.points()) * len(quick.batch_size.points()) * quick.rounds
    )


def test_demo_analyses_only_its_own_sweep(tiny_demo, tmp_path, run_cli):
    """A full demo and then --quick in the same --out: the quick demo's analysis counts its own trials."""
    out = tmp_path / "demo"
    code, stdout, err = run_cli("demo", "--out", str(out), "--json")
    assert code == 0, err
    full = json.loads(stdout)
    code, stdout, err = run_cli("demo", "--quick", "--out", str(out), "--json")
    assert code == 0, err
    quick = json.loads(stdout)
    assert full["sweep"]["total"] == 36 and quick["sweep"]["total"] == 24
    assert quick["n_trials"] == 24 and full["n_trials"] == 36
    for st in quick["stages"]:
        assert sum(st["n_used"]) + sum(st["n_diverged"]) + sum(st["n_censored"]) + sum(st["n_failed"]) == 24


def test_demo_specs_branch_by_default_and_scratch_on_request():
    for quick in (False, True):
        b = surge.demo.demo_spec(quick)
        assert b.protocol == "branch" and b.trunk.batch_size == 32 and b.extra_steps == 10
        s = surge.demo.demo_spec(quick, "scratch")
        assert s.protocol == "scratch" and s.trunk is None
    with pytest.raises(ValueError, match="protocol must be one of 'branch', 'scratch'; got 'x'"):
        surge.demo.demo_spec(False, "x")
