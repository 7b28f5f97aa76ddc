"""surge.analysis: recovery of known laws from synthetic records, optimum extraction, and the edge cases
(ties, diverged, censored, failed, a batch size that all diverged, a stage no trial reached)."""

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from surge.analysis import analyze, configs, load_store, synthetic_frame, tidy_frame
from surge.fit import compare_laws, fit_b_noise, fit_eps_max

# Tolerances on the default synthetic sweep (9 batch sizes 4..1024, 17 lrs, 5 rounds, 10 % decrease noise,
# 5 % steps noise), measured over 40 seeds x 3 stages: |B_noise error| median 1.2 %, max 5.5 %;
# |eps_max error| Adam median 2.3 %, max 9 %; SGD (alpha = 1) median 3.1 %, max 13 %.
B_NOISE_RTOL = 0.08
EPS_MAX_RTOL_ADAM = 0.15
EPS_MAX_RTOL_SGD = 0.20
N_BOOT = 200


# ---- a tiny hand-made frame --------------------------------------------------------------------


def make_frame(cells, *, batch_size=16, target=1.0, extra=None):
    """cells: {(lr, round): dict(status=..., reached=..., steps=..., loss_decrease=...)} -> a tidy-contract frame."""
    rows = []
    for (lr, rnd), c in cells.items():
        row = dict(
            workload="toy",
            optimizer="adam",
            betas=(0.0, 0.0),
            batch_size=batch_size,
            batch_unit="examples",
            lr=lr,
            seed=rnd,
            status="ok",
            error=None,
            target_loss=target,
            reached=True,
            steps=100.0,
            loss_decrease=0.0,
        )
        row.update(c)
        if row["status"] == "diverged":
            row.setdefault("loss_decrease", np.nan)
        if not row["reached"]:
            row["steps"] = np.nan
        row["examples"] = row["steps"] * batch_size
        rows.append(row)
    frame = pd.DataFrame(rows)
    if extra is not None:
        frame = pd.concat([frame, extra], ignore_index=True)
    return frame


def grid_cells(values, lrs=(1e-3, 2e-3, 4e-3, 8e-3)):
    """values[round][i] is the loss decrease at lrs[i]."""
    return {(lr, r): dict(loss_decrease=v) for r, vs in enumerate(values) for lr, v in zip(lrs, vs)}


# ---- recovery of known laws --------------------------------------------------------------------


@pytest.fixture(scope="module")
def adam_runs():
    out = []
    for seed in (0, 1, 2):
        frame = synthetic_frame("adam", seed=seed)
        out.append((frame.attrs["synthetic"], analyze(frame, n_boot=N_BOOT, seed=seed)))
    return out


def test_recovers_adam_law_b_noise_eps_max_and_picks_adam(adam_runs):
    for truth, res in adam_runs:
        assert len(res.stages) == 3
        for k, st in enumerate(res.stages):
            assert st.target_loss == truth["target_loss"][k]
            assert st.b_noise == pytest.approx(truth["b_noise"][k], rel=B_NOISE_RTOL)
            lo, hi = st.b_noise_ci
            assert lo < st.b_noise < hi
            assert st.eps_max["adam"] == pytest.approx(truth["eps_max"][k], rel=EPS_MAX_RTOL_ADAM)
            assert st.best_law == "adam"
            assert st.falls.verdict in ("yes", "inconclusive")
        assert res.trend.grows is True
        assert res.trend.spearman_rho < 0


def test_adam_law_lr_falls_past_b_noise_in_most_stages(adam_runs):
    verdicts = [st.falls.verdict for _, res in adam_runs for st in res.stages]
    assert verdicts.count("yes") >= len(verdicts) // 2
    falls = next(st.falls for _, res in adam_runs for st in res.stages if st.falls.verdict == "yes")
    assert falls.falls is True
    assert falls.far_lr_ci[1] < falls.peak_lr_ci[0]  # the evidence: the intervals do not overlap
    assert falls.far_batch_size > falls.peak_batch_size
    assert falls.slope < 0


