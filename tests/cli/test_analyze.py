"""``surge analyze``: a sweep store (or its CSV export) -> one JSON object, the figures and the report."""

import json
from pathlib import Path

import numpy as np
import pytest

from surge.analysis import synthetic_frame

JSON_STAGE_KEYS = (
    "target_loss",
    "b_noise",
    "b_noise_ci",
    "eps_max",
    "batch_size",
    "optimal_lr",
    "optimal_lr_ci",
    "best_law",
    "files",
)


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame("adam", seed=3, rounds=3, diverge_above=3.0, target_loss=(2.0, 1.0))


@pytest.fixture(scope="module")
def store(frame, tmp_path_factory):
    pytest.importorskip("surge.sweep.store")
    from surge.analysis import write_synthetic_store

    return write_synthetic_store(frame, tmp_path_factory.mktemp("store") / "sweep.db")


def test_analyze_a_sqlite_store_prints_one_json_object(store, frame, run_json, tmp_path):
    out = tmp_path / "out"
    data = run_json("analyze", "--store", str(store), "--out", str(out), "--n-boot", "100")
    truth = frame.attrs["synthetic"]
    assert [s["target_loss"] for s in data["stages"]] == [2.0, 1.0]
    for k, s in enumerate(data["stages"]):
        for key in JSON_STAGE_KEYS:
            assert key in s, key
        assert s["b_noise"] == pytest.approx(truth["b_noise"][k], rel=0.08)
        assert s["b_noise_ci"][0] < s["b_noise"] < s["b_noise_ci"][1]
        assert s["eps_max"]["adam"] == pytest.approx(truth["eps_max"][k], rel=0.15)
        assert s["best_law"] == "adam"
        assert s["batch_size"] == [4, 8, 16, 32, 64, 128, 256, 512, 1024]
        assert len(s["optimal_lr"]) == len(s["optimal_lr_ci"]) == 9
        assert all(Path(p).is_file() for p in s["files"]) and len(s["files"]) == 2
    assert sum(data["stages"][0]["n_diverged"]) > 0
    assert Path(data["files"]["html"]).is_file() and Path(data["files"]["markdown"]).is_file()
    assert json.loads((out / "analysis.json").read_text())["stages"][0]["b_noise"] == data["stages"][0]["b_noise"]


def test_analyze_a_csv_export_with_one_stage(frame, run_json, tmp_path):
    csv = tmp_path / "trials.csv"
    frame.to_csv(csv, index=False)
    data = run_json("analyze", "--store", str(csv), "--out", str(tmp_path / "o"), "--stage", "1.0", "--n-boot", "50")
    assert [s["target_loss"] for s in data["stages"]] == [1.0]
    assert (tmp_path / "o" / "stage_1.png").is_file() and not (tmp_path / "o" / "stage_2.png").exists()


def test_analyze_prints_a_table_for_people(frame, run_cli, tmp_path):
    csv = tmp_path / "trials.csv"
    frame.to_csv(csv, index=False)
    code, out, err = run_cli(
        "analyze", "--store", str(csv), "--out", str(tmp_path / "o"), "--n-boot", "50", "--stage", "2", "--stage", "1"
    )
    assert code == 0, err
    assert "B_noise" in out and "adam" in out and "report:" in out
    assert "B_noise grows as the target loss falls" in " ".join(out.split())


def test_analyze_errors_are_one_line_and_exit_2(frame, run_cli, tmp_path):
    code, out, err = run_cli("analyze", "--store", str(tmp_path / "missing.db"), "--out", str(tmp_path / "o"))
    assert code == 2 and out == ""
    assert err.strip() == f"error: store {str(tmp_path / 'missing.db')!r} does not exist"
    csv = tmp_path / "trials.csv"
    frame.to_csv(csv, index=False)
    code, _, err = run_cli("analyze", "--store", str(csv), "--out", str(tmp_path / "o"), "--stage", "0.3")
    assert code == 2 and err.count("\n") == 1
    assert "no stage with target loss 0.3; the trials have targets 2, 1" in err
    code, _, err = run_cli("analyze", "--store", str(csv), "--out", str(tmp_path / "o"), "--steps", "mode")
    assert code == 2 and "steps_statistic must be one of 'mean', 'median'" in err
    bad = tmp_path / "bad.csv"
    frame.drop(columns=["loss_decrease"]).to_csv(bad, index=False)
    code, _, err = run_cli("analyze", "--store", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2 and "lacks column(s) loss_decrease" in err


def test_analyze_needs_store_and_out(run_cli):
    code, _, err = run_cli("analyze", "--out", "x")
    assert code == 2 and "--store" in err


def test_analyze_picks_a_configuration(frame, run_json, run_cli, tmp_path):
    other = frame.assign(beta1=0.9, beta2=0.999)
    both = tmp_path / "both.csv"
    import pandas as pd

    pd.concat([frame[frame["target_loss"] == 2.0], other[other["target_loss"] == 2.0]]).to_csv(both, index=False)
    code, _, err = run_cli("analyze", "--store", str(both), "--out", str(tmp_path / "o"))
    assert code == 2 and "2 optimizer configurations" in err and "--config" in err
    data = run_json("analyze", "--store", str(both), "--out", str(tmp_path / "o"), "--config", "1", "--n-boot", "20")
    assert data["betas"] == [0.9, 0.999]
    assert np.isfinite(data["stages"][0]["b_noise"])
