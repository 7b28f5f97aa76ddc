"""One-step Monte Carlo against the exact theory: Eq 9 for sign descent, McCandlish's law for SGD."""

import math

import numpy as np
import pytest
from scipy import special

from surge.simulate import montecarlo as mc
from surge.simulate.montecarlo import AdamMoments, figure1_data, mc_peak_batch_size, one_step_monte_carlo
from surge.theory import laws
from surge.theory.problems import (
    custom_problem,
    diagonal_problem,
    equal_snr_peak_batch_size,
    equal_snr_problem,
    random_problem,
    sign_blind_problem,
    surge_problem,
)

BATCH = np.array([2.0**k for k in range(17)])  # 1 .. 65536, the default of Figure 1


@pytest.fixture(scope="module")
def surge_sign():
    return one_step_monte_carlo(surge_problem(), BATCH, optimizer="sign", samples=100_000, seed=1)


@pytest.mark.parametrize(
    "builder", [surge_problem, diagonal_problem, sign_blind_problem, equal_snr_problem, random_problem]
)
def test_sign_descent_agrees_with_eq9_within_3_standard_errors(builder, surge_sign):
    if builder is surge_problem:
        res = surge_sign
    else:
        res = one_step_monte_carlo(builder(), BATCH, optimizer="sign", samples=40_000, seed=2)
    assert res.exact_name == "Eq 9"
    assert np.all(np.abs(res.z_scores) < 3), res.z_scores
    assert np.all(res.mc_stderr < 0.01 * res.mc_optimal_lr)  # a real test, not a wide error bar


def test_surge_problem_monte_carlo_peak_is_at_b_noise(surge_sign):
    model = surge_problem().model
    assert model.b_noise < model.validity_batch_size / 10
    peak = surge_sign.peak_batch_size()
    assert peak is not None
    assert abs(peak / model.b_noise - 1) < 0.05
    assert int(np.argmax(surge_sign.mc_optimal_lr)) not in (0, BATCH.size - 1)


def test_equal_snr_monte_carlo_peak_is_the_closed_form():
    p = equal_snr_problem()
    closed = equal_snr_peak_batch_size(
        **{k: p.params[k] for k in ("n", "snr")}, diagonal=p.params["diagonal"], off_diagonal=p.params["off_diagonal"]
    )
    res = one_step_monte_carlo(p, np.geomspace(1, 256, 17), samples=40_000, seed=3)
    assert abs(res.peak_batch_size() / closed - 1) < 0.05


@pytest.mark.parametrize("builder", [diagonal_problem, sign_blind_problem])
def test_no_surge_problems_show_no_interior_peak(builder):
    res = one_step_monte_carlo(builder(), BATCH, samples=20_000, seed=4)
    assert res.peak_batch_size() is None
    assert int(np.argmax(res.mc_optimal_lr)) >= BATCH.size - 3  # the maximum is the plateau at the end
    # rises with B, up to noise: every step down is within 3 standard errors
    drop = -np.diff(res.mc_optimal_lr)
    assert np.all(drop < 3 * np.hypot(res.mc_stderr[1:], res.mc_stderr[:-1]))


def test_diagonal_common_random_numbers_make_the_curve_exactly_monotone():
    # with a diagonal H, V^T H V = tr H for sign updates, and a sample's signs only become right as B grows
    res = one_step_monte_carlo(diagonal_problem(), BATCH, samples=10_000, seed=5)
    np.testing.assert_allclose(res.mean_vhv, diagonal_problem().hessian.sum(), rtol=1e-12)
    assert np.all(np.diff(res.mc_optimal_lr) >= 0)


@pytest.mark.parametrize("builder", [surge_problem, diagonal_problem, equal_snr_problem])
def test_sgd_follows_mccandlish_and_is_monotone(builder):
    p = builder()
    res = one_step_monte_carlo(p, BATCH, optimizer="sgd", samples=20_000, seed=6)
    assert res.exact_name == "McCandlish (Eq 1)"
    law = laws.sgd_optimal_lr(BATCH, p.sgd_eps_max, p.sgd_b_noise)  # the closed form, computed apart
    np.testing.assert_allclose(res.exact_optimal_lr, law, rtol=1e-12)
    assert np.all(np.abs(res.z_scores) < 3), res.z_scores
    assert np.all(np.diff(res.mc_optimal_lr) > 0)