def test_recovers_sgd_law_and_picks_sgd():
    for seed in (0, 1):
        frame = synthetic_frame("sgd", seed=seed)
        truth = frame.attrs["synthetic"]
        res = analyze(frame, n_boot=N_BOOT)
        for k, st in enumerate(res.stages):
            assert st.b_noise == pytest.approx(truth["b_noise"][k], rel=B_NOISE_RTOL)
            assert st.eps_max["sgd(alpha=1)"] == pytest.approx(truth["eps_max"][k], rel=EPS_MAX_RTOL_SGD)
            assert st.best_law.startswith("sgd"), st.best_law
            assert st.falls.verdict != "yes"  # an SGD-law lr never falls


def test_stage_fits_equal_the_estimators_on_the_extracted_points():
    frame = synthetic_frame("adam", seed=5, rounds=3)
    st = analyze(frame, n_boot=50).stages[0]
    b = np.array([r.batch_size for r in st.rows], float)
    s = np.array([r.steps for r in st.rows])
    lr = np.array([r.optimal_lr for r in st.rows])
    direct = fit_b_noise(b, s)
    assert st.b_noise == pytest.approx(direct.b_noise, rel=1e-12)
    assert st.b_noise_ci == pytest.approx(direct.b_noise_ci, rel=1e-12)
    for name, law, alpha in (("adam", "adam", 1.0), ("sgd(alpha=1)", "sgd", 1.0), ("sgd(alpha=0.5)", "sgd", 0.5)):
        assert st.eps_max[name] == pytest.approx(fit_eps_max(b, lr, direct.b_noise, law=law, alpha=alpha).eps_max)
    assert st.best_law == compare_laws(b, lr, b_noise=direct.b_noise).best.name


def test_s_and_e_are_the_smallest_mean_over_learning_rates():
    frame = synthetic_frame("adam", seed=3, rounds=3)
    res = analyze(frame, n_boot=0)
    st = res.stages[1]
    sub = frame[(frame["target_loss"] == st.target_loss) & (frame["batch_size"] == 64)]
    means = sub.groupby("lr")[["steps", "examples"]].mean()
    best_lr = means["steps"].idxmin()
    row = next(r for r in st.rows if r.batch_size == 64)
    assert row.steps == pytest.approx(means.loc[best_lr, "steps"])
    assert row.examples == pytest.approx(means.loc[best_lr, "examples"])
    assert row.steps_lr == best_lr


# ---- optimum extraction on hand-made frames ----------------------------------------------------


def test_optimal_lr_is_argmax_of_the_mean_and_refined_is_the_parabola_vertex():
    # round means: [1.0, 3.0, 2.0, 0.5] -> best at 2e-3
    frame = make_frame(grid_cells([[1.0, 2.8, 2.2, 0.4], [1.0, 3.2, 1.8, 0.6]]))
    row = analyze(frame, n_boot=200).stages[0].rows[0]
    assert row.optimal_lr == 2e-3
    assert row.best_decrease == pytest.approx(3.0)
    assert row.n_rounds == 2 and row.n_used == 8
    # independent: vertex of the parabola through (log lr, mean) at 1e-3, 2e-3, 4e-3
    x = np.log([1e-3, 2e-3, 4e-3])
    y = np.array([1.0, 3.0, 2.0])
    a = np.linalg.solve(np.vander(x, 3), y)
    assert row.refined_lr == pytest.approx(math.exp(-a[1] / (2 * a[0])), rel=1e-9)
    assert 1e-3 < row.refined_lr < 4e-3
    assert row.optimal_lr_ci[0] <= row.optimal_lr <= row.optimal_lr_ci[1]
    assert not row.at_grid_edge


