"""The executor against a deterministic fake runner: skip finished, record failures, stop cleanly, resume."""

import pandas as pd
import pytest
import surge_sweep_fakes as fakes
from surge_sweep_fakes import engine_available
from surge_sweep_fakes import plan as make_plan

from surge.sweep import SweepStore, run_sweep

VOLATILE = ["created_at", "wall_seconds"]  # differ between runs by nature


def frame(path):
    with SweepStore(path, create=False) as st:
        return st.trials_frame()


def numbers(df):
    return df.drop(columns=VOLATILE).reset_index(drop=True)


class Counting:
    """Wraps the fake runner and records which groups it trained."""

    def __init__(self, inner=fakes.run_group):
        self.inner, self.calls = inner, []

    def __call__(self, config, *, progress=None):
        self.calls.append((config.batch_size, tuple(config.seeds), tuple(config.lrs)))
        return self.inner(config, progress=progress)


def test_runs_everything_then_a_rerun_trains_nothing(tmp_path, group_config_type):
    plan = make_plan()
    runner = Counting()
    events = []
    summary = run_sweep(plan, tmp_path / "s.db", runner=runner, progress=events.append)
    assert (summary.total, summary.ran, summary.skipped, summary.pending) == (36, 36, 0, 0)
    assert (summary.ok, summary.diverged, summary.failed, summary.interrupted) == (24, 12, 0, False)
    assert len(runner.calls) == len(plan.groups) == 6  # 3 lrs x 2 rounds per group, 2 round chunks x 3 batch sizes
    assert [e.event for e in events][:2] == ["start", "group_start"] and events[-1].event == "end"
    assert events[-1].trials_done == 36 and events[-1].groups_done == 6
    assert any(e.event == "step" and 0 < e.group_fraction <= 1 for e in events)  # the first of a group always
    df = frame(tmp_path / "s.db")
    assert len(df) == 36 * 2 and set(df.status) == {"ok", "diverged"}
    assert (df[df.lr == 0.1].status == "diverged").all()

    again = Counting()
    summary = run_sweep(plan, tmp_path / "s.db", runner=again)
    assert again.calls == [] and summary.ran == 0 and summary.skipped == 36 and summary.pending == 0
    pd.testing.assert_frame_equal(frame(tmp_path / "s.db"), df)


def test_a_raising_group_is_recorded_failed_and_the_sweep_goes_on(tmp_path, group_config_type, monkeypatch):
    monkeypatch.setenv("SURGE_FAKE_FAIL_BATCH", "4")
    plan = make_plan()
    summary = run_sweep(plan, tmp_path / "s.db", runner=fakes.run_group)
    assert summary.failed == summary.failed_total == 12 and summary.ok + summary.diverged == summary.done == 24
    assert summary.pending == 0
    df = frame(tmp_path / "s.db")
    failed = df[df.status == "failed"]
    assert set(failed.batch_size) == {4}
    assert (failed.error == "RuntimeError: boom at batch size 4").all()
    with SweepStore(tmp_path / "s.db", create=False) as st:
        tb = st._conn.execute("SELECT traceback FROM trials WHERE status = 'failed' LIMIT 1").fetchone()[0]
        status = st.status()
    assert "surge_sweep_fakes.py" in tb and "boom at batch size 4" in tb
    assert (status["done"], status["failed"], status["pending"]) == (24, 12, 0)

    # A rerun retries the failed trials only; once they succeed the store equals a clean run's.
    monkeypatch.delenv("SURGE_FAKE_FAIL_BATCH")
    runner = Counting()
    summary = run_sweep(plan, tmp_path / "s.db", runner=runner)
    assert {c[0] for c in runner.calls} == {4} and summary.ran == 12 and summary.failed == 0
    run_sweep(plan, tmp_path / "clean.db", runner=fakes.run_group)
    pd.testing.assert_frame_equal(numbers(frame(tmp_path / "s.db")), numbers(frame(tmp_path / "clean.db")))


def test_no_retry_failed(tmp_path, group_config_type, monkeypatch):
    monkeypatch.setenv("SURGE_FAKE_FAIL_BATCH", "16")
    plan = make_plan()
    run_sweep(plan, tmp_path / "s.db", runner=fakes.run_group)
    monkeypatch.delenv("SURGE_FAKE_FAIL_BATCH")
    runner = Counting()
    summary = run_sweep(plan, tmp_path / "s.db", runner=runner, retry_failed=False)
    assert runner.calls == [] and (summary.failed, summary.failed_total, summary.pending) == (0, 12, 0)