def test_sign_expectations_match_erf():
    """E[G^T V] = sum_i mu_i erf(sqrt(B/2) r_i) (Eq 35), checked on the raw Monte-Carlo mean."""
    p = surge_problem()
    b = np.array([1.0, 16.0, 256.0])
    res = one_step_monte_carlo(p, b, samples=40_000, seed=7)
    exact = (p.mu * special.erf(np.sqrt(b[:, None] / 2) * p.mu / p.sigma)).sum(1)
    np.testing.assert_allclose(res.mean_gv, exact, rtol=0.02)


def test_loss_decrease_is_exact_for_a_quadratic():
    """lr G^T V - lr^2/2 V^T H V equals L(theta) - L(theta - lr V) computed from the loss itself."""
    rng = np.random.default_rng(0)
    n = 5
    a = rng.normal(size=(n, n))
    h = a @ a.T + np.eye(n)
    theta_star, theta = rng.normal(size=n), rng.normal(size=n)
    g = h @ (theta - theta_star)

    def loss(t):
        return 0.5 * (t - theta_star) @ h @ (t - theta_star)

    p = custom_problem(g, np.ones(n), h)
    res = one_step_monte_carlo(p, [1e12], optimizer="sgd", samples=4, seed=0, lrs=[0.01, 0.1])
    # at B = 1e12 the update is G itself to 1e-6
    for k, lr in enumerate(res.lr):
        assert res.mean_decrease[0, k] == pytest.approx(loss(theta) - loss(theta - lr * g), rel=1e-5)


def test_adam_first_step_is_sign_descent():
    p = surge_problem()
    b = np.array([1.0, 16.0, 1024.0])
    sign = one_step_monte_carlo(p, b, optimizer="sign", samples=8_000, seed=8)
    adam = one_step_monte_carlo(p, b, optimizer="adam", samples=8_000, seed=8, betas=(0.9, 0.999))
    assert adam.exact_name == "Eq 9" and adam.betas == (0.9, 0.999)
    np.testing.assert_allclose(adam.mc_optimal_lr, sign.mc_optimal_lr, rtol=1e-5)


def test_adam_with_a_saturated_second_moment_is_scaled_sgd():
    """beta1 = 0, beta2 -> 1 with a large v: V = G_est / sqrt(v), so the optimum is sqrt(v) times SGD's."""
    p = surge_problem(n=16)
    b = np.array([1.0, 10.0, 100.0])
    w = 4.0
    state = AdamMoments(m=np.zeros(16), v=np.full(16, w), step=10**12)  # bias corrections (Eq 25, 26) -> 1
    adam = one_step_monte_carlo(
        p, b, optimizer="adam", betas=(0.0, 1 - 1e-9), adam_state=state, samples=8_000, seed=9, eps=0.0
    )
    sgd = one_step_monte_carlo(p, b, optimizer="sgd", samples=8_000, seed=9)
    assert adam.exact_name == "" and np.isnan(adam.exact_optimal_lr).all()
    np.testing.assert_allclose(adam.mc_optimal_lr, math.sqrt(w) * sgd.mc_optimal_lr, rtol=1e-6)


def test_grid_and_standard_errors():
    p = surge_problem()
    res = one_step_monte_carlo(p, [4.0, 64.0], samples=20_000, seed=10)
    assert res.mean_decrease.shape == (2, res.lr.size) == res.mean_decrease_stderr.shape
    ratio = res.lr[1] / res.lr[0]
    assert np.all(np.abs(np.log(res.grid_optimal_lr / res.mc_optimal_lr)) <= math.log(ratio) / 2 + 1e-12)
    # standard errors shrink like 1/sqrt(samples)
    small = one_step_monte_carlo(p, [4.0, 64.0], samples=5_000, seed=10)
    np.testing.assert_allclose(small.mc_stderr / res.mc_stderr, 2.0, rtol=0.15)
    # the same with independent samples (no antithetic pairs) still agrees with Eq 9
    plain = one_step_monte_carlo(p, [4.0, 64.0], samples=20_000, seed=11, antithetic=False)
    assert np.all(np.abs(plain.z_scores) < 3)