def test_bootstrap_interval_spans_the_lrs_the_rounds_disagree_on():
    # round 0 prefers 2e-3, round 1 prefers 4e-3; with 6 rounds of each the interval covers both
    vals = [[1.0, 3.0, 2.0, 0.0]] * 6 + [[1.0, 2.0, 3.2, 0.0]] * 6
    row = analyze(make_frame(grid_cells(vals)), n_boot=500).stages[0].rows[0]
    assert row.optimal_lr_ci == (2e-3, 4e-3)
    same = analyze(make_frame(grid_cells(vals)), n_boot=500).stages[0].rows[0]
    assert same.optimal_lr_ci == row.optimal_lr_ci  # seeded: reproducible


def test_ties_go_to_the_smallest_lr_and_are_reported():
    frame = make_frame(grid_cells([[1.0, 3.0, 3.0, 0.5], [1.0, 3.0, 3.0, 0.5]]))
    res = analyze(frame, n_boot=100)
    row = res.stages[0].rows[0]
    assert row.optimal_lr == 2e-3
    assert row.tied_lrs == (2e-3, 4e-3)
    assert "tie" in row.note
    # the symmetric tie puts the quadratic vertex between the two
    assert 2e-3 < row.refined_lr < 4e-3


def test_diverged_trials_are_counted_never_averaged_and_a_mostly_diverged_lr_is_no_candidate():
    cells = grid_cells([[1.0, 2.0, 1.5, 0.0]] * 3)
    # at 8e-3: one survivor with a huge decrease, two diverged (NaN)
    cells[(8e-3, 0)] = dict(loss_decrease=50.0)
    cells[(8e-3, 1)] = dict(status="diverged", reached=False)
    cells[(8e-3, 2)] = dict(status="diverged", reached=False)
    res = analyze(make_frame(cells), n_boot=100)
    row = res.stages[0].rows[0]
    assert row.n_diverged == 2 and row.n_used == 10 and row.n_censored == 0
    assert row.n_excluded_lrs == 1
    assert row.optimal_lr == 2e-3
    assert "not candidates" in row.note
    g = res.stages[0].grid
    assert g.mean[3, 0] == pytest.approx(50.0)  # the survivor's mean, not (50 + NaN ...) nor 50/3
    assert not g.candidate[3, 0]
    # allowing every diverged fraction makes the survivor the optimum again
    assert analyze(make_frame(cells), n_boot=0, max_diverged_fraction=1.0).stages[0].rows[0].optimal_lr == 8e-3


def test_nan_decrease_after_reaching_counts_as_diverged_not_as_a_number():
    # the engine writes reached=True, loss_decrease=NaN (status "ok") when the N steps after the target blow up
    cells = grid_cells([[1.0, 2.0, 1.5, 0.0]] * 2)
    cells[(2e-3, 1)] = dict(loss_decrease=np.nan)
    cells[(4e-3, 1)] = dict(loss_decrease=np.inf)
    row = analyze(make_frame(cells), n_boot=0).stages[0].rows[0]
    assert row.best_decrease == pytest.approx(2.0)
    assert row.n_diverged == 2 and row.n_censored == 0 and row.n_used == 6
    assert row.steps == 100.0  # they did reach the target: their steps still count


def test_censored_trials_are_counted_and_keep_their_lr_out_of_s():
    cells = grid_cells([[1.0, 2.0, 1.5, 0.0]] * 2)
    for lr, s in zip((1e-3, 2e-3, 4e-3, 8e-3), (400.0, 120.0, 100.0, 300.0)):
        for r in range(2):
            cells[(lr, r)]["steps"] = s
    cells[(4e-3, 1)] = dict(reached=False, loss_decrease=np.nan)  # censored: the fastest lr now has a gap
    res = analyze(make_frame(cells), n_boot=0)
    row = res.stages[0].rows[0]
    assert row.n_censored == 1
    assert row.steps == 120.0 and row.steps_lr == 2e-3  # 4e-3 has a censored trial: its mean would be too low
    med = analyze(make_frame(cells), n_boot=0, steps_statistic="median").stages[0].rows[0]
    assert med.steps == 120.0  # median of (100, inf) is inf at 4e-3; 2e-3 has median 120
    cells[(4e-3, 0)]["steps"] = 90.0
    cells[(4e-3, 2)] = dict(loss_decrease=1.5, steps=90.0)  # a third round: median at 4e-3 = 90 < 120
    cells[(2e-3, 2)] = dict(loss_decrease=2.0, steps=120.0)
    cells[(1e-3, 2)] = dict(loss_decrease=1.0, steps=400.0)
    cells[(8e-3, 2)] = dict(loss_decrease=0.0, steps=300.0)
    med = analyze(make_frame(cells), n_boot=0, steps_statistic="median").stages[0].rows[0]
    assert med.steps == 90.0 and med.steps_lr == 4e-3


