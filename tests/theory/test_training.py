"""The training simulation: the paper's protocol, checked on closed forms, and its two conclusions."""

import math

import numpy as np
import pytest

from surge.fit import fit_b_noise
from surge.theory import SignGradientModel
from surge.theory.training import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_TARGETS,
    QuadraticProblem,
    default_training_problem,
    simulate_training,
)

# ---- the paper's conclusions on the default problem (fixed seeds) -----------------------------------


@pytest.fixture(scope="module")
def sign_run():
    return simulate_training(optimizer="sign", seed=0)


@pytest.fixture(scope="module")
def sgd_run():
    return simulate_training(optimizer="sgd", seed=0)


def test_sign_descent_optimal_lr_rises_then_falls_at_every_stage(sign_run):
    assert len(sign_run.stages) == len(DEFAULT_TARGETS) == 3
    for st in sign_run.stages:
        idx = st.optimal_lr_index
        assert (idx >= 0).all(), f"target {st.target_loss}: a batch size has no optimal lr"
        top = idx.max()
        # rises from the smallest batch size and falls towards the largest: the surge
        assert top > idx[0] and top > idx[-1], f"target {st.target_loss}: {idx}"
        peak = np.flatnonzero(idx == top)
        assert 0 < peak[0] and peak[-1] < idx.size - 1


def test_sign_descent_b_noise_grows_as_the_target_falls(sign_run):
    targets = [st.target_loss for st in sign_run.stages]
    assert targets == sorted(targets, reverse=True)
    fits = [st.fit for st in sign_run.stages]
    assert all(f is not None and f.success for f in fits)
    b_noise = [st.b_noise for st in sign_run.stages]
    assert b_noise[0] < b_noise[1] < b_noise[2], b_noise
    assert b_noise[2] > 2 * b_noise[0]
    # and B_noise lies inside the batch-size grid, where the peak of the optimal lr is
    assert DEFAULT_BATCH_SIZES[0] < b_noise[0] and b_noise[2] < DEFAULT_BATCH_SIZES[-1]


def test_sgd_optimal_lr_is_monotone(sgd_run):
    for st in sgd_run.stages:
        idx = st.optimal_lr_index
        assert (idx >= 0).all()
        assert np.all(np.diff(idx) >= 0), f"target {st.target_loss}: {idx}"
        assert idx[-1] > idx[0]


def test_stage_reductions_follow_the_protocol(sign_run):
    """Recompute each stage's numbers from the raw per-trajectory arrays."""
    res = sign_run
    seeds = res.seeds
    for j, st in enumerate(res.stages):
        steps, dec = res.steps[j], res.decrease[j]
        reached = steps >= 0
        np.testing.assert_array_equal(st.reached, reached.sum(-1))
        for i in range(res.batch_size.size):
            means = []
            for k in range(res.lr.size):
                ok = np.isfinite(dec[i, k])
                means.append(dec[i, k][ok].mean() if ok.sum() * 2 >= seeds else -np.inf)
            assert st.optimal_lr[i] == res.lr[int(np.argmax(means))]
            mean_s = [steps[i, k][reached[i, k]].mean() if reached[i, k].sum() * 2 >= seeds else np.inf for k in range(res.lr.size)]
            assert st.steps[i] == pytest.approx(min(mean_s))
            assert st.examples[i] == pytest.approx(res.batch_size[i] * min(mean_s))
        have = np.isfinite(st.steps)
        ref = fit_b_noise(res.batch_size[have], st.steps[have])  # Eq 22
        assert st.b_noise == pytest.approx(ref.b_noise, rel=1e-12)
        assert st.b_noise_ci == pytest.approx(ref.b_noise_ci, rel=1e-12)
        assert st.censored == int((~reached).sum() + (reached & ~np.isfinite(dec)).sum())


def test_result_json_has_the_documented_keys(sign_run):
    d = sign_run.to_dict()
    assert d["optimizer"] == "sign" and len(d["stages"]) == 3
    for st in d["stages"]:
        for key in ("target_loss", "b_noise", "b_noise_ci", "batch_size", "optimal_lr", "steps", "examples"):
            assert key in st
        assert len(st["optimal_lr"]) == len(DEFAULT_BATCH_SIZES)


# ---- the protocol on closed forms --------------------------------------------------------------


