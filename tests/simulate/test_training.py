"""The training simulation: the paper's protocol, checked on closed forms, and its two conclusions."""

import math

import numpy as np
import pytest

from surge.analysis import analyze
from surge.fit import fit_b_noise
from surge.simulate.training import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_TARGETS,
    QuadraticProblem,
    default_training_problem,
    simulate_training,
)
from surge.sweep.store import FRAME_COLUMNS
from surge.theory import SignGradientModel

# ---- the paper's conclusions on the default problem (fixed seeds) -----------------------------------


@pytest.fixture(scope="module")
def sign_run():
    return simulate_training(optimizer="sign", seed=0)


@pytest.fixture(scope="module")
def sgd_run():
    return simulate_training(optimizer="sgd", seed=0)


def _opt_index(res, st) -> np.ndarray:
    """Index into the lr grid of each batch size's optimal lr (-1 where there is none)."""
    return np.array(
        [int(np.argmin(np.abs(res.lr - r.optimal_lr))) if math.isfinite(r.optimal_lr) else -1 for r in st.rows]
    )


def test_sign_descent_optimal_lr_rises_then_falls_at_every_stage(sign_run):
    assert len(sign_run.stages) == len(DEFAULT_TARGETS) == 3
    for st in sign_run.stages:
        idx = _opt_index(sign_run, st)
        assert (idx >= 0).all(), f"target {st.target_loss}: a batch size has no optimal lr"
        top = idx.max()
        # rises from the smallest batch size and falls towards the largest: the surge
        assert top > idx[0] and top > idx[-1], f"target {st.target_loss}: {idx}"
        peak = np.flatnonzero(idx == top)
        assert 0 < peak[0] and peak[-1] < idx.size - 1


def test_sign_descent_b_noise_grows_as_the_target_falls(sign_run):
    targets = [st.target_loss for st in sign_run.stages]
    assert targets == sorted(targets, reverse=True)
    fits = [st.b_noise_fit for st in sign_run.stages]
    assert all(f is not None and f.success for f in fits)
    b_noise = [st.b_noise for st in sign_run.stages]
    assert b_noise[0] < b_noise[1] < b_noise[2], b_noise
    assert b_noise[2] > 2 * b_noise[0]
    # and B_noise lies inside the batch-size grid, where the peak of the optimal lr is
    assert DEFAULT_BATCH_SIZES[0] < b_noise[0] and b_noise[2] < DEFAULT_BATCH_SIZES[-1]


def test_sgd_optimal_lr_grows_with_the_batch_size(sgd_run):
    for st in sgd_run.stages:
        idx = _opt_index(sgd_run, st)
        assert (idx >= 0).all()
        # McCandlish's law: monotone up to grid noise (one grid step back at most), clearly rising overall
        assert np.all(np.diff(idx) >= -1), f"target {st.target_loss}: {idx}"
        assert idx[-1] > idx[0] + 2


def test_the_frame_holds_the_trajectories_and_the_stages_come_from_the_analysis(sign_run):
    """One set of rules: the simulator's numbers are surge.analysis on its trial frame."""
    res = sign_run
    frame = res.frame()
    assert list(frame.columns) == list(FRAME_COLUMNS)
    nt, nb, nl, ns = res.steps.shape
    assert len(frame) == nt * nb * nl * ns
    assert set(frame["optimizer"]) == {"signsgd"} and set(frame["extra_steps"]) == {res.extra_steps}
    # the raw arrays, row for row
    first = frame[(frame["stage"] == 0) & (frame["batch_size"] == res.batch_size[3]) & (frame["lr"] == res.lr[4])]
    s = res.steps[0, 3, 4]
    np.testing.assert_array_equal(first["steps"].fillna(-1).to_numpy(dtype=int), s)
    np.testing.assert_allclose(first["loss_decrease"].to_numpy(dtype=float), res.decrease[0, 3, 4])
    again = analyze(frame, n_boot=1000, seed=res.seed)
    for mine, ref in zip(res.stages, again.stages):
        assert mine.target_loss == ref.target_loss
        assert [r.optimal_lr for r in mine.rows] == [r.optimal_lr for r in ref.rows]
        assert [r.optimal_lr_ci for r in mine.rows] == [r.optimal_lr_ci for r in ref.rows]
        assert [r.steps for r in mine.rows] == [r.steps for r in ref.rows]
        assert mine.b_noise == ref.b_noise and mine.b_noise_ci == ref.b_noise_ci
    # S(B) is the analysis's rule: the fewest mean steps over learning rates where every round reached
    for st, j in zip(res.stages, range(nt)):
        for i, row in enumerate(st.rows):
            reached_all = (res.steps[j, i] >= 0).all(axis=-1)
            means = np.where(reached_all, np.where(res.steps[j, i] >= 0, res.steps[j, i], 0).mean(-1), np.inf)
            assert row.steps == pytest.approx(means.min())
        have = np.isfinite([r.steps for r in st.rows])
        ref = fit_b_noise(res.batch_size[have], np.array([r.steps for r in st.rows])[have])  # Eq 22
        assert st.b_noise == pytest.approx(ref.b_noise, rel=1e-12)