def test_best_lr_at_the_grid_edge_is_flagged_without_a_refined_estimate():
    row = analyze(make_frame(grid_cells([[1.0, 2.0, 3.0, 4.0]] * 2)), n_boot=0).stages[0].rows[0]
    assert row.optimal_lr == 8e-3 and row.at_grid_edge
    assert math.isnan(row.refined_lr)
    assert "does not bracket" in row.note


def test_single_round_gives_no_interval():
    row = analyze(make_frame(grid_cells([[1.0, 2.0, 1.5, 0.0]])), n_boot=100).stages[0].rows[0]
    assert row.optimal_lr == 2e-3
    assert all(math.isnan(v) for v in row.optimal_lr_ci)
    assert "single round" in row.note


def test_a_batch_size_whose_trials_all_diverged():
    frame = synthetic_frame("adam", seed=1, rounds=2)
    dead = frame["batch_size"] == 1024
    frame.loc[dead, ["status", "reached", "steps", "examples", "loss_decrease"]] = [
        "diverged",
        False,
        np.nan,
        np.nan,
        np.nan,
    ]
    res = analyze(frame, n_boot=N_BOOT)
    for st in res.stages:
        row = next(r for r in st.rows if r.batch_size == 1024)
        assert math.isnan(row.optimal_lr) and math.isnan(row.steps)
        assert row.n_diverged == row.n_trials == 17 * 2
        assert "all 34 trials diverged" in row.note
        assert any(m.startswith("B = 1024: all 34 trials diverged") for m in st.messages)
        assert st.b_noise_fit.n_points == 8  # left out of Eq 22, which still runs on the others
        assert st.eps_max_fits[0].n_points == 8
        assert math.isfinite(st.b_noise) and st.best_law is not None


def test_a_stage_no_trial_reached():
    frame = synthetic_frame("adam", seed=1, rounds=2, target_loss=(2.0, 1.0))
    last = frame["target_loss"] == 1.0
    frame.loc[last, ["reached", "steps", "examples", "loss_decrease"]] = [False, np.nan, np.nan, np.nan]
    res = analyze(frame, n_boot=N_BOOT)
    ok, empty = res.stages
    assert math.isfinite(ok.b_noise)
    assert empty.target_loss == 1.0
    assert empty.b_noise_fit is None and math.isnan(empty.b_noise)
    assert empty.eps_max_fits == () and empty.best_law is None
    assert empty.falls.verdict == "untestable"
    assert empty.n_censored == empty.n_trials == 9 * 17 * 2
    assert empty.messages[0].startswith("no trial reached target loss 1 (306 trials: 306 censored")
    assert len(empty.messages) == 1  # one clear message, not one per batch size
    assert res.trend.grows is None and "1 stage(s) with a B_noise estimate" in res.trend.message


def test_failed_trials_are_left_out_and_reported():
    frame = synthetic_frame("adam", seed=4, rounds=2, target_loss=(2.0,))
    bad = (frame["batch_size"] == 64) & (frame["lr"] == frame["lr"].max())
    frame["reached"] = frame["reached"].astype(object)  # the store gives NA for a failed trial
    frame.loc[bad, ["status", "reached", "steps", "examples", "loss_decrease", "error"]] = [
        "failed",
        pd.NA,
        np.nan,
        np.nan,
        np.nan,
        "RuntimeError: out of memory",
    ]
    res = analyze(frame, n_boot=0)
    assert res.n_failed == 2
    assert any("2 trial(s) failed" in m and "out of memory" in m for m in res.messages)
    row = next(r for r in res.stages[0].rows if r.batch_size == 64)
    assert row.n_failed == 2 and row.n_used == 16 * 2 and row.n_trials == 17 * 2
    assert row.n_diverged == row.n_censored == 0


