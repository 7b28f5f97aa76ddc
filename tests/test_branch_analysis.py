"""The fitted optimum (surge.analysis.fitted), the Eq 22 jackknife and S rules (surge.analysis.bnoise),
the pilot planner (surge.analysis.planner) and censored trials in candidacy, on synthetic data with known
answers, including the intervals' coverage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from surge.analysis import analyze
from surge.analysis.bnoise import jackknife_b_noise, steps_points
from surge.analysis.fitted import fit_optimum
from surge.analysis.planner import advise
from surge.errors import SurgeError

LRS = np.geomspace(1e-3, 1e-1, 11)


def _second_order_rounds(rng, R, a=2.0, c=40.0, sd=1.0, lrs=LRS):
    ar = a + sd * rng.standard_normal(R)
    cr = c * (1 + 0.1 * rng.standard_normal(R))
    return ar[:, None] * lrs - 0.5 * cr[:, None] * lrs**2, a / c


def test_second_order_fit_is_mean_a_over_mean_c_and_its_interval_covers():
    rng = np.random.default_rng(0)
    V, truth = _second_order_rounds(rng, 30)
    f = fit_optimum(LRS, V, extra_steps=1, n_boot=300, rng=1)
    assert f.model == "second-order"
    # independent computation: least squares through the origin on the lrs up to 2x the grid argmax
    mean = V.mean(0)
    use = LRS <= 2 * LRS[np.argmax(mean)] * (1 + 1e-12)
    X = np.stack([LRS[use], -0.5 * LRS[use] ** 2], 1)
    a, c = np.linalg.lstsq(X, mean[use], rcond=None)[0]
    assert math.isclose(f.lr, a / c, rel_tol=1e-10)
    hits = 0
    reps = 150
    for k in range(reps):
        V, truth = _second_order_rounds(np.random.default_rng(100 + k), 20)
        f = fit_optimum(LRS, V, extra_steps=1, n_boot=300, rng=k)
        hits += f.lr_ci[0] <= truth <= f.lr_ci[1]
    assert 0.88 <= hits / reps <= 0.995, hits / reps


def test_log_quadratic_fit_recovers_the_vertex_and_covers():
    x = np.log(LRS)
    star = math.log(1.3e-2)
    hits, reps = 0, 150
    for k in range(reps):
        rng = np.random.default_rng(k)
        V = 1.0 - 0.5 * (x - star) ** 2 + 0.3 * rng.standard_normal((16, 1)) + 0.2 * rng.standard_normal((16, x.size))
        f = fit_optimum(LRS, V, extra_steps=10, n_boot=300, rng=k)
        assert f.model == "log-quadratic" and f.n_lrs == 5
        hits += f.lr_ci[0] <= 1.3e-2 <= f.lr_ci[1]
    assert 0.88 <= hits / reps <= 0.995, hits / reps
    exact = fit_optimum(LRS, (1.0 - 0.5 * (x - star) ** 2)[None].repeat(3, 0), extra_steps=10, n_boot=0)
    assert math.isclose(exact.lr, 1.3e-2, rel_tol=1e-9)


def test_edge_flat_and_error_cases():
    x = np.log(LRS)
    rising = np.tile(x, (4, 1))  # keeps rising: the optimum is past the grid
    f = fit_optimum(LRS, rising, extra_steps=10)
    assert math.isnan(f.lr) and "does not bracket" in f.message
    V = np.tile(-((x - x[5]) ** 2), (6, 1))
    V[:, 6] = V[:, 5]  # a tie with the runner-up: flat
    V += 1e-3 * np.random.default_rng(0).standard_normal(V.shape)
    assert fit_optimum(LRS, V, extra_steps=10).flat
    with pytest.raises(SurgeError, match=r"decreases must have shape \(rounds, 11\)"):
        fit_optimum(LRS, np.zeros((3, 4)))
    with pytest.raises(SurgeError, match="model must be one of 'auto', 'second-order', 'log-quadratic'; got 'cubic'"):
        fit_optimum(LRS, np.zeros((3, 11)), model="cubic")
    with pytest.raises(SurgeError, match="lrs must be positive and strictly increasing"):
        fit_optimum(LRS[::-1], np.zeros((3, 11)))


# ---- Eq 22: S rules and the jackknife ----------------------------------------------------------------

B = np.array([4, 8, 16, 32, 64, 128, 256])
STEP_LRS = np.array([1e-3, 2e-3, 4e-3])


def _steps_frame(rng, R, b_noise=40.0, s_min=100.0, noise=0.15):
    rows = []
    for r in range(R):
        for b in B:
            for j, lr in enumerate(STEP_LRS):
                penalty = (1.0, 1.0, 1.3)[j]  # lrs 0 and 1 are equally fast on average
                s = s_min * (1 + b_noise / b) * penalty * math.exp(noise * rng.standard_normal())
                rows.append(
                    dict(
                        batch_size=int(b),
                        lr=lr,
                        round=r,
                        seed=r,
                        status="ok",
                        target_loss=1.0,
                        reached=True,
                        steps=float(round(s)),
                        loss_decrease=0.1 * (1 + (j == 1)),
                    )
                )
    return pd.DataFrame(rows)


def test_steps_rules_pick_fewest_or_the_optimal_lr():
    df = _steps_frame(np.random.default_rng(0), 4)
    fewest = steps_points(df, "fewest", {})
    at_opt = steps_points(df, "optimal", {int(b): 2e-3 for b in B})
    for b in B:
        cell = df[df.batch_size == b].groupby("lr")["steps"].mean()
        assert fewest[int(b)] == cell.min() and at_opt[int(b)] == cell[2e-3]
    a = analyze(df, n_boot=50, steps_rule="optimal")
    st = a.stages[0]
    assert st.b_noise_fit_other is not None and a.settings.steps_rule == "optimal"
    assert [r.optimal_lr for r in st.rows] == [2e-3] * len(B)


def test_jackknife_corrects_the_low_bias_and_its_interval_covers():
    truth = 40.0
    hits, plug, corr, reps = 0, [], [], 60
    for k in range(reps):
        df = _steps_frame(np.random.default_rng(1000 + k), 8)
        jk = jackknife_b_noise(df, "fewest", {})
        assert jk is not None and jk.trusted
        hits += jk.b_noise_ci[0] <= truth <= jk.b_noise_ci[1]
        plug.append(math.log(jk.b_noise / truth))
        corr.append(math.log(jk.b_noise_corrected / truth))
    assert hits / reps >= 0.85, hits / reps
    assert abs(np.mean(corr)) < abs(np.mean(plug))  # the min over lrs biases the plug-in; the jackknife less
    few = jackknife_b_noise(_steps_frame(np.random.default_rng(0), 3), "fewest", {})
    assert not few.trusted and "not to be trusted" in few.message


def test_jackknife_with_an_unbounded_b_noise_says_so_instead_of_failing():
    """Steps falling almost like 1/B (B_noise far above the batch sizes): a leave-one-out fit or the
    all-rounds fit can find no loss of data efficiency (B_noise = inf). The jackknife reports an interval
    without an upper end and is not trusted; analyze() goes on (it raised ZeroDivisionError)."""
    loo = jackknife_b_noise(_steps_frame(np.random.default_rng(1), 5, b_noise=3000.0), "fewest", {})
    assert math.isfinite(loo.b_noise) and math.isnan(loo.b_noise_corrected)
    assert math.isnan(loo.b_noise_ci[0]) and loo.b_noise_ci[1] == math.inf
    assert not loo.trusted and "no upper end" in loo.message
    st = analyze(_steps_frame(np.random.default_rng(1), 5, b_noise=3000.0), n_boot=20).stages[0]
    assert st.b_noise_jackknife == loo
    full = jackknife_b_noise(_steps_frame(np.random.default_rng(0), 5, b_noise=3000.0), "fewest", {})
    assert full.b_noise == math.inf and full.b_noise_ci[1] == math.inf and 0 < full.b_noise_ci[0] < math.inf
    assert not full.trusted and "lower bound" in full.message


# ---- candidacy and the planner -------------------------------------------------------------------------


def _decrease_frame(R=6, widths=None, censored_lr=None):
    rng = np.random.default_rng(5)
    rows = []
    x = np.log(LRS)
    for b, star in ((4, 1e-2), (64, 2e-2)):
        for r in range(R):
            shift = 0.4 * rng.standard_normal()
            for lr, xl in zip(LRS, x):
                dec = 1.0 - 0.5 * (xl - math.log(star) - shift) ** 2
                reached = not (censored_lr is not None and lr == censored_lr and r < R - 1)
                rows.append(
                    dict(
                        batch_size=b,
                        lr=lr,
                        round=r,
                        seed=r,
                        status="ok",
                        target_loss=1.0,
                        reached=reached,
                        steps=np.nan,
                        loss_decrease=dec if reached else np.nan,
                        extra_steps=10,
                    )
                )
    return pd.DataFrame(rows)


def test_a_learning_rate_mostly_censored_is_not_a_candidate():
    best = float(LRS[5])
    df = _decrease_frame(censored_lr=best)
    a = analyze(df, n_boot=50)
    row = a.stages[0].rows[0]
    assert row.optimal_lr != best and "did not reach the target" in row.note


def test_planner_rounds_follow_the_square_root_rule_and_name_grid_extensions():
    df = _decrease_frame(R=6)
    adv = advise(df, width=1.2, n_boot=300)
    lr_items = [i for i in adv.rounds if i.what == "optimal_lr"]
    for i in lr_items:
        assert i.rounds_needed == max(6, math.ceil(6 * (math.log(i.width_now) / math.log(1.2)) ** 2))
    assert adv.rounds_for_lr == max(i.rounds_needed for i in lr_items)
    # cut the grid below the optimum: the planner says to extend it upward
    cut = df[df.lr <= LRS[4]]
    adv = advise(cut, width=1.5, n_boot=100)
    assert any("largest of the grid" in w and "add" in w for w in adv.warnings)
    with pytest.raises(SurgeError, match="width must be a factor > 1"):
        advise(df, width=1.0)


def test_selection_bias_ratio_is_decrease_over_the_local_trend():
    rows = []
    N = 10
    for b, factor in ((4, 3.0), (64, 1.0)):
        for r in range(5):
            for lr in (1e-3, 2e-3):
                s1, s2 = 20 + r, 60 + 2 * r
                l1, l2 = 1.2, 0.8
                trend = N * (l1 - l2) / (s2 - s1)
                for t, s, loss, dec in ((1.2, s1, l1, 0.05), (0.8, s2, l2, factor * trend)):
                    rows.append(
                        dict(
                            batch_size=b,
                            lr=lr,
                            round=r,
                            seed=r,
                            status="ok",
                            target_loss=t,
                            reached=True,
                            steps=float(s),
                            loss_at_target=loss,
                            loss_decrease=dec,
                            extra_steps=N,
                        )
                    )
    a = analyze(pd.DataFrame(rows), n_boot=20)
    first, second = a.stages
    assert first.selection_bias == ()
    got = {x.batch_size: x.ratio for x in second.selection_bias}
    assert math.isclose(got[4], 3.0, rel_tol=1e-9) and math.isclose(got[64], 1.0, rel_tol=1e-9)
    assert any("differs across batch sizes" in m for m in second.messages)
    assert a.to_dict()["stages"][1]["selection_bias"][0]["ratio"] == pytest.approx(3.0)


def test_advise_cli_json_and_errors(tmp_path, run_cli):
    from surge.sweep import SweepStore

    code, out, err = run_cli("sweep", "advise", str(tmp_path / "missing.sqlite"))
    assert code == 2 and "does not exist" in err
    store = tmp_path / "empty.sqlite"
    SweepStore(store).close()
    code, out, err = run_cli("sweep", "advise", str(store))
    assert code == 2 and "holds no trials: run a pilot first" in err
