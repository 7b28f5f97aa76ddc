"""The Ray executor on a real local Ray cluster (started here on loopback, one per module; never mocked).

(a) a sweep through Ray gives the same store as the local executor (the fake runner, and the real
engine on a tiny workload: same seeds, same numbers on the CPU); (b) a worker process killed with
SIGKILL in the middle of a group: Ray retries the task, the store is complete and no group is written
twice; (c) the driver killed with SIGKILL and the same command rerun: it resumes, nothing is lost or
recomputed. Plus the executor's argument checks.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

# Ray reads this when it is imported: with "0" a local instance binds to 127.0.0.1 instead of the
# machine's routable address (the GCS, raylet and workers then listen on loopback only).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")

import surge_sweep_fakes as fakes  # noqa: E402
from surge_sweep_fakes import engine_available  # noqa: E402
from surge_sweep_fakes import plan as fake_plan  # noqa: E402

from surge.errors import SurgeError  # noqa: E402
from surge.sweep import BatchGrid, LRGrid, SweepSpec, SweepStore, plan_sweep, run_sweep  # noqa: E402
from surge.sweep.ray_executor import check_address, task_resources  # noqa: E402
from surge.sweep.spec import load_spec  # noqa: E402

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
SLEEP = "0.6"  # seconds each fake group sleeps on a Ray worker (long enough to kill it mid-group)
DRIVER = (
    "import sys; sys.path.insert(0, {here!r}); import surge_sweep_fakes as f; f.install_for_subprocess(); "
    "from surge.cli.main import main; sys.exit(main(sys.argv[1:]))"
)
FAKE_SPEC = """
name = "ray-fake"
workload = "fake"
rounds = 4
group_size = 6
max_steps = 3000
[lr]
values = [1e-3, 3e-3, 0.1]
[batch_size]
values = [1, 4, 16]
"""
FAKE_TOTAL = 3 * 3 * 4


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray instance on loopback for this module; its workers import this checkout and the fakes."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "SURGE_FAKE_SLEEP")}
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(SRC), str(HERE)] + ([saved["PYTHONPATH"]] if saved["PYTHONPATH"] else [])
    )
    os.environ["SURGE_FAKE_SLEEP"] = SLEEP  # read by the fake runner on the workers (they inherit it)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def numbers(path) -> pd.DataFrame:
    with SweepStore(path, create=False) as st:
        frame = st.trials_frame()
    return frame.drop(columns=["created_at", "wall_seconds"]).sort_values(["trial_key", "stage"]).reset_index(drop=True)


def rows(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT trial_key, group_key, rowid, created_at FROM trials ORDER BY trial_key").fetchall()


def count_rows(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.Error:
        return 0


def done_once(events) -> Counter:
    return Counter(e.group.key for e in events if e.event == "group_done")


def test_the_loopback_cluster_is_up(cluster):
    assert cluster.startswith("127.0.0.1:")
    assert ray.cluster_resources()["CPU"] == 2


def test_ray_store_equals_local_store_fake_runner(cluster, tmp_path, monkeypatch, group_config_type):
    plan = fake_plan()
    monkeypatch.setenv("SURGE_FAKE_SLEEP", "0")  # the local run, in this process
    local = run_sweep(plan, tmp_path / "local.db", runner="surge_sweep_fakes:run_group")
    events = []
    remote = run_sweep(
        plan, tmp_path / "ray.db", runner="surge_sweep_fakes:run_group", executor="ray", progress=events.append
    )
    assert (remote.total, remote.ran, remote.failed, remote.pending, remote.interrupted) == (36, 36, 0, 0, False)
    assert (remote.ok, remote.diverged) == (local.ok, local.diverged) == (24, 12)
    pd.testing.assert_frame_equal(numbers(tmp_path / "ray.db"), numbers(tmp_path / "local.db"))
    assert [r[:2] for r in rows(tmp_path / "ray.db")] == [r[:2] for r in rows(tmp_path / "local.db")]  # same groups
    assert done_once(events) == Counter({g.key: 1 for g in plan.groups})
    kinds = [e.event for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("group_start") == len(plan.groups)
    assert events[-1].trials_done == 36 and events[-1].groups_done == len(plan.groups)

    again = run_sweep(plan, tmp_path / "ray.db", runner="surge_sweep_fakes:run_group", executor="ray")
    assert (again.ran, again.skipped) == (0, 36)  # a rerun through Ray trains nothing


@pytest.mark.skipif(not engine_available(), reason="the engine (surge.engine) is not installed")
def test_ray_store_equals_local_store_real_engine(cluster, tmp_path):
    spec = SweepSpec(
        name="ray-engine",
        workload="surge_sweep_tiny_workload:workload",
        lr=LRGrid(values=(1e-2, 3e-2)),
        batch_size=BatchGrid(values=(4, 16)),
        rounds=2,
        group_size=2,
        max_steps=200,
    )
    plan = plan_sweep(spec)
    local = run_sweep(plan, tmp_path / "local.db")
    remote = run_sweep(plan, tmp_path / "ray.db", executor="ray", cpus_per_group=1)
    assert (remote.ran, remote.failed, local.failed) == (8, 0, 0)
    a, b = numbers(tmp_path / "ray.db"), numbers(tmp_path / "local.db")
    assert (a.status == "ok").all() and a.reached.all()
    pd.testing.assert_frame_equal(a, b)  # bit-identical on the CPU


def _ray_group_workers() -> dict[int, str]:
    """pid -> title of the Ray workers now running a sweep group (their title is 'ray::surge-group-<i>')."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::surge-group-"):
            out[int(entry.name)] = title
    return out