def test_seeded_and_chunk_independent(monkeypatch):
    p = surge_problem(n=16)
    a = one_step_monte_carlo(p, [1.0, 8.0], samples=3_000, seed=12)
    b = one_step_monte_carlo(p, [1.0, 8.0], samples=3_000, seed=12)
    np.testing.assert_array_equal(a.mc_optimal_lr, b.mc_optimal_lr)
    c = one_step_monte_carlo(p, [1.0, 8.0], samples=3_000, seed=13)
    assert not np.array_equal(a.mc_optimal_lr, c.mc_optimal_lr)
    monkeypatch.setattr(mc, "_MAX_WORK_ELEMENTS", 64)  # many small chunks, same normals
    d = one_step_monte_carlo(p, [1.0, 8.0], samples=3_000, seed=12)
    np.testing.assert_allclose(d.mc_optimal_lr, a.mc_optimal_lr, rtol=1e-12)
    np.testing.assert_allclose(d.mc_stderr, a.mc_stderr, rtol=1e-9)


def test_mc_peak_batch_size_on_the_adam_law():
    b = np.geomspace(1, 4096, 13)
    lr = laws.adam_optimal_lr(b, 1.0, 37.0)
    assert mc_peak_batch_size(b, lr) == pytest.approx(37.0, rel=0.02)
    assert mc_peak_batch_size(b, np.sqrt(b)) is None
    assert mc_peak_batch_size(b, 1 / b) is None


def test_figure1_data_keys_and_consistency():
    res = figure1_data("surge", batch_sizes=[1.0, 16.0, 256.0, 4096.0], samples=4_000, seed=0)
    d = res.to_dict()
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
        assert key in d
    model = surge_problem().model
    assert d["b_noise"] == model.b_noise and d["eps_max"] == model.eps_max
    np.testing.assert_allclose(d["theorem3_lr"], model.theorem3_lr(np.array([1.0, 16.0, 256.0, 4096.0])))
    np.testing.assert_allclose(d["exact_optimal_lr"], model.optimal_lr(np.array([1.0, 16.0, 256.0, 4096.0])))
    assert d["large_batch_lr"] == model.large_batch_lr
    assert res.curve_batch_size.min() < 1 and res.curve_batch_size.max() > 4096
    # negative coupling: Theorem 3's denominator turns negative at large B; the curve is nan there, not an error
    blind = figure1_data("sign-blind", batch_sizes=[1.0, 1e6], samples=1_000)
    assert np.isnan(blind.theorem3_curve).any() and np.isfinite(blind.theorem3_curve).any()


def test_errors():
    p = surge_problem(n=4)
    with pytest.raises(ValueError, match="optimizer must be one of 'sign', 'adam', 'sgd'; got 'lion'"):
        one_step_monte_carlo(p, [1.0], optimizer="lion")
    with pytest.raises(ValueError, match="samples must be >= 4"):
        one_step_monte_carlo(p, [1.0], samples=2)
    with pytest.raises(TypeError, match="samples must be an integer"):
        one_step_monte_carlo(p, [1.0], samples=1e5)
    with pytest.raises(ValueError, match="batch_sizes must be > 0"):
        one_step_monte_carlo(p, [1.0, 0.0])
    with pytest.raises(ValueError, match="seed must be >= 0"):
        one_step_monte_carlo(p, [1.0], seed=-3)
    with pytest.raises(ValueError, match="adam_state is only used with optimizer='adam'"):
        one_step_monte_carlo(p, [1.0], adam_state=AdamMoments.fresh(4))
    with pytest.raises(ValueError, match="adam_state.m must have shape \\(4,\\)"):
        one_step_monte_carlo(p, [1.0], optimizer="adam", adam_state=AdamMoments.fresh(3))
    with pytest.raises(ValueError, match="betas\\[1\\] must be in \\[0, 1\\)"):
        one_step_monte_carlo(p, [1.0], optimizer="adam", betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="betas must be a pair"):
        one_step_monte_carlo(p, [1.0], optimizer="adam", betas=0.9)
    with pytest.raises(TypeError, match="problem must be a Problem"):
        one_step_monte_carlo(42, [1.0])
    with pytest.raises(ValueError, match="adam_state.v must be >= 0"):
        AdamMoments(np.zeros(2), -np.ones(2), 0)
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        AdamMoments.fresh(-1)  # was numpy's ValueError
    with pytest.raises(TypeError, match="adam_state.step must be an integer, got 1.5"):
        AdamMoments(np.zeros(2), np.ones(2), 1.5)
    with pytest.raises(ValueError, match="window must be > 1"):
        mc_peak_batch_size([1.0, 2.0, 4.0], [1.0, 2.0, 1.0], window=1.0)
    with pytest.raises(ValueError, match="optimal_lr must have the shape of batch_size"):
        mc_peak_batch_size([1.0, 2.0, 4.0], [1.0, 2.0])