def test_selected_stages_give_the_same_numbers_as_the_full_analysis():
    frame = synthetic_frame("adam", seed=6, rounds=3)
    full = analyze(frame, n_boot=100)
    one = analyze(frame, n_boot=100, stages=[1.5])
    assert [s.target_loss for s in one.stages] == [1.5]
    a, b = full.stage(1.5), one.stages[0]
    assert a.b_noise == b.b_noise
    assert [r.optimal_lr_ci for r in a.rows] == [r.optimal_lr_ci for r in b.rows]


def test_refined_lr_estimate_feeds_the_fits_when_asked():
    frame = synthetic_frame("adam", seed=7, rounds=3)
    res = analyze(frame, n_boot=50, lr_estimate="refined")
    st = res.stages[0]
    b, lr = st.fit_points("refined")
    expect = [r.refined_lr if math.isfinite(r.refined_lr) else r.optimal_lr for r in st.rows]
    assert lr.tolist() == pytest.approx(expect)
    assert st.eps_max["adam"] == pytest.approx(fit_eps_max(b, lr, st.b_noise).eps_max)


# ---- loading and input checks ------------------------------------------------------------------


def test_load_store_reads_csv_and_parquet_exports(tmp_path):
    frame = synthetic_frame("sgd", seed=2, rounds=2, target_loss=(2.0, 1.0))
    csv, pq = tmp_path / "t.csv", tmp_path / "t.parquet"
    frame.to_csv(csv, index=False)
    frame.to_parquet(pq, index=False)
    direct = analyze(frame, n_boot=50)
    for path in (csv, pq):
        via = analyze(load_store(path), n_boot=50)
        assert [s.b_noise for s in via.stages] == pytest.approx([s.b_noise for s in direct.stages], rel=1e-12)


def test_load_store_reads_a_sqlite_sweep_store(tmp_path):
    pytest.importorskip("surge.sweep.store")
    from surge.analysis import write_synthetic_store

    frame = synthetic_frame("adam", seed=2, rounds=2, diverge_above=3.0, target_loss=(2.0, 1.0))
    path = write_synthetic_store(frame, tmp_path / "sweep.db")
    loaded = load_store(path)
    assert len(loaded) == len(frame)
    a, b = analyze(frame, n_boot=50), analyze(loaded, n_boot=50)
    assert a.config == b.config
    for x, y in zip(a.stages, b.stages):
        assert x.b_noise == pytest.approx(y.b_noise, rel=1e-12)
        assert [r.optimal_lr for r in x.rows] == [r.optimal_lr for r in y.rows]
        assert [r.n_diverged for r in x.rows] == [r.n_diverged for r in y.rows]


def test_load_store_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_store(tmp_path / "missing.db")
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(ValueError, match="neither a SQLite sweep store nor a .csv / .parquet"):
        load_store(other)
    empty = tmp_path / "empty.csv"
    empty.write_text("batch_size,lr\n")
    with pytest.raises(ValueError, match="holds no trials"):
        load_store(empty)


def test_tidy_frame_accepts_the_simple_contract_and_the_store_columns():
    simple = make_frame(grid_cells([[1.0, 2.0, 1.5, 0.0]]))
    t = tidy_frame(simple)
    assert t["beta1"].iloc[0] == 0.0 and t["round"].tolist() == [0, 0, 0, 0]
    as_text = simple.assign(betas="(0.9, 0.999)", reached=["true", "True", "1", "false"])
    t2 = tidy_frame(as_text)
    assert t2["beta2"].iloc[0] == 0.999
    assert t2["reached"].tolist() == [True, True, True, False]
    assert math.isnan(t2["steps"].iloc[3])  # not reached -> no S, whatever the source wrote
    store_like = synthetic_frame("adam", rounds=1, target_loss=(2.0,))
    assert configs(tidy_frame(store_like)) == ["synthetic | adam(betas=(0, 0))"]


