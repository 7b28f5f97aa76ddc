"""``surge simulate figure1|training``: wiring, files written, JSON keys, and errors."""

import csv
import json

import numpy as np
import pytest

from surge.sweep.store import FRAME_COLUMNS
from surge.theory.problems import surge_problem

SMALL_TRAINING = [
    "-b",
    "1,16,256",
    "--lr",
    "0.01,0.05,0.2",
    "--rounds",
    "2",
    "--max-steps",
    "600",
    "--extra-steps",
    "10",
]


def test_figure1_json(run_json, tmp_path):
    out = tmp_path / "fig1.png"
    d = run_json("simulate", "figure1", "--samples", "2000", "--seed", "3", "-b", "1,16,256", "--out", str(out))
    for key in (
        "batch_size",
        "mc_optimal_lr",
        "mc_stderr",
        "exact_optimal_lr",
        "theorem3_lr",
        "b_noise",
        "eps_max",
        "large_batch_lr",
        "sgd_mc_optimal_lr",
        "sgd_exact_optimal_lr",
    ):
        assert key in d, key
    assert d["batch_size"] == [1.0, 16.0, 256.0] and d["samples"] == 2000 and d["seed"] == 3
    model = surge_problem().model
    np.testing.assert_allclose(d["exact_optimal_lr"], model.optimal_lr(np.array([1.0, 16.0, 256.0])))
    assert d["b_noise"] == pytest.approx(model.b_noise)
    assert out.read_bytes()[:4] == b"\x89PNG" and d["out"] == str(out)


def test_figure1_table(run_cli, tmp_path):
    code, out, err = run_cli(
        "simulate",
        "figure1",
        "--samples",
        "1000",
        "-b",
        "4,64",
        "--problem",
        "equal-snr",
        "--out",
        str(tmp_path / "f.png"),
    )
    assert code == 0, err
    assert "B_noise (Eq 14)" in out and "equal-snr" in out and "wrote" in out


def test_figure1_user_problem_from_npz(run_json, tmp_path):
    path = tmp_path / "mine.npz"
    n = 6
    s = np.array([1.0, -1.0, 1.0, 1.0, -1.0, 1.0])
    np.savez(path, mu=0.05 * s, sigma=np.ones(n), hessian=0.1 * np.eye(n) + np.outer(s, s))
    d = run_json(
        "simulate",
        "figure1",
        "--problem",
        str(path),
        "--samples",
        "1000",
        "-b",
        "1,8",
        "--out",
        str(tmp_path / "m.png"),
    )
    assert d["problem"] == "mine" and d["n"] == n


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "x.pdf"], "--out must be a .png file"),
        (["--out", "x.png", "--problem", "nope"], "problem must be one of 'surge'"),
        (["--out", "x.png", "--samples", "2"], "samples must be >= 4"),
        (["--out", "x.png", "-b", "1,abc"], "--batch-size must be numbers"),
        (["--out", "x.png", "-b", "0,4"], "batch_sizes must be > 0"),
    ],
)
def test_figure1_errors(run_cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("simulate", "figure1", *args)
    assert code == 2 and message in err and err.startswith("error:") and err.count("\n") == 1


def test_training_json_files_and_space_separated_targets(run_json, tmp_path):
    out = tmp_path / "run"
    d = run_json("simulate", "training", "--target-loss", "0.5", "0.3", "--out", str(out), *SMALL_TRAINING)
    stages = d["analysis"]["stages"]
    assert [s["target_loss"] for s in stages] == [0.5, 0.3]
    for st in stages:
        for key in ("target_loss", "b_noise", "b_noise_ci", "batch_size", "optimal_lr"):
            assert key in st
        assert st["batch_size"] == [1, 16, 256] and len(st["optimal_lr"]) == 3
    assert d["optimizer"] == "sign" and d["rounds"] == 2 and d["extra_steps"] == 10
    saved = json.loads((out / "result.json").read_text())
    assert saved["analysis"]["stages"][0]["optimal_lr"] == stages[0]["optimal_lr"]
    assert (out / "training.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("report.md", "report.html", "analysis.json", "stage_0p5.png"):
        assert (out / name).is_file(), name
    with (out / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 3 * 3 * 2  # targets x batch sizes x lrs x rounds
    assert list(rows[0]) == list(FRAME_COLUMNS)


def test_simulate_training_and_analyze_on_its_trial_frame_agree(run_json, tmp_path):
    """The simulator's per-stage numbers are surge analyze's on the same trial frame."""
    out = tmp_path / "run"
    sim = run_json("simulate", "training", "--target-loss", "0.5", "0.3", "--out", str(out), *SMALL_TRAINING)
    ana = run_json("analyze", "--store", str(out / "trials.csv"), "--out", str(tmp_path / "ana"))
    assert len(ana["stages"]) == len(sim["analysis"]["stages"]) == 2
    for a, s in zip(ana["stages"], sim["analysis"]["stages"]):
        assert a["target_loss"] == s["target_loss"]
        assert a["optimal_lr"] == s["optimal_lr"] and a["optimal_lr_ci"] == s["optimal_lr_ci"]
        assert a["b_noise"] == s["b_noise"] and a["b_noise_ci"] == s["b_noise_ci"]
        assert a["steps"] == s["steps"]


def test_old_option_names_still_work(run_json, tmp_path):
    d = run_json(
        "simulate",
        "training",
        "--targets",
        "0.5",
        "--seeds",
        "2",
        "--n-after",
        "5",
        "--out",
        str(tmp_path / "o"),
        "-b",
        "1,16,256",
        "--lr",
        "0.02,0.06",
        "--max-steps",
        "300",
    )
    assert d["rounds"] == 2 and d["extra_steps"] == 5


def test_training_comma_targets_adam_and_table(run_cli, tmp_path):
    code, out, err = run_cli(
        "simulate",
        "training",
        "--targets",
        "0.5,0.3",
        "--optimizer",
        "adam",
        "--beta1",
        "0",
        "--beta2",
        "0",
        "--out",
        str(tmp_path / "a"),
        *SMALL_TRAINING,
    )
    assert code == 0, err
    assert "target loss 0.5" in out and "target loss 0.3" in out and "B_noise (Eq 22)" in out


def test_training_sgd_json(run_json, tmp_path):
    d = run_json(
        "simulate",
        "training",
        "--targets",
        "0.5",
        "--optimizer",
        "sgd",
        "--out",
        str(tmp_path / "s"),
        "-b",
        "1,16,256",
        "--lr",
        "0.1,0.5",
        "--seeds",
        "2",
        "--max-steps",
        "300",
        "--n-after",
        "5",
    )
    assert d["optimizer"] == "sgd" and d["betas"] is None and len(d["analysis"]["stages"]) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["0.5"], "unexpected argument(s) 0.5; target losses go after --target-loss"),
        (["--optimizer", "lion"], "optimizer must be one of 'sign', 'adam', 'sgd'"),
        (["--target-loss", "50"], "target_loss must be below the initial loss"),
        (["--rounds", "0"], "rounds must be positive"),
        (["-b", "1.5,4"], "batch_sizes must be whole numbers"),
        (["--lr", "x"], "--lr must be numbers"),
    ],
)
def test_training_errors(run_cli, tmp_path, args, message):
    code, _, err = run_cli("simulate", "training", "--out", str(tmp_path / "e"), *args)
    assert code == 2 and message in err and err.startswith("error:")


def test_training_out_must_be_a_directory(run_cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = run_cli("simulate", "training", "--out", str(f))
    assert code == 2 and "is a file; give a folder that can be written" in err
