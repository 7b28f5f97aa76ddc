"""``surge sweep``: plan, presets, run (with a fake runner), status, export, and the error messages."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from surge.cli.main import main

SWEEP_TESTS = Path(__file__).resolve().parents[1] / "sweep"
if str(SWEEP_TESTS) not in sys.path:
    sys.path.insert(0, str(SWEEP_TESTS))

import surge_sweep_fakes as fakes  # noqa: E402  (found through the path set above)

SPEC = """
name = "tiny"
workload = "fake"
rounds = 2
max_steps = 2000
[lr]
values = [1e-3, 3e-3, 0.1]
[batch_size]
start = 2
stop = 8
step = 3
"""


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SPEC)
    return path


@pytest.fixture
def group_config_type(monkeypatch):
    return fakes.group_config_type(monkeypatch)


@pytest.fixture
def fake_workloads(monkeypatch):
    monkeypatch.setattr("surge.sweep.plan.resolve_workload", fakes.resolve)


def cli_json(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_plan_json(capsys, spec_file, fake_workloads):
    info = cli_json(capsys, ["sweep", "plan", str(spec_file), "--json"])
    assert info["workload"] == "fake" and info["optimizer"] == "adam" and info["betas"] == [0.9, 0.999]
    assert info["lr"] == [1e-3, 3e-3, 0.1] and info["batch_size"] == [2, 5, 8] and info["rounds"] == 2
    assert info["target_loss"] == [1.0, 0.5] and info["extra_steps"] == 3 and info["trials"] == 18
    assert sum(r["trials"] for r in info["by_batch_size"]) == 18
    info = cli_json(capsys, ["sweep", "plan", str(spec_file), "--rounds", "5", "--json"])
    assert info["rounds"] == 5 and info["trials"] == 45


def test_plan_table_and_toml(capsys, spec_file, fake_workloads):
    assert main(["sweep", "plan", str(spec_file)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "18 trials in 3 groups" in out and "0.001, 0.003, 0.1" in out and "2, 5, 8" in out
    assert main(["sweep", "plan", "--preset", "cnn-small-batch", "--toml"]) == 0
    text = capsys.readouterr().out
    assert 'workload = "cnn-fashion-mnist"' in text and "rounds = 100" in text


def test_plan_of_the_presets_without_training(capsys, monkeypatch):
    monkeypatch.setattr(
        "surge.sweep.plan.resolve_workload",
        lambda name, data_dir=None: fakes.WorkloadInfo(name, (0.5, 0.3), 10, "examples"),
    )
    info = cli_json(capsys, ["sweep", "plan", "--preset", "cnn-large-batch", "--json"])
    assert info["batch_size"] == list(range(64, 1165, 100)) and info["trials"] == 12000 and info["extra_steps"] == 10
    assert info["lr"] == [round(1e-4 * k, 10) for k in range(1, 11)]


def test_presets_command(capsys):
    info = cli_json(capsys, ["sweep", "presets", "--json"])
    assert [p["name"] for p in info["presets"]] == [
        "cnn-small-batch",
        "cnn-large-batch",
        "smoke",
        "resnet18-sign",
        "distilgpt2-adam",
        "distilgpt2-sign",
    ]


def test_data_dir_reaches_the_workload_and_the_resume_command(
    capsys, tmp_path, spec_file, monkeypatch, group_config_type
):
    seen = []

    def resolve(name, data_dir=None):
        seen.append(data_dir)
        return fakes.resolve(name, data_dir)

    monkeypatch.setattr("surge.sweep.plan.resolve_workload", resolve)
    data = tmp_path / "data"
    cli_json(capsys, ["sweep", "plan", str(spec_file), "--data-dir", str(data), "--json"])
    assert seen[-1] == str(data)
    store = tmp_path / "s.db"
    res = cli_json(
        capsys,
        [
            "sweep",
            "run",
            str(spec_file),
            "--store",
            str(store),
            "--data-dir",
            str(data),
            "--runner",
            "surge_sweep_fakes:run_group",
            "--json",
        ],
    )
    assert seen[-1] == str(data) and res["resume"].endswith(f"--data-dir {data}")


def test_run_status_export(capsys, tmp_path, spec_file, fake_workloads, group_config_type, monkeypatch):
    monkeypatch.setenv("SURGE_FAKE_FAIL_BATCH", "5")
    store = tmp_path / "s.db"
    res = cli_json(
        capsys,
        ["sweep", "run", str(spec_file), "--store", str(store), "--runner", "surge_sweep_fakes:run_group", "--json"],
    )
    assert (res["total"], res["ran"], res["failed"], res["interrupted"]) == (18, 18, 6, False)
    assert (res["done"], res["failed_total"], res["pending"]) == (12, 6, 0)
    assert res["resume"] == f"surge sweep run {spec_file} --store {store}"

    st = cli_json(capsys, ["sweep", "status", "--store", str(store), "--json"])
    assert (st["total"], st["done"], st["failed"], st["pending"]) == (18, 12, 6, 0)
    assert [r["batch_size"] for r in st["by_batch_size"]] == [2, 5, 8]
    assert st["errors"] == [{"error": "RuntimeError: boom at batch size 5", "trials": 6}]

    assert main(["sweep", "status", "--store", str(store)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "18 trials, 12 done" in out and "boom at batch size 5" in out

    out_csv = tmp_path / "t.csv"
    info = cli_json(capsys, ["sweep", "export", "--store", str(store), "--out", str(out_csv), "--json"])
    assert info["rows"] == 36 and info["trials"] == 18
    df = pd.read_csv(out_csv)
    assert len(df) == 36 and set(df.status) == {"ok", "diverged", "failed"}

    # Rerun (human output): retries the failed group only.
    monkeypatch.delenv("SURGE_FAKE_FAIL_BATCH")
    assert main(["sweep", "run", str(spec_file), "--store", str(store), "--runner", "surge_sweep_fakes:run_group"]) == 0
    out = capsys.readouterr().out
    assert "18 trials, 18 done (12 from earlier runs); this run trained 6" in " ".join(out.split())


def test_interrupt_exits_130_and_says_how_to_resume(capsys, tmp_path, spec_file, fake_workloads, group_config_type):
    fakes.run_group_interrupt_second.calls = 0
    store = tmp_path / "s.db"
    code = main(
        [
            "sweep",
            "run",
            str(spec_file),
            "--store",
            str(store),
            "--runner",
            "surge_sweep_fakes:run_group_interrupt_second",
        ]
    )
    err = capsys.readouterr().err
    assert code == 130
    assert "interrupted: 6 of 18 trials are done" in " ".join(err.split())
    assert f"resume with: surge sweep run {spec_file} --store {store}" in err


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["sweep", "plan"], r"give a SPEC.toml file or --preset NAME .* not neither"),
        (["sweep", "plan", "x.toml", "--preset", "smoke"], r"not both"),
        (["sweep", "plan", "--preset", "nope"], r"unknown preset 'nope'; available: cnn-small-batch"),
        (["sweep", "plan", "missing.toml"], r"SPEC file 'missing.toml' does not exist"),
        (["sweep", "plan", "--preset", "smoke", "--rounds", "0"], r"rounds must be positive, got 0"),
        (["sweep", "status", "--store", "missing.db"], r"store 'missing.db' does not exist"),
        (
            ["sweep", "run", "--preset", "smoke", "--store", "s.db", "--workers", "0"],
            r"--workers must be positive, got 0",
        ),
        (["sweep", "run", "--preset", "smoke", "--store", "s.db", "--device", "tpu"], r"device must be 'cpu'"),
        (["sweep", "run", "--preset", "smoke"], r"Missing option '--store'"),
    ],
)
def test_errors_are_one_line_exit_2(capsys, tmp_path, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    import re

    assert re.search(match, err), err


def test_unknown_key_in_a_spec_file(capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(SPEC.replace("[lr]", "[optimizer]\nlearning_rate = 1\n[lr]"))
    assert main(["sweep", "plan", str(path)]) == 2
    assert "unknown key 'learning_rate' in section [optimizer]" in capsys.readouterr().err