def test_a_worker_killed_mid_group_is_retried_and_recorded_once(cluster, tmp_path, group_config_type):
    plan = fake_plan()
    killed: list[tuple[int, str, float]] = []
    stop = threading.Event()

    def killer():
        while not stop.is_set() and not killed:
            found = _ray_group_workers()
            if found:
                time.sleep(0.2)  # well inside the group's sleep
                pid, title = sorted(found.items())[0]
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append((pid, title, time.time()))
                except ProcessLookupError:
                    continue
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    events = []
    try:
        summary = run_sweep(
            plan,
            tmp_path / "s.db",
            runner="surge_sweep_fakes:run_group",
            executor="ray",
            max_retries=2,
            progress=events.append,
        )
    finally:
        stop.set()
        thread.join(timeout=10)
    assert killed, "no Ray worker was seen running a group"
    pid, title, when = killed[0]
    assert not os.path.exists(f"/proc/{pid}")
    assert (summary.ran, summary.failed, summary.failed_total, summary.pending) == (36, 0, 0, 0)
    assert done_once(events) == Counter({g.key: 1 for g in plan.groups})  # every group written exactly once
    frame = numbers(tmp_path / "s.db")
    assert set(frame.status) == {"ok", "diverged"} and frame.trial_key.nunique() == 36
    # the killed group's trials were written after the kill, by the retried task, with the right numbers
    index = int(title.rsplit("-", 1)[1])
    group = plan.groups[index]
    stored = {k: (g, c) for k, g, _, c in rows(tmp_path / "s.db")}
    assert all(stored[t.key][0] == group.key for t in group.trials)
    from datetime import datetime

    assert all(datetime.fromisoformat(stored[t.key][1]).timestamp() > when for t in group.trials)


def test_retries_used_up_record_the_group_as_failed_and_a_rerun_finishes_it(cluster, tmp_path, group_config_type):
    plan = fake_plan(batch_size=BatchGrid(values=(4,)), rounds=2)  # one group of 6 trials
    seen: set[int] = set()
    stop = threading.Event()

    def killer():  # kill every attempt: the first and its one retry
        while not stop.is_set():
            for pid in _ray_group_workers():
                if pid not in seen:
                    seen.add(pid)
                    time.sleep(0.1)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        summary = run_sweep(
            plan, tmp_path / "s.db", runner="surge_sweep_fakes:run_group", executor="ray", max_retries=1
        )
    finally:
        stop.set()
        thread.join(timeout=10)
    assert len(seen) == 2 and (summary.failed, summary.failed_total, summary.done) == (6, 6, 0)
    with SweepStore(tmp_path / "s.db", create=False) as st:
        errors = st.failure_summary()
    assert errors[0]["trials"] == 6 and "died 2 times" in errors[0]["error"], errors
    again = run_sweep(plan, tmp_path / "s.db", runner="surge_sweep_fakes:run_group", executor="ray")
    assert (again.ran, again.failed_total, again.done) == (6, 0, 6)


def _cli(args, **kw):
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER.format(here=str(HERE)), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
        **kw,
    )


def test_the_driver_killed_then_rerun_resumes_without_recomputing(cluster, tmp_path, monkeypatch):
    spec = tmp_path / "ray-fake.toml"
    spec.write_text(FAKE_SPEC)
    store = tmp_path / "killed.db"
    args = [
        "sweep",
        "run",
        str(spec),
        "--store",
        str(store),
        "--runner",
        "surge_sweep_fakes:run_group",
        "--executor",
        "ray",
        "--address",
        cluster,
        "--json",
    ]
    proc = _cli(args)
    deadline = time.monotonic() + 180
    while count_rows(store) == 0 and time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the driver ended before it could be killed: {proc.communicate()}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    before = rows(store)
    assert 0 < len(before) < FAKE_TOTAL and len(before) % 6 == 0, len(before)  # whole groups only

    rerun = _cli(args)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    result = json.loads(out)
    assert (result["skipped"], result["ran"], result["done"], result["failed"]) == (
        len(before),
        FAKE_TOTAL - len(before),
        FAKE_TOTAL,
        0,
    )  # only the missing groups were trained
    assert result["executor"] == "ray" and "--executor ray --address" in result["resume"]
    after = rows(store)
    assert set(before) <= set(after) and len(after) == FAKE_TOTAL  # nothing lost, nothing rewritten

    clean = tmp_path / "clean.db"  # an uninterrupted local run of the same spec, in this process
    with monkeypatch.context() as m:
        m.setenv("SURGE_FAKE_SLEEP", "0")
        run_sweep(plan_sweep(load_spec(spec), workload=fakes.INFO), clean, runner="surge_sweep_fakes:run_group")
    pd.testing.assert_frame_equal(numbers(store), numbers(clean))


