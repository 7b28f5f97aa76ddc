"""`surge law`, `surge recommend`, `surge fit`: JSON output, tables, and one-line errors with exit code 2."""

import os
import subprocess
import sys

import numpy as np
import pytest

from surge.theory import adam_optimal_lr, sgd_optimal_lr, steps_to_target


def test_law_adam_json(run_json):
    got = run_json("law", "adam", "--eps-max", "1e-3", "--b-noise", "64", "--batch-size", "16,64", "-b", "256")
    assert got == {
        "law": "adam",
        "eps_max": 1e-3,
        "b_noise": 64.0,
        "alpha": None,
        "batch_size": [16.0, 64.0, 256.0],
        "lr": pytest.approx(adam_optimal_lr([16, 64, 256], 1e-3, 64).tolist()),
    }


def test_law_sgd_json_and_table(run_json, run_cli):
    got = run_json("law", "sgd", "--eps-max", "1e-3", "--b-noise", "64", "-b", "16,64", "--alpha", "0.5")
    assert got["alpha"] == 0.5 and got["lr"] == pytest.approx(sgd_optimal_lr([16, 64], 1e-3, 64, 0.5).tolist())
    code, out, _ = run_cli("law", "sgd", "--eps-max", "1e-3", "--b-noise", "64", "-b", "16,64")
    assert code == 0 and "batch size" in out and "0.0002" in out


def test_recommend_json_and_warning(run_json, run_cli):
    got = run_json(
        "recommend", "--from-batch-size", "256", "--from-lr", "3e-4", "--to-batch-size", "2048", "--b-noise", "512"
    )
    assert {"lr", "linear_lr", "sqrt_lr", "regime", "warning", "eps_max"} <= got.keys()
    assert got["regime"] == "above" and "crosses B_noise" in got["warning"]
    below = run_json(
        "recommend", "--from-batch-size", "16", "--from-lr", "1e-4", "--to-batch-size", "64", "--b-noise", "512"
    )
    assert below["warning"] is None
    code, out, err = run_cli(
        "recommend", "--from-batch-size", "256", "--from-lr", "3e-4", "--to-batch-size", "2048", "--b-noise", "512"
    )
    assert code == 0 and "linear rule" in out and "warning" in err


@pytest.fixture
def steps_csv(tmp_path):
    b = np.array([4, 8, 16, 32, 64, 128, 256, 512])
    s = steps_to_target(b, 100.0, 100.0 * 200.0) * (1 + 0.02 * np.random.default_rng(0).standard_normal(b.size))
    path = tmp_path / "steps.csv"
    path.write_text("batch_size,steps\n" + "".join(f"{x},{y}\n" for x, y in zip(b, s)))
    return path


@pytest.fixture
def lr_csv(tmp_path):
    b = np.array([2, 4, 8, 16, 32, 64, 128, 256, 512, 1024])
    path = tmp_path / "lr.csv"
    path.write_text("batch_size,lr\n" + "".join(f"{x},{y}\n" for x, y in zip(b, adam_optimal_lr(b, 1e-3, 64.0))))
    return path


def test_fit_b_noise_json(run_json, steps_csv):
    got = run_json("fit", "b-noise", str(steps_csv))
    assert got["b_noise"] == pytest.approx(200, rel=0.1)
    assert got["b_noise_ci"][0] < got["b_noise"] < got["b_noise_ci"][1]
    assert {"s_min", "e_min", "s_min_ci", "e_min_ci", "success", "message", "method"} <= got.keys()
    assert run_json("fit", "b-noise", str(steps_csv), "--method", "nonlinear")["method"] == "nonlinear"


def test_fit_lr_and_compare_json(run_json, lr_csv):
    got = run_json("fit", "lr", str(lr_csv), "--b-noise", "64")
    assert got["eps_max"] == pytest.approx(1e-3) and got["law"] == "adam"
    cmp = run_json("fit", "compare", str(lr_csv))
    assert cmp["best"] == "adam"
    assert [law["name"] for law in cmp["laws"]] == ["adam", "sgd(alpha=1)", "sgd(alpha=0.5)", "sgd(alpha=free)"]
    assert {"eps_max", "b_noise", "rms_log_residual", "aic", "bic"} <= cmp["laws"][0].keys()


def test_fit_tables(run_cli, steps_csv, lr_csv):
    code, out, _ = run_cli("fit", "b-noise", str(steps_csv))
    assert code == 0 and "B_noise" in out and "S_min" in out
    code, out, _ = run_cli("fit", "compare", str(lr_csv))
    assert code == 0 and "best: adam" in out


@pytest.mark.parametrize(
    "args, match",
    [
        (["law", "adam", "--eps-max", "-1", "--b-noise", "3", "-b", "2"], r"^error: eps_max must be > 0, got -1.0$"),
        (
            ["law", "adam", "--b-noise", "3", "-b", "2"],
            r"^error: Missing option '--eps-max'.* \(see 'surge law adam --help'\)$",
        ),
        (
            ["law", "adam", "--eps-max", "1", "--b-noise", "3", "-b", "2,x"],
            r"^error: --batch-size must be numbers separated by commas; 'x' is not a number$",
        ),
        (
            ["law", "sgd", "--eps-max", "1", "--b-noise", "3", "-b", "0"],
            r"^error: batch_size must be > 0; element 0 is 0.0$",
        ),
        (
            [
                "recommend",
                "--from-batch-size",
                "1",
                "--from-lr",
                "1",
                "--to-batch-size",
                "2",
                "--b-noise",
                "3",
                "--law",
                "x",
            ],
            r"^error: law must be one of 'adam', 'sgd'; got 'x'$",
        ),
        (["fit", "b-noise", "/nonexistent.csv"], r"^error: FILE '/nonexistent.csv' does not exist$"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(run_cli, args, match):
    code, out, err = run_cli(*args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1, err
    assert __import__("re").match(match, err.strip()), err


def test_fit_csv_errors(run_cli, tmp_path):
    bad_cols = tmp_path / "a.csv"
    bad_cols.write_text("b,s\n1,2\n")
    code, _, err = run_cli("fit", "b-noise", str(bad_cols))
    assert code == 2 and "lacks column(s) batch_size, steps; it has b, s" in err
    bad_value = tmp_path / "b.csv"
    bad_value.write_text("batch_size,steps\n1,2\n2,oops\n4,1\n")
    code, _, err = run_cli("fit", "b-noise", str(bad_value))
    assert code == 2 and "line 3 column 'steps' is not a finite number: 'oops'" in err
    few = tmp_path / "c.csv"
    few.write_text("batch_size,steps\n1,2\n")
    code, _, err = run_cli("fit", "b-noise", str(few))
    assert code == 2 and "need at least 2 points, got 1" in err


def test_console_script_exit_code_and_debug_traceback():
    exe = os.path.join(os.path.dirname(sys.executable), "surge")
    args = [exe, "law", "adam", "--eps-max", "-1", "--b-noise", "3", "-b", "2"]
    plain = subprocess.run(args, capture_output=True, text=True)
    assert plain.returncode == 2 and plain.stderr.strip() == "error: eps_max must be > 0, got -1.0"
    debug = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "SURGE_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "SurgeError" in debug.stderr


def test_version(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and out.startswith("surge ")
