"""SIGKILL a running ``surge sweep run`` part-way, rerun it, and compare with an uninterrupted run.

Checks that (1) no trial finished before the kill is recomputed or lost (same row ids and creation
times), (2) the groups trained by the rerun are exactly the ones missing, and (3) the final store has
the same numbers as a store filled by one uninterrupted run (same seeds; CPU, so bit-identical).
Run once against the deterministic fake runner and once against the real engine (when installed).
"""

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from surge_sweep_fakes import cli_command, engine_available

from surge.sweep import SweepStore

FAKE_SPEC = """
name = "kill-me"
workload = "fake"
rounds = 4
group_size = 6
max_steps = 3000
[lr]
values = [1e-3, 3e-3, 0.1]
[batch_size]
values = [1, 4, 16, 64]
"""


def surge(args, env_extra, **kw):
    env = {**os.environ, **env_extra}
    return subprocess.Popen(
        cli_command(*args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def count_rows(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.Error:
        return 0


def snapshot(path: Path):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT trial_key, rowid, created_at FROM trials ORDER BY trial_key").fetchall()


def group_keys(path: Path):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT trial_key, group_key FROM trials ORDER BY trial_key").fetchall()


def numbers(path: Path) -> pd.DataFrame:
    with SweepStore(path, create=False) as st:
        frame = st.trials_frame()
    return frame.drop(columns=["created_at", "wall_seconds"]).reset_index(drop=True)


def kill_part_way(args, env, store: Path, total: int, timeout: float = 120.0):
    proc = surge(args, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = count_rows(store)
        if n > 0:
            break
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before it could be killed: {proc.communicate()}")
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("no group was committed in time")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    n = count_rows(store)
    assert 0 < n < total, f"{n} of {total} trials were stored at the kill; expected part of them"
    return n


def run_to_end(args, env):
    proc = surge(args, env)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return out


def groups_logged(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_sigkill_then_resume_equals_uninterrupted_fake_runner(tmp_path):
    spec = tmp_path / "kill-me.toml"
    spec.write_text(FAKE_SPEC)
    runner = ["--runner", "surge_sweep_fakes:run_group"]
    total = 3 * 4 * 4
    store = tmp_path / "killed.db"
    killed_log, resumed_log, clean_log = tmp_path / "killed.log", tmp_path / "resumed.log", tmp_path / "clean.log"

    kill_part_way(
        ["sweep", "run", str(spec), "--store", str(store), *runner],
        {"SURGE_FAKE_SLEEP": "0.4", "SURGE_FAKE_LOG": str(killed_log)},
        store,
        total,
    )
    before = snapshot(store)
    assert len(before) % 6 == 0  # whole groups only
    run_to_end(["sweep", "run", str(spec), "--store", str(store), *runner], {"SURGE_FAKE_LOG": str(resumed_log)})
    after = snapshot(store)
    assert set(before) <= set(after) and len(after) == total  # nothing lost, nothing rewritten

    clean = tmp_path / "clean.db"
    run_to_end(["sweep", "run", str(spec), "--store", str(clean), *runner], {"SURGE_FAKE_LOG": str(clean_log)})
    pd.testing.assert_frame_equal(numbers(store), numbers(clean))

    # The rerun trained exactly the groups without a row, each with its original composition.
    committed = len(before) // 6
    assert groups_logged(resumed_log) == groups_logged(clean_log)[committed:]


@pytest.mark.skipif(not engine_available(), reason="the engine (surge.engine) is not installed yet")
def test_sigkill_then_resume_equals_uninterrupted_real_engine(tmp_path):
    """The real engine on a user workload ('package.module:attribute' from this test folder)."""
    spec = tmp_path / "engine.toml"
    spec.write_text("""
name = "engine-kill"
workload = "surge_sweep_tiny_workload:workload"
rounds = 4
group_size = 2
max_steps = 300
[lr]
values = [1e-2, 3e-2]
[batch_size]
values = [2, 4, 8, 16]
""")
    total = 2 * 4 * 4
    store = tmp_path / "killed.db"
    env = {"OMP_NUM_THREADS": "1"}
    kill_part_way(["sweep", "run", str(spec), "--store", str(store)], env, store, total)
    before = snapshot(store)
    assert len(before) % 2 == 0  # whole groups only
    run_to_end(["sweep", "run", str(spec), "--store", str(store)], env)
    after = snapshot(store)
    assert set(before) <= set(after) and len(after) == total

    clean = tmp_path / "clean.db"
    run_to_end(["sweep", "run", str(spec), "--store", str(clean)], env)
    a, b = numbers(store), numbers(clean)
    assert (a.status == "ok").all(), a.error.dropna().unique()
    assert a.reached.all()
    pd.testing.assert_frame_equal(a, b)
    # Every trial trained in a group of the same composition as in the uninterrupted run.
    assert group_keys(store) == group_keys(clean)


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_stops_cleanly_and_prints_the_resume_command(tmp_path, workers):
    if workers > 1 and not engine_available():
        pytest.skip("worker processes need the engine's GroupConfig to unpickle")
    spec = tmp_path / "kill-me.toml"
    spec.write_text(FAKE_SPEC)
    store = tmp_path / "s.db"
    args = [
        "sweep",
        "run",
        str(spec),
        "--store",
        str(store),
        "--runner",
        "surge_sweep_fakes:run_group",
        "--workers",
        str(workers),
    ]
    proc = surge(args, {"SURGE_FAKE_SLEEP": "0.4"})
    deadline = time.monotonic() + 120
    while count_rows(store) == 0 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    text = " ".join(err.split())
    assert "interrupted:" in text and "trials are done and saved in" in text
    resume = next(line for line in err.splitlines() if line.startswith("resume with: "))
    assert resume == "resume with: " + f"surge sweep run {spec} --store {store}" + (
        f" --workers {workers}" if workers > 1 else ""
    )
    n = count_rows(store)
    assert n % 6 == 0 and 0 < n < 48
