"""`surge analyze --table` on sweep tables in the export shapes of W&B, Ray Tune and Optuna (issue 11 item 17),
and trials measured with different N never pooled (item 10)."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from surge.analysis import analyze
from surge.analysis.table import table_frame
from surge.theory.laws import ADAM_LAW

B_NOISE, EPS_MAX = 128.0, 1e-2
BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024)
LRS = np.geomspace(1e-4, 1e-1, 13)


def runs(seed=0, n_seeds=3):
    """(batch size, lr, seed, loss) of a sweep whose optimal lr follows the Adam law (Eq 2): the loss is a
    parabola in log lr around it, with 2 % noise; the largest lrs at small batch sizes diverge (NaN)."""
    rng = np.random.default_rng(seed)
    out = []
    for b in BATCH_SIZES:
        opt = float(ADAM_LAW.lr(b, EPS_MAX, B_NOISE))
        for lr in LRS:
            for s in range(n_seeds):
                loss = 2.0 + 0.3 * math.log(lr / opt) ** 2 + 0.02 * rng.standard_normal()
                out.append((b, float(lr), s, math.nan if (lr > 0.05 and b < 64) else loss))
    return out


def wandb_export(path):
    """The W&B runs table as its CSV download writes it: run metadata, then config and summary keys."""
    rows = [
        {
            "Name": f"sweep-{i}",
            "State": "finished" if np.isfinite(loss) else "crashed",
            "Notes": "-",
            "User": "me",
            "Tags": "",
            "Created": "2024-05-01T10:00:00.000Z",
            "Runtime": 312,
            "Sweep": "abc123",
            "batch_size": b,
            "learning_rate": lr,
            "seed": s,
            "eval/loss": loss,
            "train/loss": loss + 0.1,
            "_step": 1000,
        }
        for i, (b, lr, s, loss) in enumerate(runs())
    ]
    pd.DataFrame(rows).to_csv(path, index=False)


def ray_tune_export(path):
    """``ResultGrid.get_dataframe()`` written with ``to_csv``: metrics, Tune's bookkeeping, ``config/...`` columns."""
    rows = [
        {
            "loss": loss,
            "timestamp": 1714557600 + i,
            "checkpoint_dir_name": None,
            "done": True,
            "training_iteration": 10,
            "trial_id": f"{i:05d}_abc",
            "date": "2024-05-01_10-00-00",
            "time_this_iter_s": 1.2,
            "time_total_s": 12.0,
            "pid": 4242,
            "hostname": "node",
            "node_ip": "10.0.0.1",
            "time_since_restore": 12.0,
            "iterations_since_restore": 10,
            "config/lr": lr,
            "config/batch_size": b,
            "config/seed": s,
            "logdir": f"{i:05d}_abc",
        }
        for i, (b, lr, s, loss) in enumerate(runs(1))
    ]
    pd.DataFrame(rows).to_csv(path, index=False)


def optuna_export(path):
    """``study.trials_dataframe()`` written with ``to_csv``: ``number``, ``value``, ``params_*``, ``state``;
    a failed trial has an empty value."""
    rows = [
        {
            "number": i,
            "value": loss,
            "datetime_start": "2024-05-01 10:00:00.1",
            "datetime_complete": "2024-05-01 10:05:00.2",
            "duration": "0 days 00:05:00.1",
            "params_batch_size": b,
            "params_lr": lr,
            "params_seed": s,
            "state": "COMPLETE" if np.isfinite(loss) else "FAIL",
        }
        for i, (b, lr, s, loss) in enumerate(runs(2))
    ]
    pd.DataFrame(rows).to_csv(path, index=False)