def _noise_free_problem():
    h = np.diag([1.0, 0.5])
    return QuadraticProblem("two", h, np.full(2, 1e-12), np.array([1.0, 1.0]))


def test_protocol_matches_closed_form_sgd_without_noise():
    """Noise-free SGD: delta_t = (1 - lr lambda)^t delta_0, so S and the decrease are known exactly."""
    p = _noise_free_problem()
    lam = np.array([1.0, 0.5])
    lrs, targets, n_after = np.array([0.1, 0.3]), np.array([0.2, 0.05]), 7
    res = simulate_training(p, optimizer="sgd", batch_sizes=[1.0, 8.0], lrs=lrs, targets=targets, seeds=2,
                            n_after=n_after, max_steps=500)

    def loss(lr, t):
        return 0.5 * np.sum(lam * (1 - lr * lam) ** (2 * t))

    for j, target in enumerate(targets):
        for k, lr in enumerate(lrs):
            s = next(t for t in range(500) if loss(lr, t) <= target)
            np.testing.assert_array_equal(res.steps[j, :, k, :], s)
            np.testing.assert_allclose(res.decrease[j, :, k, :], loss(lr, s) - loss(lr, s + n_after), rtol=1e-9)
    assert res.stages[0].fit is None  # two batch sizes are too few for Eq 22
    assert math.isnan(res.stages[0].b_noise)


def test_censoring_and_divergence():
    p = _noise_free_problem()
    # lr 2.5 diverges (|1 - 2.5| > 1); lr 0.01 is too slow for 60 steps; lr 0.3 reaches 0.2, but 1e-12 only
    # after 80 steps
    res = simulate_training(p, optimizer="sgd", batch_sizes=[1.0, 2.0, 4.0], lrs=[0.01, 0.3, 2.5],
                            targets=[0.2, 1e-12], seeds=1, n_after=5, max_steps=60)
    assert res.diverged[:, 2, :].all() and not res.diverged[:, :2, :].any()
    st0, st1 = res.stages
    assert (res.steps[0, :, 0, :] == -1).all() and (res.steps[0, :, 1, :] >= 0).all()
    assert (res.steps[1] == -1).all() and st1.censored == 9 and np.isnan(st1.optimal_lr).all()
    assert st0.censored == 6 and (st0.optimal_lr == 0.3).all()
    # reached, but fewer than n_after steps left in the budget: no decrease, counted as censored
    late = simulate_training(p, optimizer="sgd", batch_sizes=[1.0], lrs=[0.3], targets=[0.05], seeds=1, n_after=50, max_steps=20)
    assert late.steps[0, 0, 0, 0] > 0 and np.isnan(late.decrease[0, 0, 0, 0]) and late.stages[0].censored == 1


def test_adam_with_zero_betas_is_sign_descent():
    kw = {"batch_sizes": [1.0, 16.0, 256.0], "lrs": [0.02, 0.06], "targets": [0.5], "seeds": 2, "n_after": 10, "max_steps": 400}
    sign = simulate_training(optimizer="sign", **kw)
    adam = simulate_training(optimizer="adam", betas=(0.0, 0.0), **kw)
    np.testing.assert_array_equal(adam.steps, sign.steps)
    # V = g / (|g| + eps) differs from sign(g) by eps / |g|, which a rare tiny |g| lifts above 1e-5
    np.testing.assert_allclose(adam.decrease, sign.decrease, rtol=1e-3)
    assert adam.betas == (0.0, 0.0) and sign.betas is None


def test_adam_default_betas_runs_and_reaches_the_targets():
    res = simulate_training(optimizer="adam", batch_sizes=[4.0, 64.0, 1024.0], targets=[0.5], seeds=2, max_steps=2000)
    assert res.betas == (0.9, 0.999)
    assert (res.stages[0].reached.sum(1) > 0).all()


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
    with pytest.raises(ValueError, match="targets must be below the initial loss 0.75"):
        simulate_training(p, targets=[1.0])
    with pytest.raises(ValueError, match="optimizer must be one of 'sign', 'adam', 'sgd'"):
        simulate_training(p, optimizer="momentum")
    with pytest.raises(ValueError, match="seeds must be >= 1"):
        simulate_training(p, seeds=0)
    with pytest.raises(TypeError, match="n_after must be an integer"):
        simulate_training(p, n_after=2.5)
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
