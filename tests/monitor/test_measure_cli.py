"""``surge measure`` end to end on a tiny run, and ``surge recommend --measured``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from surge.cli.main import main  # noqa: E402
from surge.monitor.recommend import recommend_from_measure  # noqa: E402
from surge.monitor.run import MEASURE_KIND, MEASURE_VERSION, load_measure  # noqa: E402

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

TINY = "surge_monitor_tiny_workload:workload"


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    out = tmp_path_factory.mktemp("measure")
    argv = [
        "measure",
        "--workload",
        TINY,
        "--optimizer",
        "adam",
        "--betas",
        "0,0",
        "--lr",
        "0.01",
        "--batch-size",
        "32",
        "--steps",
        "40",
        "--every",
        "10",
        "--measure-examples",
        "256",
        "--curve-points",
        "2",
        "--curve-at-loss",
        "5",
        "--draws",
        "16",
        "--out",
        str(out),
        "--json",
    ]
    return out, argv


def test_measure_end_to_end_writes_series_figure_and_measure_json(measured, capsys):
    out, argv = measured
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == MEASURE_KIND and doc["config"]["betas"] == [0.0, 0.0]
    assert [r["step"] for r in doc["series"]] == [0, 10, 20, 30]
    first, last = doc["series"][0], doc["series"][-1]
    assert last["loss"] < first["loss"]  # it trained
    for r in doc["series"]:
        assert r["n_examples"] == 256 and r["b_simple"] is not None and r["validity_batch_size"] is not None
        assert r["smooth_b_noise_lo"] is not None
    assert [c["step"] for c in doc["curves"]] == [0, 30]
    assert doc["curves"][0]["target_losses"] == [5.0] and doc["curves"][1]["target_losses"] == []  # crossed at once
    assert doc["curves"][0]["batch_sizes"] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
    assert len(doc["curves"][0]["direct_lr"]) == 8 and doc["curves"][0]["direct_update"] == "sign"
    for name in ("measure.json", "series.csv", "measure.png"):
        assert (out / name).stat().st_size > 0
    assert load_measure(out / "measure.json")["series"] == doc["series"]
    assert (out / "series.csv").read_text().splitlines()[0].startswith("step,loss,n_examples")


def test_recommend_measured_answers_beside_the_rules(measured, capsys):
    out, _ = measured
    path = out / "measure.json"
    if not path.exists():
        pytest.skip("needs the measure run of the test above")
    assert (
        main(
            [
                "recommend",
                "--measured",
                str(path),
                "--from-batch-size",
                "8",
                "--from-lr",
                "1e-3",
                "--to-batch-size",
                "32",
                "--at-step",
                "30",
                "--json",
            ]
        )
        == 0
    )
    rec = json.loads(capsys.readouterr().out)
    assert rec["at_step"] == 30 and rec["linear_lr"] == pytest.approx(4e-3) and rec["sqrt_lr"] == pytest.approx(2e-3)
    # Theorem 3's ratio from the measured B_noise: sqrt(B1/B0) (1 + B0/Bn) / (1 + B1/Bn)
    bn = rec["b_noise"]
    assert rec["lr"] == pytest.approx(1e-3 * 2 * (1 + 8 / bn) / (1 + 32 / bn))
    lo, hi = rec["lr_ci"]
    assert lo <= rec["lr"] <= hi
    assert rec["direct_lr"] is not None and rec["curve_step"] == 30
    doc = load_measure(path)
    d = recommend_from_measure(doc, 8, 1e-3, 32, at_loss=doc["series"][1]["loss"])
    assert d.at_step == 10
    # a table for people
    assert (
        main(
            [
                "recommend",
                "--measured",
                str(path),
                "--from-batch-size",
                "8",
                "--from-lr",
                "1e-3",
                "--to-batch-size",
                "64",
            ]
        )
        == 0
    )
    assert "measured, Theorem 3" in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    not_json = tmp_path / "x.json"
    not_json.write_text("hello")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"kind": "something-else"}))
    bad_step = tmp_path / "bad_step.json"  # a hand-edited measure.json: was an internal error (TypeError)
    bad_step.write_text(
        json.dumps({"kind": MEASURE_KIND, "version": MEASURE_VERSION, "series": [{"step": "4", "loss": 1.0}]})
    )
    bad_curve = tmp_path / "bad_curve.json"
    bad_curve.write_text(
        json.dumps(
            {
                "kind": MEASURE_KIND,
                "version": MEASURE_VERSION,
                "series": [{"step": 4, "loss": 1.0}],
                "curves": [{"step": 4, "batch_sizes": [8, "x"], "direct_lr": [1e-3, 2e-3]}],
            }
        )
    )
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps({"kind": MEASURE_KIND, "version": MEASURE_VERSION, "series": [{"step": 4, "smooth_b_noise": 64.0}]})
    )
    rec = ["recommend", "--from-batch-size", "8", "--from-lr", "1e-3", "--to-batch-size", "32", "--measured"]
    cases = [
        (rec + [str(good), "--at-step", "-5"], "--at-step must be >= 0, got -5"),  # was accepted
        (rec + [str(good), "--law", "sgd"], "--law goes with --b-noise, not with --measured"),  # was ignored
        (rec + [str(good), "--beta2", "0.99", "--alpha", "0.5"], "--alpha and --beta2 go with --b-noise"),
        (rec + [str(bad_step)], """series[0]["step"] is '4', not an integer >= 0"""),
        (rec + [str(bad_step), "--at-step", "4"], """series[0]["step"] is '4', not an integer >= 0"""),
        (rec + [str(bad_curve)], """curves[0]["batch_sizes"] is [8, 'x'], not a list of numbers"""),
        (
            [
                "recommend",
                "--measured",
                str(not_json),
                "--from-batch-size",
                "8",
                "--from-lr",
                "1e-3",
                "--to-batch-size",
                "32",
            ],
            "is not JSON",
        ),
        (
            [
                "recommend",
                "--measured",
                str(other),
                "--from-batch-size",
                "8",
                "--from-lr",
                "1e-3",
                "--to-batch-size",
                "32",
            ],
            "is not a surge measure.json",
        ),
        (
            [
                "recommend",
                "--measured",
                str(tmp_path / "none.json"),
                "--from-batch-size",
                "8",
                "--from-lr",
                "1e-3",
                "--to-batch-size",
                "32",
            ],
            "does not exist",
        ),
        (
            ["recommend", "--from-batch-size", "8", "--from-lr", "1e-3", "--to-batch-size", "32", "--at-step", "3"],
            "--at-loss and --at-step go with --measured",
        ),
        (
            [
                "measure",
                "--workload",
                TINY,
                "--lr",
                "0.01",
                "--batch-size",
                "32",
                "--steps",
                "5",
                "--every",
                "0",
                "--out",
                str(tmp_path / "o"),
            ],
            "--every must be positive",
        ),
        (
            [
                "measure",
                "--workload",
                TINY,
                "--lr",
                "0.01",
                "--batch-size",
                "32",
                "--steps",
                "5",
                "--betas",
                "0.9",
                "--out",
                str(tmp_path / "o"),
            ],
            "--betas must be two numbers",
        ),
        (
            [
                "measure",
                "--workload",
                "surge_monitor_tiny_workload:no_parameters",
                "--lr",
                "0.01",
                "--batch-size",
                "32",
                "--steps",
                "5",
                "--out",
                str(tmp_path / "o"),
            ],
            "no trainable parameters",
        ),
    ]
    base = ["measure", "--workload", TINY, "--lr", "0.01", "--batch-size", "32", "--steps", "5"]
    cases += [  # checked before any training
        (base + ["--draws", "0", "--out", str(tmp_path / "o")], "--draws must be >= 2, got 0"),  # said --n-draws
        (base + ["--curve-batch-size", "8,4", "--out", str(tmp_path / "o")], "--curve-batch-size must be strictly"),
        (base + ["--curve-batch-size", "0,4", "--out", str(tmp_path / "o")], "--curve-batch-size must be > 0"),
        (base + ["--curve-at-loss", "-1", "--out", str(tmp_path / "o")], "--curve-at-loss must be > 0"),
    ]
    for argv, match in cases:
        rc = main(argv)
        err = capsys.readouterr().err.strip()
        assert rc == 2, (argv, err)
        assert match in err and "\n" not in err, err


def test_at_loss_never_reached_is_one_line(measured, capsys):
    out, _ = measured
    path = out / "measure.json"
    if not path.exists():
        pytest.skip("needs the measure run")
    rc = main(
        [
            "recommend",
            "--measured",
            str(path),
            "--from-batch-size",
            "8",
            "--from-lr",
            "1e-3",
            "--to-batch-size",
            "32",
            "--at-loss",
            "0.0001",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "never reached it" in err


def test_check_config_refuses_non_numeric_curve_settings_before_training():
    from surge.errors import SurgeTypeError
    from surge.monitor.run import MeasureConfig, check_config

    for field, flag in (("curve_batch_sizes", "--curve-batch-size"), ("curve_losses", "--curve-at-loss")):
        cfg = MeasureConfig(workload=TINY, lr=0.01, batch_size=32, steps=5, **{field: ("x",)})
        with pytest.raises(SurgeTypeError, match=f"{flag} must be an array of real numbers"):
            check_config(cfg)