SHAPES = {
    "wandb": (
        wandb_export,
        [
            "--lr-column",
            "learning_rate",
            "--batch-size-column",
            "batch_size",
            "--loss-column",
            "eval/loss",
            "--seed-column",
            "seed",
        ],
    ),
    "ray": (
        ray_tune_export,
        [
            "--lr-column",
            "config/lr",
            "--batch-size-column",
            "config/batch_size",
            "--loss-column",
            "loss",
            "--seed-column",
            "config/seed",
        ],
    ),
    "optuna": (
        optuna_export,
        [
            "--lr-column",
            "params_lr",
            "--batch-size-column",
            "params_batch_size",
            "--loss-column",
            "value",
            "--seed-column",
            "params_seed",
        ],
    ),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_analyze_table_recovers_the_law_from_each_export_shape(run_cli, tmp_path, shape):
    write, cols = SHAPES[shape]
    path = tmp_path / f"{shape}.csv"
    write(path)
    out = tmp_path / "rep"
    code, stdout, err = run_cli("analyze", "--table", str(path), *cols, "--out", str(out), "--n-boot", "100", "--json")
    assert code == 0, err
    res = json.loads(stdout)
    st = res["stages"][0]
    truth = ADAM_LAW.lr(np.array(st["batch_size"], dtype=float), EPS_MAX, B_NOISE)
    grid_step = math.log(LRS[1] / LRS[0])
    # each optimal lr is the grid point nearest the true optimum, give or take one grid step (noise)
    assert np.all(np.abs(np.log(np.array(st["optimal_lr"]) / truth)) <= 1.5 * grid_step)
    assert st["best_law_free_b_noise"] == "adam"
    assert st["counts"]["diverged"] == 12 and st["counts"]["trials"] == len(runs())
    assert st["falls_past_b_noise"] in ("yes", "inconclusive")
    assert any("no Eq 22 B_noise" in m for m in st["messages"])
    assert (out / "report.html").is_file() and (out / "analysis.json").is_file()
    # the intervals over seeds contain the estimates
    for lr, (lo, hi) in zip(st["optimal_lr"], st["optimal_lr_ci"]):
        assert lo <= lr <= hi


def test_table_frame_lowest_loss_wins_and_repeats_without_seeds_are_rounds():
    t = pd.DataFrame(
        {"lr": [1e-3, 2e-3, 1e-3, 2e-3, 1e-3, 2e-3], "bs": [8, 8, 8, 8, 16, 16], "loss": [1.0, 0.8, 1.1, 0.9, 0.5, 0.7]}
    )
    frame = table_frame(t, lr_column="lr", batch_size_column="bs", loss_column="loss")
    assert frame["seed"].tolist() == [0, 0, 1, 1, 0, 0]
    res = analyze(frame, n_boot=0)
    assert [r.optimal_lr for r in res.stages[0].rows] == [2e-3, 1e-3]


@pytest.mark.parametrize(
    "table, kwargs, match",
    [
        (
            {"lr": [1e-3], "bs": [8], "loss": [1.0]},
            {"lr_column": "learning_rate"},
            r"--lr-column 'learning_rate' is not a column of the table; it has 'lr', 'bs', 'loss'",
        ),
        (
            {"lr": [1e-3, 0.0], "bs": [8, 16], "loss": [1.0, 1.0]},
            {},
            r"--lr-column 'lr': row 2 is 0; it must be a finite number > 0",
        ),
        (
            {"lr": [1e-3, 1e-3], "bs": [8, 16.5], "loss": [1.0, 1.0]},
            {},
            r"row 2 is 16.5; batch sizes are whole numbers",
        ),
        (
            {"lr": [1e-3, 1e-3], "bs": [8, 16], "loss": [1.0, "oops"]},
            {},
            r"--loss-column 'loss': row 2 is not a number: 'oops'",
        ),
        ({"lr": [1e-3, 1e-3], "bs": [8, 16], "loss": [math.nan, math.inf]}, {}, r"holds no finite loss"),
        (
            {"lr": [1e-3, 2e-3], "bs": [8, 8], "loss": [1.0, 2.0]},
            {},
            r"holds one batch size \(8\); the analysis needs at least 2",
        ),
    ],
)
def test_table_frame_errors_name_the_option_the_row_and_the_value(table, kwargs, match):
    args = dict(lr_column="lr", batch_size_column="bs", loss_column="loss") | kwargs
    with pytest.raises(ValueError, match=match):
        table_frame(pd.DataFrame(table), **args)


def test_table_frame_of_a_non_frame_is_a_type_error():
    with pytest.raises(TypeError, match="table must be a pandas DataFrame, got list"):
        table_frame([[1e-3, 8, 1.0]], lr_column="lr", batch_size_column="bs", loss_column="loss")


def test_analyze_table_option_errors(run_cli, tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"lr": [1e-3], "bs": [8], "loss": [1.0]}).to_csv(path, index=False)
    out = str(tmp_path / "rep")
    code, _, err = run_cli("analyze", "--table", str(path), "--lr-column", "lr", "--out", out)
    assert code == 2 and "--table needs --batch-size-column, --loss-column" in err
    code, _, err = run_cli("analyze", "--out", out)
    assert code == 2 and "give exactly one of --store" in err
    code, _, err = run_cli(
        "analyze",
        "--table",
        str(tmp_path / "t.xlsx"),
        "--lr-column",
        "a",
        "--batch-size-column",
        "b",
        "--loss-column",
        "c",
        "--out",
        out,
    )
    assert code == 2 and "does not exist" in err


def test_trials_with_different_n_are_never_pooled_and_the_report_says_which_set():
    rows = []
    for n_extra, shift in ((50, 0.0), (100, 5.0)):  # the N = 100 set has its optimum elsewhere
        for b in (16, 64, 256):
            for lr in (1e-3, 2e-3, 4e-3, 8e-3):
                for r in range(3 if n_extra == 50 else 2):
                    best = 2e-3 if shift == 0 else 8e-3
                    rows.append(
                        dict(
                            workload="toy",
                            optimizer="adam",
                            betas=(0.0, 0.0),
                            batch_size=b,
                            lr=lr,
                            seed=r,
                            status="ok",
                            target_loss=1.0,
                            reached=True,
                            steps=100 * (1 + 64 / b),
                            loss_decrease=1.0 - math.log(lr / best) ** 2 + shift,
                            extra_steps=n_extra,
                        )
                    )
    frame = pd.DataFrame(rows)
    res = analyze(frame, n_boot=20)
    assert res.extra_steps == 50 and res.n_trials == 3 * 4 * 3
    assert all(r.optimal_lr == 2e-3 for r in res.stages[0].rows)
    assert any("never pooled" in m and "uses N = 50" in m and "N = 100 (24 rows)" in m for m in res.messages)
    other = analyze(frame, n_boot=20, extra_steps=100)
    assert other.extra_steps == 100 and all(r.optimal_lr == 8e-3 for r in other.stages[0].rows)
    with pytest.raises(ValueError, match=r"extra_steps 70 is not in the trials; they were measured with N = 50"):
        analyze(frame, extra_steps=70)