def test_local_theory_per_stage(sign_run):
    assert [t.target_loss for t in sign_run.theory] == [st.target_loss for st in sign_run.stages]
    for t in sign_run.theory:
        assert math.isfinite(t.local_b_noise) and t.local_b_noise > 0
    # the one-step B_noise at the reached states grows as training goes on, as Eq 22's does
    bn = [t.local_b_noise for t in sign_run.theory]
    assert bn[0] < bn[1] < bn[2]


def test_result_json_has_the_documented_keys(sign_run):
    d = sign_run.to_dict()
    assert d["optimizer"] == "sign" and d["rounds"] == 16 and d["extra_steps"] == 50
    stages = d["analysis"]["stages"]
    assert len(stages) == 3
    for st in stages:
        for key in ("target_loss", "b_noise", "b_noise_ci", "batch_size", "optimal_lr", "steps", "examples"):
            assert key in st
        assert len(st["optimal_lr"]) == len(DEFAULT_BATCH_SIZES)
    assert [set(t) for t in d["theory"]] == [{"target_loss", "local_b_noise", "local_peak_batch_size"}] * 3


# ---- the protocol on closed forms --------------------------------------------------------------


def _noise_free_problem():
    h = np.diag([1.0, 0.5])
    return QuadraticProblem("two", h, np.full(2, 1e-12), np.array([1.0, 1.0]))


def test_protocol_matches_closed_form_sgd_without_noise():
    """Noise-free SGD: delta_t = (1 - lr lambda)^t delta_0, so S and the decrease are known exactly."""
    p = _noise_free_problem()
    lam = np.array([1.0, 0.5])
    lrs, targets, n_after = np.array([0.1, 0.3]), np.array([0.2, 0.05]), 7
    res = simulate_training(
        p,
        optimizer="sgd",
        batch_sizes=[1, 8],
        lrs=lrs,
        target_loss=targets,
        rounds=2,
        extra_steps=n_after,
        max_steps=500,
    )

    def loss(lr, t):
        return 0.5 * np.sum(lam * (1 - lr * lam) ** (2 * t))

    for j, target in enumerate(targets):
        for k, lr in enumerate(lrs):
            s = next(t for t in range(500) if loss(lr, t) <= target)
            np.testing.assert_array_equal(res.steps[j, :, k, :], s)
            np.testing.assert_allclose(res.decrease[j, :, k, :], loss(lr, s) - loss(lr, s + n_after), rtol=1e-9)
    # two batch sizes determine Eq 22 exactly (issue 11), but noise-free SGD needs the same steps at both:
    # steps that do not fall give no B_noise, and say so
    fit = res.stages[0].b_noise_fit
    assert fit is not None and not fit.success and "steps do not fall" in fit.message
    assert math.isnan(res.stages[0].b_noise)


def test_censoring_and_divergence():
    p = _noise_free_problem()
    # lr 2.5 diverges (|1 - 2.5| > 1); lr 0.01 is too slow for 60 steps; lr 0.3 reaches 0.2, but 1e-12 only
    # after 80 steps
    res = simulate_training(
        p,
        optimizer="sgd",
        batch_sizes=[1, 2, 4],
        lrs=[0.01, 0.3, 2.5],
        target_loss=[0.2, 1e-12],
        rounds=1,
        extra_steps=5,
        max_steps=60,
    )
    assert res.diverged[:, 2, :].all() and not res.diverged[:, :2, :].any()
    st0, st1 = res.stages
    assert (res.steps[0, :, 0, :] == -1).all() and (res.steps[0, :, 1, :] >= 0).all()
    # the analysis counts per cell: lr 0.01 censored, lr 2.5 diverged, never averaged in
    assert st0.n_censored == 3 and st0.n_diverged == 3 and [r.optimal_lr for r in st0.rows] == [0.3] * 3
    assert (res.steps[1] == -1).all() and st1.n_used == 0 and all(math.isnan(r.optimal_lr) for r in st1.rows)
    # reached, but fewer than N steps left in the budget: no decrease, not averaged in
    late = simulate_training(
        p, optimizer="sgd", batch_sizes=[1], lrs=[0.3], target_loss=[0.05], rounds=1, extra_steps=50, max_steps=20
    )
    assert late.steps[0, 0, 0, 0] > 0 and np.isnan(late.decrease[0, 0, 0, 0]) and late.stages[0].n_used == 0