def test_input_errors_name_the_problem():
    frame = make_frame(grid_cells([[1.0, 2.0, 1.5, 0.0]]))
    with pytest.raises(ValueError, match=r"lacks column\(s\) loss_decrease"):
        analyze(frame.drop(columns="loss_decrease"))
    with pytest.raises(ValueError, match="status' must be one of ok, diverged, failed; got nan"):
        analyze(frame.assign(status=["ok", "ok", "ok", np.nan]))
    with pytest.raises(ValueError, match="'lr' must hold positive numbers; row 0"):
        analyze(frame.assign(lr=[0.0, 1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="'batch_size' must hold positive integers"):
        analyze(frame.assign(batch_size=1.5))
    with pytest.raises(ValueError, match="no stage with target loss 0.5; the trials have targets 1"):
        analyze(frame, stages=[0.5])
    with pytest.raises(TypeError, match="stages must be an array of real numbers, got"):
        analyze(frame, stages=["low"])  # was numpy's ValueError
    for odd in ([True], b"2", ["1"]):  # were read as the number 1 or 2
        with pytest.raises(TypeError, match="stages must be an array of real numbers"):
            analyze(frame, stages=odd)
    with pytest.raises(ValueError, match="stages must name at least one target loss"):
        analyze(frame, stages=[])
    with pytest.raises(ValueError, match="n_boot must be >= 0"):
        analyze(frame, n_boot=-1)
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        analyze(frame, seed=-1)  # was accepted
    with pytest.raises(TypeError, match="seed must be an integer, got 'x'"):
        analyze(frame, seed="x")  # was int()'s ValueError
    with pytest.raises(TypeError, match="seed must be an integer, got 1.5"):
        synthetic_frame(seed=1.5)
    with pytest.raises(ValueError, match="steps_statistic must be one of 'mean', 'median'"):
        analyze(frame, steps_statistic="mode")
    with pytest.raises(ValueError, match=r"max_diverged_fraction must be in \[0, 1\]"):
        analyze(frame, max_diverged_fraction=2)
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        analyze(frame, confidence=1.0)
    with pytest.raises(TypeError, match="frame must be a pandas DataFrame"):
        analyze([1, 2])
    with pytest.raises(ValueError, match="the trial frame is empty"):
        analyze(frame.iloc[:0])
    res = analyze(frame, n_boot=0)
    with pytest.raises(ValueError, match="no stage with target loss 3"):
        res.stage(3.0)


def test_several_configurations_must_be_chosen():
    a = make_frame(grid_cells([[1.0, 2.0, 1.5, 0.0]]))
    b = a.assign(betas=[(0.9, 0.999)] * len(a), loss_decrease=[0.0, 1.0, 2.0, 1.0])
    both = pd.concat([a, b], ignore_index=True)
    with pytest.raises(
        ValueError, match=r"2 optimizer configurations \(\[0\] toy \| adam\(betas=\(0, 0\)\); \[1\] toy"
    ):
        analyze(both)
    assert analyze(both, config=0, n_boot=0).stages[0].rows[0].optimal_lr == 2e-3
    assert analyze(both, config="toy | adam(betas=(0.9, 0.999))", n_boot=0).stages[0].rows[0].optimal_lr == 4e-3
    with pytest.raises(ValueError, match="config index 5 is out of range"):
        analyze(both, config=5)
    with pytest.raises(ValueError, match="config 'nope' is not in the trials"):
        analyze(both, config="nope")


def test_analysis_imports_neither_torch_nor_matplotlib():
    code = (
        "import sys, surge.analysis; bad = [m for m in ('torch', 'matplotlib') if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, f"imported: {proc.stdout.strip()} {proc.stderr}"
