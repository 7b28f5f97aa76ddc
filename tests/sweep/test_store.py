"""The SQLite store: schema, one transaction per group, no overwrite of finished trials, frame and export."""

import math
import sqlite3

import pandas as pd
import pytest
import surge_sweep_fakes as fakes

from surge.sweep import FRAME_COLUMNS, BatchGrid, LRGrid, SweepSpec, SweepStore, plan_sweep


class _Cfg:
    def __init__(self, group, plan):
        self.batch_size, self.lrs, self.seeds = group.batch_size, group.lrs, group.seeds
        self.target_losses, self.extra_steps, self.max_steps = plan.target_losses, plan.extra_steps, plan.spec.max_steps


@pytest.fixture
def plan():
    spec = SweepSpec(
        workload="fake", lr=LRGrid(values=(1e-3, 0.1)), batch_size=BatchGrid(values=(2, 4)), rounds=2, max_steps=500
    )
    return plan_sweep(spec, workload=fakes.INFO)


def results(plan, group):
    return fakes.run_group(_Cfg(group, plan))


def test_schema_and_wal(tmp_path, plan):
    with SweepStore(tmp_path / "s.db") as st:
        mode = st._conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
        assert st._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 60000
        tables = {r[0] for r in st._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"meta", "sweeps", "trials", "stages"} <= tables


def test_register_sweep_once_per_spec(tmp_path, plan):
    with SweepStore(tmp_path / "s.db") as st:
        a = st.register_sweep(plan)
        assert st.register_sweep(plan) == a
        other = plan_sweep(plan.spec.replace(rounds=3), workload=fakes.INFO)
        assert st.register_sweep(other) != a
        recs = st.sweeps()
        assert [r.spec for r in recs] == [plan.spec, other.spec]
        assert recs[0].plan() == plan  # rebuilt without the workload registry
        assert "[lr]" in recs[0].spec_toml


def test_record_and_frame(tmp_path, plan):
    with SweepStore(tmp_path / "s.db") as st:
        sid = st.register_sweep(plan)
        g = plan.groups[0]
        res = results(plan, g)
        st.record_trials(sid, plan, g.trials, g.key, results=res)
        frame = st.trials_frame()
    assert tuple(frame.columns) == FRAME_COLUMNS
    assert len(frame) == len(g) * len(plan.target_losses)  # one row per (trial, stage)
    assert str(frame["reached"].dtype) == "boolean" and str(frame["steps"].dtype) == "Int64"
    ok = frame[frame.status == "ok"]
    diverged = frame[frame.status == "diverged"]
    assert set(ok.lr) == {1e-3} and set(diverged.lr) == {0.1}
    r = next(x for x in res if x.status == "ok")
    row = ok[(ok.seed == r.seed) & (ok.stage == 0)].iloc[0]
    st0 = r.stages[0]
    assert row.steps == st0.steps and row.examples == st0.examples == st0.steps * g.batch_size
    assert row.loss_decrease == st0.loss_decrease and row.loss_at_target == st0.loss_at_target  # exact doubles
    assert row.target_loss == 1.0 and row.workload == "fake" and row.beta2 == 0.999 and row.batch_unit == "examples"
    assert row.sweep == "sweep" and row.extra_steps == 3 and row.max_steps == 500 and pd.isna(row.error)
    assert diverged.reached.eq(False).all() and diverged.steps.isna().all()


def test_failed_group_then_retry_replaces_it_and_finished_rows_are_never_overwritten(tmp_path, plan):
    with SweepStore(tmp_path / "s.db") as st:
        sid = st.register_sweep(plan)
        g = plan.groups[0]
        st.record_trials(sid, plan, g.trials, g.key, error="RuntimeError: boom", traceback="tb")
        frame = st.trials_frame()
        assert (frame.status == "failed").all() and (frame.error == "RuntimeError: boom").all()
        assert frame.reached.isna().all() and len(frame) == len(g) * 2  # one row per target, NULL results
        assert st.failure_summary() == [{"error": "RuntimeError: boom", "trials": len(g)}]
        st.record_trials(sid, plan, g.trials, g.key, results=results(plan, g))
        first = st._conn.execute("SELECT trial_key, rowid, created_at FROM trials ORDER BY trial_key").fetchall()
        assert st.finished_keys() == {t.key for t in g.trials}
        # A second write of the same (finished) trials changes nothing.
        st.record_trials(sid, plan, g.trials, g.key, error="late failure")
        assert (
            st._conn.execute("SELECT trial_key, rowid, created_at FROM trials ORDER BY trial_key").fetchall() == first
        )
        assert st.trial_statuses() == {t.key: ("diverged" if t.lr == 0.1 else "ok") for t in g.trials}


def test_a_group_is_all_or_nothing(tmp_path, plan):
    with SweepStore(tmp_path / "s.db") as st:
        sid = st.register_sweep(plan)
        g = plan.groups[0]
        res = results(plan, g)
        with pytest.raises(ValueError, match=r"returned 3 results for 4 trials"):
            st.record_trials(sid, plan, g.trials, g.key, results=res[:-1])
        swapped = [res[1], res[0]] + res[2:]
        with pytest.raises(ValueError, match=r"results must follow the trial order"):
            st.record_trials(sid, plan, g.trials, g.key, results=swapped)
        assert st.trial_statuses() == {}


