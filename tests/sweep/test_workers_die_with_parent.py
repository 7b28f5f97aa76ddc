"""Issue 11 item 8: killing only the main process of `surge sweep run --workers 2` with SIGKILL leaves no
worker (nor multiprocessing's resource tracker) behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from surge_sweep_fakes import cli_command, engine_available

SPEC = """
name = "orphans"
workload = "fake"
rounds = 2
group_size = 6
max_steps = 3000
[lr]
values = [1e-3, 3e-3, 0.1]
[batch_size]
values = [1, 4, 16, 64]
"""


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.skipif(not engine_available(), reason="worker processes need the engine's GroupConfig to unpickle")
def test_workers_and_resource_tracker_die_with_a_sigkilled_parent(tmp_path):
    spec = tmp_path / "orphans.toml"
    spec.write_text(SPEC)
    args = [
        "sweep",
        "run",
        str(spec),
        "--store",
        str(tmp_path / "s.db"),
        "--runner",
        "surge_sweep_fakes:run_group",
        "--workers",
        "2",
    ]
    env = {**os.environ, "SURGE_FAKE_SLEEP": "30"}
    proc = subprocess.Popen(
        cli_command(*args),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        kids: list[int] = []
        while time.monotonic() < deadline:  # the two workers and the resource tracker
            kids = children(proc.pid)
            if len(kids) >= 3:
                break
            time.sleep(0.1)
        assert len(kids) >= 3, f"expected 2 workers and a resource tracker, found {kids}"
        time.sleep(2.0)  # the workers are past their initializer and busy in a group
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(p) for p in kids):
            time.sleep(0.1)
        left = [p for p in kids if alive(p)]
        assert not left, f"processes outlived their SIGKILLed parent: {left}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # only our own session, if anything is left
        except ProcessLookupError:
            pass


def test_json_mode_shows_progress_on_stderr(tmp_path):
    """Issue 11 item 15: in --json mode progress goes to stderr as plain lines; stdout holds one JSON object."""
    import json

    spec = tmp_path / "p.toml"
    spec.write_text(SPEC)
    args = [
        "sweep",
        "run",
        str(spec),
        "--store",
        str(tmp_path / "p.db"),
        "--runner",
        "surge_sweep_fakes:run_group",
        "--json",
    ]
    proc = subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["done"] == 24
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("sweep orphans: ")]
    assert lines[0].startswith("sweep orphans: 0/24") and lines[-1].startswith("sweep orphans: 24/24 (100%)")