def test_adam_with_zero_betas_is_sign_descent():
    kw = {
        "batch_sizes": [1, 16, 256],
        "lrs": [0.02, 0.06],
        "target_loss": [0.5],
        "rounds": 2,
        "extra_steps": 10,
        "max_steps": 400,
    }
    sign = simulate_training(optimizer="sign", **kw)
    adam = simulate_training(optimizer="adam", betas=(0.0, 0.0), **kw)
    np.testing.assert_array_equal(adam.steps, sign.steps)
    # V = g / (|g| + eps) differs from sign(g) by eps / |g|, which a rare tiny |g| lifts above 1e-5
    np.testing.assert_allclose(adam.decrease, sign.decrease, rtol=1e-3)
    assert adam.betas == (0.0, 0.0) and sign.betas is None


def test_adam_default_betas_runs_and_reaches_the_targets():
    res = simulate_training(optimizer="adam", batch_sizes=[4, 64, 1024], target_loss=[0.5], rounds=2, max_steps=2000)
    assert res.betas == (0.9, 0.999)
    assert ((res.steps[0] >= 0).sum(axis=(1, 2)) > 0).all()


def test_old_keyword_names_still_work_with_a_warning():
    p = _noise_free_problem()
    kw = {"optimizer": "sgd", "batch_sizes": [1, 2, 4], "lrs": [0.3], "max_steps": 60}
    with pytest.warns(DeprecationWarning, match="n_after is renamed extra_steps"):
        old = simulate_training(p, targets=[0.2], seeds=1, n_after=5, **kw)
    new = simulate_training(p, target_loss=[0.2], rounds=1, extra_steps=5, **kw)
    np.testing.assert_array_equal(old.steps, new.steps)
    with pytest.raises(ValueError, match="give rounds or its old name seeds, not both"):
        simulate_training(p, rounds=1, seeds=1, **kw)


def test_default_problem_structure():
    p = default_training_problem()
    assert p.n == 128
    lam = np.geomspace(1.0, 0.01, 4)
    for k in range(4):
        block = p.hessian[32 * k : 32 * (k + 1), 32 * k : 32 * (k + 1)]
        np.testing.assert_allclose(block, 1e-3 * np.eye(32) + lam[k] / 32)
    assert np.count_nonzero(p.hessian[:32, 32:]) == 0
    assert p.initial_loss == pytest.approx(0.5 * np.ones(128) @ p.hessian @ np.ones(128))
    # B_noise (Eq 14) grows as the state shrinks towards the minimum, with constant sigma
    bn = p.b_noise(np.stack([p.delta0, 0.5 * p.delta0, 0.1 * p.delta0]))
    assert bn[0] < bn[1] < bn[2]
    assert bn[1] == pytest.approx(SignGradientModel(p.hessian @ (0.5 * p.delta0), p.sigma, p.hessian).b_noise)


def test_errors():
    p = _noise_free_problem()
    with pytest.raises(ValueError, match="target_loss must be below the initial loss 0.75"):
        simulate_training(p, target_loss=[1.0])
    with pytest.raises(ValueError, match="batch_sizes must be whole numbers"):
        simulate_training(p, batch_sizes=[1.5, 4])
    with pytest.raises(ValueError, match="optimizer must be one of 'sign', 'adam', 'sgd'"):
        simulate_training(p, optimizer="momentum")
    with pytest.raises(ValueError, match="rounds must be positive"):
        simulate_training(p, rounds=0)
    with pytest.raises(TypeError, match="extra_steps must be an integer"):
        simulate_training(p, extra_steps=2.5)
    with pytest.raises(ValueError, match="betas\\[0\\] must be in \\[0, 1\\)"):
        simulate_training(p, optimizer="adam", betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="lrs must be > 0"):
        simulate_training(p, lrs=[0.1, -0.1])
    with pytest.raises(TypeError, match="problem must be a QuadraticProblem"):
        simulate_training("surge")
    with pytest.raises(ValueError, match="hessian must be symmetric"):
        QuadraticProblem("x", [[1.0, 0.2], [0.0, 1.0]], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="positive semi-definite"):
        QuadraticProblem("x", [[1.0, 0.0], [0.0, -1.0]], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="delta0 must have shape \\(2,\\)"):
        QuadraticProblem("x", np.eye(2), [1.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="curvatures must be \\(high, low\\)"):
        default_training_problem(curvatures=(1.0,))
    with pytest.raises(ValueError, match="start must be non-zero"):
        default_training_problem(start=0.0)