def test_bad_arguments_are_one_line_errors(tmp_path, group_config_type, monkeypatch):
    plan = fake_plan()
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "ray", None)  # as if the extra were not installed
        with pytest.raises(
            SurgeError,
            match=r"executor 'ray' needs the ray package, which does not import here "
            r".*; install it with: pip install 'surge\[ray\]'",
        ):
            run_sweep(plan, tmp_path / "s.db", runner=fakes.run_group, executor="ray")
    with pytest.raises(SurgeError, match=r"executor must be 'local' or 'ray', got 'dask'"):
        run_sweep(plan, tmp_path / "s.db", runner=fakes.run_group, executor="dask")
    with pytest.raises(SurgeError, match=r"apply to executor='ray' only"):
        run_sweep(plan, tmp_path / "s.db", runner=fakes.run_group, gpus_per_group=1)
    with pytest.raises(
        SurgeError,
        match=r"gpus_per_group must be 0, a fraction in \(0, 1\] or a whole number "
        r"of GPUs, got 1.5",
    ):
        run_sweep(plan, tmp_path / "s.db", runner=fakes.run_group, executor="ray", gpus_per_group=1.5)
    with pytest.raises(SurgeError, match=r"cpus_per_group must be > 0, got 0.0"):
        run_sweep(plan, tmp_path / "s.db", runner=fakes.run_group, executor="ray", cpus_per_group=0)
    with pytest.raises(SurgeError, match=r"max_retries must be >= 0, got -1"):
        run_sweep(plan, tmp_path / "s.db", runner=fakes.run_group, executor="ray", max_retries=-1)
    with pytest.raises(
        SurgeError,
        match=r"address must be 'auto', 'local', 'HOST:PORT' or 'ray://HOST:PORT', "
        r"got 'ray://nohost'",
    ):
        check_address("ray://nohost")
    assert check_address("ray://head.example:10001") == "ray://head.example:10001" and check_address("auto") == "auto"
    assert task_resources("cpu", None, None) == (1.0, 0.0) and task_resources("cuda:1", 2, 0.25) == (2.0, 0.25)
    assert task_resources("cuda", None, None) == (1.0, 1.0)
    with pytest.raises(SurgeError, match=r"device 'cuda' needs a GPU per group: give gpus_per_group > 0"):
        task_resources("cuda", None, 0)


def test_a_cluster_without_gpus_refuses_a_gpu_request(cluster, tmp_path, group_config_type):
    with pytest.raises(SurgeError, match=r"gpus_per_group=0.5: the Ray cluster has 0 GPUs"):
        run_sweep(
            fake_plan(), tmp_path / "s.db", runner="surge_sweep_fakes:run_group", executor="ray", gpus_per_group=0.5
        )


def test_ctrl_c_cancels_the_tasks_and_prints_the_resume_command(cluster, tmp_path):
    spec = tmp_path / "ray-fake.toml"
    spec.write_text(FAKE_SPEC)
    store = tmp_path / "s.db"
    proc = _cli(
        [
            "sweep",
            "run",
            str(spec),
            "--store",
            str(store),
            "--runner",
            "surge_sweep_fakes:run_group",
            "--executor",
            "ray",
            "--address",
            cluster,
            "--cpus-per-group",
            "1",
        ]
    )
    deadline = time.monotonic() + 180
    while count_rows(store) == 0 and time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the driver ended before Ctrl-C (exit {proc.returncode}): {proc.communicate()}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, err)
    text = " ".join(err.split())
    assert "interrupted:" in text and "trials are done and saved in" in text
    resume = next(line for line in err.splitlines() if line.startswith("resume with: "))
    assert resume == (
        f"resume with: surge sweep run {spec} --store {store} --executor ray --address {cluster} --cpus-per-group 1"
    )
    n = count_rows(store)
    assert n % 6 == 0 and 0 < n < FAKE_TOTAL
    time.sleep(1.5)  # the cancelled tasks' groups never reach the store
    assert count_rows(store) == n