def test_status_counts(tmp_path, plan):
    with SweepStore(tmp_path / "s.db") as st:
        sid = st.register_sweep(plan)
        g0, g1 = plan.groups[0], plan.groups[1]
        st.record_trials(sid, plan, g0.trials, g0.key, results=results(plan, g0))
        st.record_trials(sid, plan, g1.trials, g1.key, error="E: x")
        s = st.status()
    assert (g0.batch_size, g1.batch_size) == (2, 4)
    assert (s["total"], s["done"], s["failed"], s["pending"]) == (8, 4, 4, 0)
    assert (s["ok"], s["diverged"]) == (2, 2)
    assert s["by_batch_size"] == [  # group 0 is batch size 2 (both rounds), group 1 batch size 4
        {"batch_size": 2, "total": 4, "done": 4, "ok": 2, "diverged": 2, "failed": 0, "pending": 0},
        {"batch_size": 4, "total": 4, "done": 0, "ok": 0, "diverged": 0, "failed": 4, "pending": 0},
    ]
    assert s["sweeps"][0]["total"] == 8


def test_export_csv_and_parquet(tmp_path, plan):
    with SweepStore(tmp_path / "s.db") as st:
        sid = st.register_sweep(plan)
        for g in plan.groups:
            st.record_trials(sid, plan, g.trials, g.key, results=results(plan, g))
        frame = st.trials_frame()
        csv = st.export(tmp_path / "out" / "t.csv")
        pq = st.export(tmp_path / "t.parquet")
        with pytest.raises(ValueError, match=r"--out must end in .csv or .parquet, got '.*t.xlsx'"):
            st.export(tmp_path / "t.xlsx")
    back = pd.read_csv(csv)
    assert list(back.columns) == list(FRAME_COLUMNS) and len(back) == len(frame)
    assert back.loss_decrease.equals(frame.loss_decrease.astype(float))
    pback = pd.read_parquet(pq)
    pd.testing.assert_frame_equal(pback, frame, check_dtype=False)


def test_open_errors(tmp_path):
    with pytest.raises(ValueError, match=r"store '.*missing.db' does not exist"):
        SweepStore(tmp_path / "missing.db", create=False)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValueError, match=r"is not a SQLite database"):
        SweepStore(junk)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.commit()
    with pytest.raises(ValueError, match=r"a SQLite database but not a surge sweep store"):
        SweepStore(other, create=False)
    future = tmp_path / "future.db"
    SweepStore(future).close()
    with sqlite3.connect(future) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(ValueError, match=r"has schema version 999; this surge writes version \d+"):
        SweepStore(future)


def test_exclusive_lock(tmp_path):
    with SweepStore(tmp_path / "s.db") as a, SweepStore(tmp_path / "s.db") as b:
        with a.exclusive():
            with pytest.raises(ValueError, match=r"is in use by another 'surge sweep run' \(pid \d+\)"):
                with b.exclusive():
                    pass
        with b.exclusive():  # released
            pass


def test_nan_loss_is_stored_as_null(tmp_path, plan):
    from dataclasses import replace

    with SweepStore(tmp_path / "s.db") as st:
        sid = st.register_sweep(plan)
        g = plan.groups[0]
        res = results(plan, g)
        res[0] = replace(res[0], stages=tuple(replace(s, loss_after=math.nan) for s in res[0].stages))
        st.record_trials(sid, plan, g.trials, g.key, results=res)
        frame = st.trials_frame()
    assert frame.loss_after.isna().sum() >= 1


def test_an_empty_store(tmp_path):
    with SweepStore(tmp_path / "s.db") as st:
        frame = st.trials_frame()
        assert tuple(frame.columns) == FRAME_COLUMNS and len(frame) == 0
        st.export(tmp_path / "e.csv")
        st.export(tmp_path / "e.parquet")
        assert st.status()["total"] == 0 and st.status()["sweeps"] == []
    assert list(pd.read_csv(tmp_path / "e.csv").columns) == list(FRAME_COLUMNS)


def test_a_directory_is_not_a_store(tmp_path):
    with pytest.raises(ValueError, match=r"store '.*' is a folder; give a file"):
        SweepStore(tmp_path)


def test_the_workload_record_is_kept_with_the_sweep(tmp_path):
    """A workload's metadata (e.g. which tokenizer a language model used) is stated in the store."""
    info = fakes.WorkloadInfo(
        name="fake",
        default_targets=(1.0, 0.5),
        extra_steps=3,
        batch_unit="sequences",
        metadata={"tokenizer": "bpe-local-4096", "tokens_per_sequence": 128},
    )
    spec = SweepSpec(workload="fake", lr=LRGrid(values=(1e-3,)), batch_size=BatchGrid(values=(2,)), max_steps=50)
    with SweepStore(tmp_path / "s.db") as st:
        st.register_sweep(plan_sweep(spec, workload=info))
        rec = st.sweeps()[0]
        assert rec.workload.batch_unit == "sequences"
        assert rec.workload.metadata == {"tokenizer": "bpe-local-4096", "tokens_per_sequence": 128}
        status = st.status()["sweeps"][0]
        assert status["batch_unit"] == "sequences" and status["workload_metadata"]["tokenizer"] == "bpe-local-4096"