def test_results_that_do_not_fit_the_group_fail_it(tmp_path, group_config_type):
    summary = run_sweep(make_plan(rounds=1), tmp_path / "s.db", runner=fakes.run_group_wrong_count)
    assert summary.failed == 9
    assert set(frame(tmp_path / "s.db").error) == {"ValueError: the runner returned 2 results for 3 trials"}


def test_ctrl_c_stops_cleanly_and_a_resume_equals_an_uninterrupted_run(tmp_path, group_config_type):
    plan = make_plan()
    fakes.run_group_interrupt_second.calls = 0
    summary = run_sweep(plan, tmp_path / "s.db", runner=fakes.run_group_interrupt_second)
    assert summary.interrupted and summary.ran == 6 and summary.done == 6 and summary.pending == 30
    with SweepStore(tmp_path / "s.db", create=False) as st:
        kept = st._conn.execute("SELECT trial_key, rowid, created_at FROM trials ORDER BY trial_key").fetchall()
    assert len(kept) == 6

    runner = Counting()
    summary = run_sweep(plan, tmp_path / "s.db", runner=runner)
    assert not summary.interrupted and summary.skipped == 6 and summary.ran == 30 and len(runner.calls) == 5
    first = plan.groups[0]
    assert (first.batch_size, first.seeds, first.lrs) not in runner.calls  # the finished group was not retrained
    with SweepStore(tmp_path / "s.db", create=False) as st:
        rows = st._conn.execute("SELECT trial_key, rowid, created_at FROM trials ORDER BY trial_key").fetchall()
    assert set(kept) <= set(rows)

    run_sweep(plan, tmp_path / "clean.db", runner=fakes.run_group)
    pd.testing.assert_frame_equal(numbers(frame(tmp_path / "s.db")), numbers(frame(tmp_path / "clean.db")))


def test_groups_keep_their_composition_on_resume(tmp_path, group_config_type, monkeypatch):
    """The runner sees the same (batch size, seeds, lrs) groups whether or not the sweep was interrupted."""
    plan = make_plan()
    clean = Counting()
    run_sweep(plan, tmp_path / "clean.db", runner=clean)
    fakes.run_group_interrupt_second.calls = 0
    run_sweep(plan, tmp_path / "s.db", runner=fakes.run_group_interrupt_second)
    resumed = Counting()
    run_sweep(plan, tmp_path / "s.db", runner=resumed)
    assert resumed.calls == clean.calls[1:]


def test_more_rounds_later_trains_only_the_new_rounds(tmp_path, group_config_type):
    run_sweep(make_plan(rounds=2), tmp_path / "s.db", runner=fakes.run_group)
    runner = Counting()
    summary = run_sweep(make_plan(rounds=4), tmp_path / "s.db", runner=runner)
    assert summary.skipped == 18 and summary.ran == 18
    assert all(set(seeds) == {2, 3} for _, seeds, _ in runner.calls)
    with SweepStore(tmp_path / "s.db", create=False) as st:
        assert len(st.sweeps()) == 2 and st.status()["total"] == 36 and st.status()["pending"] == 0


def test_bad_arguments(tmp_path, group_config_type):
    with pytest.raises(ValueError, match=r"workers must be positive, got 0"):
        run_sweep(make_plan(), tmp_path / "s.db", runner=fakes.run_group, workers=0)
    with pytest.raises(ValueError, match=r"runner 'nowhere_xyz:run': cannot import 'nowhere_xyz'"):
        run_sweep(make_plan(), tmp_path / "s.db", runner="nowhere_xyz:run")
    with pytest.raises(ValueError, match=r"module 'surge_sweep_fakes' has no attribute 'nope'"):
        run_sweep(make_plan(), tmp_path / "s.db", runner="surge_sweep_fakes:nope")
    with pytest.raises(ValueError, match=r"runner must be a callable or 'package.module:attribute'"):
        run_sweep(make_plan(), tmp_path / "s.db", runner="no-colon")
    with pytest.raises(ValueError, match=r"with workers > 1 the runner must pickle"):
        run_sweep(make_plan(), tmp_path / "s.db", runner=lambda c, progress=None: [], workers=2)


@pytest.mark.skipif(not engine_available(), reason="worker processes need the engine's GroupConfig to unpickle")
def test_workers_give_the_same_store_as_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("SURGE_FAKE_FAIL_BATCH", "16")
    plan = make_plan()
    one = run_sweep(plan, tmp_path / "one.db", runner="surge_sweep_fakes:run_group")
    two = run_sweep(plan, tmp_path / "two.db", runner="surge_sweep_fakes:run_group", workers=2)
    assert (two.ok, two.diverged, two.failed) == (one.ok, one.diverged, one.failed) == (16, 8, 12)
    a, b = numbers(frame(tmp_path / "one.db")), numbers(frame(tmp_path / "two.db"))
    pd.testing.assert_frame_equal(a, b)
