"""The sweep layer on the real engine: statuses, errors, determinism, the smoke preset through the CLI."""

import json

import pandas as pd
import pytest
from surge_sweep_fakes import engine_available

pytestmark = pytest.mark.skipif(not engine_available(), reason="the engine (surge.engine) is not installed")

TINY = "surge_sweep_tiny_workload:workload"
REFUSING = "surge_sweep_tiny_workload:workload_refusing_16"


def numbers(store):
    from surge.sweep import SweepStore

    with SweepStore(store, create=False) as st:
        return st.trials_frame().drop(columns=["created_at", "wall_seconds"])


def test_ok_diverged_and_failed_trials_on_the_real_engine(tmp_path):
    from surge.sweep import BatchGrid, LRGrid, OptimizerConfig, SweepSpec, SweepStore, run_sweep

    spec = SweepSpec(
        name="e2e",
        workload=REFUSING,
        optimizer=OptimizerConfig(name="sgd"),
        lr=LRGrid(values=(1e-2, 3e-2, 3.0)),
        batch_size=BatchGrid(values=(4, 16, 32)),
        rounds=2,
        max_steps=300,
    )
    summary = run_sweep(spec, tmp_path / "a.db")
    assert (summary.total, summary.ran, summary.interrupted) == (18, 18, False)
    assert (summary.ok, summary.diverged, summary.failed) == (8, 4, 6)
    df = numbers(tmp_path / "a.db")
    trials = df[df.stage == 0].set_index(["batch_size", "lr", "seed"])
    # lr = 3 diverges under plain SGD: recorded as diverged, its targets censored.
    diverged = trials[trials.status == "diverged"]
    assert set(diverged.index.get_level_values("lr")) == {3.0}
    assert (~diverged.reached.astype(bool)).all() and diverged.diverged_at_step.notna().all()
    # The batch size the model refuses fails with the error; the sweep went on to batch size 32.
    failed = trials[trials.status == "failed"]
    assert set(failed.index.get_level_values("batch_size")) == {16}
    assert failed.error.str.contains("RuntimeError: this model refuses batches of 16").all()
    ok = df[df.status == "ok"]
    assert set(ok.batch_size) == {4, 32} and ok.reached.all()
    assert (ok.examples == ok.steps * ok.batch_size).all() and (ok.loss_decrease > 0).any()
    assert (df.workload == REFUSING).all() and (df.batch_unit == "examples").all()

    # Deterministic on the CPU: a second store gets the same numbers; a rerun trains nothing new
    # except the failed group (which fails again).
    run_sweep(spec, tmp_path / "b.db")
    pd.testing.assert_frame_equal(numbers(tmp_path / "a.db"), numbers(tmp_path / "b.db"))
    again = run_sweep(spec, tmp_path / "a.db")
    assert again.skipped == 12 and again.ran == 6 and again.failed == 6
    with SweepStore(tmp_path / "a.db", create=False) as st:
        assert st.status()["failed"] == 6


def test_smoke_preset_through_the_cli(tmp_path, capsys):
    from surge.cli.main import main

    store = tmp_path / "smoke.db"
    assert main(["sweep", "run", "--preset", "smoke", "--store", str(store), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["total"] == res["done"] == 18 and res["failed"] == 0
    assert main(["sweep", "status", "--store", str(store), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert (st["total"], st["done"], st["failed"], st["pending"]) == (18, 18, 0, 0)
    assert main(["sweep", "export", "--store", str(store), "--out", str(tmp_path / "smoke.parquet")]) == 0
    assert "wrote 36 rows (18 trials) to" in capsys.readouterr().out
    df = pd.read_parquet(tmp_path / "smoke.parquet")
    assert len(df) == 18 * 2 and set(df.target_loss) == {2.0, 1.5}
    assert df.reached.all()  # the smoke targets are reached by every trial within the budget
    assert main(["sweep", "run", "--preset", "smoke", "--store", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ran"] == 0


def test_cnn_presets_use_the_workload_defaults(monkeypatch):
    """The CNN presets write out cnn-fashion-mnist's default targets and N; they must agree with it."""
    import numpy as np

    from surge.sweep import get_preset
    from surge.workloads import builtin

    rng = np.random.default_rng(0)
    monkeypatch.setattr(
        builtin,
        "load_fashion_mnist",
        lambda data_dir=None, **kw: (
            rng.integers(0, 256, size=(32, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, size=32),
        ),
    )
    wl = builtin.cnn_fashion_mnist()
    for name in ("cnn-small-batch", "cnn-large-batch"):
        spec = get_preset(name)
        assert spec.target_loss == wl.default_targets and spec.extra_steps == wl.extra_steps == 10
