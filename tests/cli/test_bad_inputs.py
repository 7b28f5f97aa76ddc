"""Issue 11: a table of bad-input kinds by command. Every command where a kind can occur answers with one
line on stderr (exit 2 for bad input, 1 for an estimate the data cannot give), never a traceback; and
SURGE_DEBUG=1 still shows the traceback."""

import json
import os
import sqlite3

import numpy as np
import pytest

from surge.analysis import synthetic_frame, write_synthetic_store
from surge.cli.main import main

SPEC = """
name = "tiny"
workload = "cnn-mnist-sample"
rounds = 1
max_steps = 10
target_loss = [2.0]
[lr]
values = [1e-3, 3e-3]
[batch_size]
values = [4, 16]
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    good = write_synthetic_store(synthetic_frame("adam", seed=0), d / "good.sqlite")
    data = bytearray(good.read_bytes())
    data[4096:] = bytes(len(data) - 4096)  # a valid header and first page, the rest zeroed
    (d / "corrupt.sqlite").write_bytes(bytes(data))
    (d / "afile").write_text("not a folder")
    (d / "steps_nan.csv").write_text("batch_size,steps\n64,4000\n128,oops\n256,1000\n")
    (d / "lr_nan.csv").write_text("batch_size,lr\n64,1e-3\n128,oops\n256,1e-3\n512,1e-3\n")
    (d / "steps_ragged.csv").write_text("batch_size,steps\n64,4000\n128,2000,7\n256,1000\n")
    (d / "lr_ragged.csv").write_text("batch_size,lr\n64,1e-3\n128\n256,1e-3\n512,1e-3\n")
    (d / "steps_huge.csv").write_text("batch_size,steps\n64,4e307\n128,2.1e307\n256,1.5e307\n")
    (d / "lr_huge.csv").write_text("batch_size,lr\n64,1e308\n128,1.5e308\n256,1.7e308\n512,1e308\n")
    (d / "steps_rise.csv").write_text("batch_size,steps\n64,3000\n128,2950\n256,3100\n512,3300\n")
    (d / "table.csv").write_text("lr,bs,loss\n1e-3,8,1.0\n2e-3,8,oops\n1e-3,16,0.5\n")
    (d / "table_ragged.csv").write_text("lr,bs,loss\n1e-3,8,1.0\n2e-3,8\n1e-3,16,0.5\n")
    (d / "spec.toml").write_text(SPEC)
    with sqlite3.connect(d / "other.sqlite") as other:
        other.execute("CREATE TABLE notes (text)")
    wl = d / "wl"
    wl.mkdir()
    (wl / "broken_workload.py").write_text("def make():\n    raise RuntimeError('no data here')\n")
    (wl / "dataless_workload.py").write_text(  # what a built-in workload raises offline without its data
        "from surge.errors import InputFileError\n\n"
        "def make():\n    raise InputFileError('Fashion-MNIST files missing in /nowhere')\n"
    )
    return d


TABLE_COLS = ["--lr-column", "lr", "--batch-size-column", "bs", "--loss-column", "loss"]

# (kind, command as a function of the fixture folder, exit code, what stderr must say)
CASES = [
    # an input file that does not exist
    ("missing input", lambda d: ["fit", "b-noise", f"{d}/none.csv"], 2, "does not exist"),
    ("missing input", lambda d: ["fit", "lr", f"{d}/none.csv", "--b-noise", "64"], 2, "does not exist"),
    ("missing input", lambda d: ["fit", "compare", f"{d}/none.csv"], 2, "does not exist"),
    ("missing input", lambda d: ["analyze", "--store", f"{d}/none.db", "--out", f"{d}/o1"], 2, "does not exist"),
    (
        "missing input",
        lambda d: ["analyze", "--table", f"{d}/none.csv", *TABLE_COLS, "--out", f"{d}/o2"],
        2,
        "does not exist",
    ),
    ("missing input", lambda d: ["sweep", "status", "--store", f"{d}/none.db"], 2, "does not exist"),
    (
        "missing input",
        lambda d: ["sweep", "export", "--store", f"{d}/none.db", "--out", f"{d}/x.csv"],
        2,
        "does not exist",
    ),
    ("missing input", lambda d: ["sweep", "plan", f"{d}/none.toml"], 2, "none.toml"),
    # a store with valid header and zeroed pages (item 5)
    ("corrupted store", lambda d: ["sweep", "status", "--store", f"{d}/corrupt.sqlite"], 2, "is corrupted"),
    # a store path that is not a store file: a folder, a path under a file, another program's database
    ("store is a folder", lambda d: ["sweep", "status", "--store", f"{d}/wl"], 2, "is a folder; give a file"),
    ("store is a folder", lambda d: ["sweep", "run", f"{d}/spec.toml", "--store", f"{d}/wl"], 2, "is a folder"),
    ("input is a folder", lambda d: ["fit", "b-noise", f"{d}/wl"], 2, "is a folder; give a file"),
    ("input is a folder", lambda d: ["sweep", "plan", f"{d}/wl"], 2, "is a folder; give a file"),
    ("store is a folder", lambda d: ["analyze", "--store", f"{d}/wl", "--out", f"{d}/o"], 2, "is a folder"),
    (
        "store under a file",  # was an internal error (FileExistsError)
        lambda d: ["sweep", "run", f"{d}/spec.toml", "--store", f"{d}/spec.toml/s.db"],
        2,
        "which is a file",
    ),
    (
        "not a store",  # was written into
        lambda d: ["sweep", "run", f"{d}/spec.toml", "--store", f"{d}/other.sqlite"],
        2,
        "is a SQLite database but not a surge sweep store",
    ),
    (
        "corrupted store",
        lambda d: ["sweep", "export", "--store", f"{d}/corrupt.sqlite", "--out", f"{d}/c.csv"],
        2,
        "is corrupted",
    ),
    (
        "corrupted store",
        lambda d: ["sweep", "run", f"{d}/spec.toml", "--store", f"{d}/corrupt.sqlite"],
        2,
        "is corrupted",
    ),
    ("corrupted store", lambda d: ["analyze", "--store", f"{d}/corrupt.sqlite", "--out", f"{d}/o3"], 2, "is corrupted"),
    # an --out that cannot be written, found before the work starts (item 5)
    (
        "unwritable --out",
        lambda d: ["analyze", "--store", f"{d}/good.sqlite", "--out", f"{d}/afile/sub"],
        2,
        "lies under",
    ),
    (
        "unwritable --out",
        lambda d: ["analyze", "--table", f"{d}/table.csv", *TABLE_COLS, "--out", f"{d}/afile"],
        2,
        "is a file",
    ),
    ("unwritable --out", lambda d: ["simulate", "figure1", "--out", f"{d}/afile/f.png"], 2, "lies under"),
    ("unwritable --out", lambda d: ["simulate", "training", "--out", f"{d}/afile/t"], 2, "lies under"),
    (
        "unwritable --out",
        lambda d: ["sweep", "export", "--store", f"{d}/good.sqlite", "--out", f"{d}/afile/x.csv"],
        2,
        "lies under",
    ),
    (
        "unwritable --out",
        lambda d: ["analyze", "--store", f"{d}/good.sqlite", "--out", "/proc/surge-no/out"],
        2,
        "cannot be written",
    ),
    ("unwritable --out", lambda d: ["simulate", "training", "--out", "/proc/surge-no/out"], 2, "cannot be written"),
    # a value that is not a number (item 14: the line of the file, the value as written)
    (
        "not a number",
        lambda d: ["fit", "b-noise", f"{d}/steps_nan.csv"],
        2,
        "line 3 column 'steps' is not a finite number: 'oops'",
    ),
    (
        "not a number",
        lambda d: ["fit", "lr", f"{d}/lr_nan.csv", "--b-noise", "64"],
        2,
        "line 3 column 'lr' is not a finite number: 'oops'",
    ),
    (
        "not a number",
        lambda d: ["fit", "compare", f"{d}/lr_nan.csv"],
        2,
        "line 3 column 'lr' is not a finite number: 'oops'",
    ),
    (
        "not a number",
        lambda d: ["analyze", "--table", f"{d}/table.csv", *TABLE_COLS, "--out", f"{d}/o4"],
        2,
        "row 2 is not a number: 'oops'",
    ),
    # a ragged row, named by its line
    (
        "ragged row",  # was read with a NaN loss
        lambda d: ["analyze", "--table", f"{d}/table_ragged.csv", *TABLE_COLS, "--out", f"{d}/o_r"],
        2,
        "line 3 has 2 field(s) but the header has 3",
    ),
    (
        "ragged row",
        lambda d: ["fit", "b-noise", f"{d}/steps_ragged.csv"],
        2,
        "line 3 has 3 field(s) but the header has 2",
    ),
    (
        "ragged row",
        lambda d: ["fit", "lr", f"{d}/lr_ragged.csv", "--b-noise", "64"],
        2,
        "line 3 has 1 field(s) but the header has 2",
    ),
    ("ragged row", lambda d: ["fit", "compare", f"{d}/lr_ragged.csv"], 2, "line 3 has 1 field(s)"),
    # finite inputs whose arithmetic overflows (item 1): an estimate that cannot be given, exit 1
    ("overflow", lambda d: ["fit", "b-noise", f"{d}/steps_huge.csv"], 1, "overflow a 64-bit float"),
    (
        "overflow",
        lambda d: ["fit", "b-noise", f"{d}/steps_huge.csv", "--method", "nonlinear"],
        1,
        "overflow a 64-bit float",
    ),
    ("overflow", lambda d: ["fit", "lr", f"{d}/lr_huge.csv", "--b-noise", "64"], 1, "overflows a 64-bit float"),
    ("overflow", lambda d: ["fit", "compare", f"{d}/lr_huge.csv"], 1, "does not fit in a 64-bit float"),
    (
        "overflow",  # printed inf (or null with --json), exit 0
        lambda d: ["recommend", "--from-batch-size", "256", "--from-lr", "1e308", "--to-batch-size", "1e300"],
        1,
        "linear_lr overflows a 64-bit float",
    ),
    (
        "overflow",
        lambda d: [
            "recommend",
            "--from-batch-size",
            "1e-300",
            "--from-lr",
            "1e300",
            "--to-batch-size",
            "1e-300",
            "--b-noise",
            "1e300",
        ],
        1,
        "eps_max overflows a 64-bit float",
    ),
    # a fit that fails: no estimate printed, exit 1 (item 2)
    ("failed fit", lambda d: ["fit", "b-noise", f"{d}/steps_rise.csv"], 1, "steps do not fall as the batch size grows"),
    (
        "failed fit",
        lambda d: ["fit", "b-noise", f"{d}/steps_rise.csv", "--method", "nonlinear"],
        1,
        "steps do not fall",
    ),
    # sizes refused before anything is materialised (item 4)
    (
        "too large",
        lambda d: ["sweep", "plan", "--preset", "smoke", "--rounds", "1000000000"],
        2,
        "the limit is 1,000,000",
    ),
    (
        "too large",
        lambda d: ["sweep", "run", "--preset", "smoke", "--rounds", "1000000000", "--store", f"{d}/big.db"],
        2,
        "the limit is 1,000,000",
    ),
    (
        "too large",  # was killed for memory
        lambda d: ["simulate", "training", "--rounds", "100000000", "--out", f"{d}/big"],
        2,
        "trajectories; the limit is 1,000,000",
    ),
    (
        "out of range",  # was accepted because sign descent does not use betas
        lambda d: ["simulate", "training", "--beta1", "1.5", "--out", f"{d}/b"],
        2,
        "betas[0] must be in [0, 1), got 1.5",
    ),
    (
        "out of range",  # sweep plan sized groups with a negative GPU share
        lambda d: [
            "sweep",
            "plan",
            f"{d}/spec.toml",
            "--device",
            "cuda",
            "--gpu-memory",
            "4",
            "--gpus-per-group",
            "-1",
        ],
        2,
        "gpus_per_group must be >= 0, got -1.0",
    ),
    (
        "out of range",
        lambda d: [
            "sweep",
            "plan",
            f"{d}/spec.toml",
            "--device",
            "cuda",
            "--gpu-memory",
            "4",
            "--gpus-per-group",
            "1.5",
        ],
        2,
        "gpus_per_group must be 0, a fraction in (0, 1] or a whole number of GPUs, got 1.5",
    ),
    # user workloads (items 6, 15)
    (
        "workload raises",
        lambda d: [
            "sweep",
            "plan",
            f"{d}/spec.toml",
            "--workload",
            "broken_workload:make",
            "--workload-path",
            f"{d}/wl",
        ],
        2,
        "raised when called: RuntimeError: no data here",
    ),
    (
        "workload raises",
        lambda d: [
            "sweep",
            "run",
            f"{d}/spec.toml",
            "--store",
            f"{d}/w.db",
            "--workload",
            "broken_workload:make",
            "--workload-path",
            f"{d}/wl",
        ],
        2,
        "raised when called",
    ),
    (
        "workload data missing",  # was an internal error: WorkloadUnavailable was not a SurgeError
        lambda d: [
            "sweep",
            "run",
            f"{d}/spec.toml",
            "--store",
            f"{d}/nodata.db",
            "--workload",
            "dataless_workload:make",
            "--workload-path",
            f"{d}/wl",
        ],
        2,
        "Fashion-MNIST files missing in /nowhere",
    ),
    (
        "workload not found",
        lambda d: ["sweep", "plan", f"{d}/spec.toml", "--workload", "no_such_wl_mod:make"],
        2,
        "no module 'no_such_wl_mod' in the current folder",
    ),
    (
        "workload not found",
        lambda d: ["sweep", "run", f"{d}/spec.toml", "--store", f"{d}/w2.db", "--workload", "no_such_wl_mod:make"],
        2,
        "--workload-path",
    ),
    # recommend with numbers at the edge of floats
    (
        "bad number",
        lambda d: ["recommend", "--from-batch-size", "0", "--from-lr", "1e-3", "--to-batch-size", "8"],
        2,
        "from_batch_size must be > 0",
    ),
    (
        "bad number",
        lambda d: [
            "recommend",
            "--from-batch-size",
            "8",
            "--from-lr",
            "1e-3",
            "--to-batch-size",
            "8",
            "--beta2",
            "1.5",
        ],
        2,
        "beta2 must be in (0, 1)",
    ),
]


@pytest.mark.parametrize(
    "kind, command, code, message",
    CASES,
    ids=[f"{k}: {' '.join(c('D')[:2])}-{i}" for i, (k, c, _, _) in enumerate(CASES)],
)
def test_bad_input_kind_by_command(files, capsys, monkeypatch, kind, command, code, message):
    monkeypatch.delenv("SURGE_DEBUG", raising=False)
    got = main(command(files))
    out, err = capsys.readouterr()
    assert got == code, (kind, err)
    assert "Traceback" not in err + out
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line
    assert message in err, err


def test_every_command_group_appears_in_the_table():
    groups = {" ".join(c("D")[:2]) if c("D")[0] in ("fit", "sweep", "simulate") else c("D")[0] for _, c, _, _ in CASES}
    assert {
        "fit b-noise",
        "fit lr",
        "fit compare",
        "analyze",
        "sweep status",
        "sweep export",
        "sweep run",
        "sweep plan",
        "simulate figure1",
        "simulate training",
        "recommend",
    } <= groups


def test_surge_debug_shows_the_traceback(files, monkeypatch):
    monkeypatch.setenv("SURGE_DEBUG", "1")
    with pytest.raises(ValueError, match="is corrupted"):
        main(["sweep", "status", "--store", f"{files}/corrupt.sqlite"])
    with pytest.raises(ValueError, match="steps do not fall"):
        main(["fit", "b-noise", f"{files}/steps_rise.csv"])


def test_a_module_in_the_current_folder_is_a_workload(files, monkeypatch, capsys):
    """Item 15: 'module:attribute' is found in the current folder without installing it."""
    monkeypatch.chdir(files / "wl")
    assert main(["sweep", "plan", f"{files}/spec.toml", "--workload", "broken_workload:make"]) == 2
    assert "raised when called" in capsys.readouterr().err  # found (and called), not "no module"


def test_perfect_scaling_on_the_cli_is_a_bound_not_a_traceback(tmp_path, run_cli):
    f = tmp_path / "p.csv"
    f.write_text("batch_size,steps\n64,4000\n128,2000\n256,1000\n")
    code, out, err = run_cli("fit", "b-noise", str(f))
    assert code == 0 and "> 256" in out and "no loss of data efficiency" in " ".join(out.split())
    assert "<= 2.56e+05" in out or "<= 256000" in out  # E_min is at most the fewest examples seen, as in --json
    code, js, _ = run_cli("fit", "b-noise", str(f), "--json")
    assert json.loads(js)["e_min"] == 256_000


def test_a_figure_that_cannot_be_drawn_loses_no_results(tmp_path, run_cli):
    """Item 7: batch sizes 1 and 4 with two lrs cannot be log-scaled; the numbers and the report are written."""
    out = tmp_path / "t"
    code, _, err = run_cli(
        "simulate",
        "training",
        "--batch-size",
        "1,4",
        "--seeds",
        "2",
        "--max-steps",
        "50",
        "--lr",
        "0.01,0.1",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert (out / "trials.csv").is_file() and (out / "result.json").is_file() and (out / "report.html").is_file()
    assert "could not be drawn" in err and "Traceback" not in err


@pytest.mark.parametrize("content", ["objects", "single", "text"])
def test_an_npz_problem_that_is_not_numeric_arrays_never_advises_allow_pickle(tmp_path, run_cli, content):
    f = tmp_path / "p.npz"
    if content == "objects":
        np.savez(f, mu=np.array([1, "a", None], dtype=object), sigma=np.ones(3), hessian=np.eye(3))
    elif content == "single":
        with open(f, "wb") as fh:
            np.save(fh, np.ones(3))
    else:
        f.write_text("hello")
    code, _, err = run_cli("simulate", "figure1", "--problem", str(f), "--out", str(tmp_path / "f.png"))
    assert code == 2 and "is not a readable .npz file of numeric arrays" in err
    assert "allow_pickle" not in err


def test_numpy_warnings_do_not_reach_stderr(tmp_path):
    """In a real process (pytest would capture warnings itself): one line, no RuntimeWarning text."""
    import subprocess
    import sys

    f = tmp_path / "lr.csv"
    f.write_text("batch_size,lr\n64,1e308\n128,1.5e308\n256,1.7e308\n512,1e308\n")
    env = {k: v for k, v in os.environ.items() if k != "SURGE_DEBUG"}
    env["PYTHONWARNINGS"] = "default"
    proc = subprocess.run(
        [sys.executable, "-m", "surge.cli.main", "fit", "lr", str(f), "--b-noise", "64"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1 and "Warning" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_a_spec_with_several_errors_reports_all_of_them(tmp_path, run_cli):
    f = tmp_path / "b.toml"
    f.write_text(
        'name = "x"\nworkload = "cnn-mnist-sample"\nrounds = 0\nmax_steps = -5\ndevice = "tpu"\n'
        "[lr]\nvalues = [-1e-3]\n[batch_size]\nvalues = [4]\n"
    )
    code, _, err = run_cli("sweep", "plan", str(f))
    assert code == 2 and err.count("\n") == 1
    assert "4 problems in the spec" in err
    for part in ("lr.values[0] must be > 0", "rounds must be positive", "max_steps must be positive", "device must be"):
        assert part in err


def test_a_top_level_key_after_a_table_header_is_reported_as_landing_in_that_table(tmp_path, run_cli):
    f = tmp_path / "a.toml"
    f.write_text('name = "x"\n[lr]\nvalues = [1e-3]\nworkload = "cnn-mnist-sample"\n[batch_size]\nvalues = [4]\n')
    code, _, err = run_cli("sweep", "plan", str(f))
    assert code == 2 and "key 'workload' is inside the [lr] table" in err and "lacks" not in err
