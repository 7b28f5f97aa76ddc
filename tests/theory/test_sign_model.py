"""SignGradientModel against independent computations: literal double sums of the printed equations,
exact enumeration of sign patterns (Lemma 1), Monte Carlo, and closed-form special cases."""

import itertools
import math

import numpy as np
import pytest
from scipy import optimize, special, stats

from surge.theory import SignGradientModel, adam_optimal_lr, loss_improvement


def literal_eq9(mu, sigma, h, b):
    """Eq 9 exactly as printed: sum_i E_i mu_i / (sum_i (1 - E_i^2) H_ii + sum_ij E_i E_j H_ij)."""
    e = special.erf(np.sqrt(b / 2) * mu / sigma)
    n = len(mu)
    den = sum((1 - e[i] ** 2) * h[i, i] for i in range(n)) + sum(
        e[i] * e[j] * h[i, j] for i in range(n) for j in range(n)
    )
    return sum(e[i] * mu[i] for i in range(n)) / den


def enumerated_lemma1(mu, sigma, h, b):
    """Lemma 1 (Eq 6) by enumerating all 2^n sign patterns of V with their exact probabilities."""
    p_plus = 1 - stats.norm.cdf(0, loc=mu, scale=sigma / np.sqrt(b))  # P(G_est_i > 0), Eq 34
    num = den = 0.0
    for pattern in itertools.product([-1.0, 1.0], repeat=len(mu)):
        v = np.array(pattern)
        p = np.prod(np.where(v > 0, p_plus, 1 - p_plus))
        num += p * (mu @ v)
        den += p * (v @ h @ v)
    return num / den, 0.5 * num**2 / den


def random_small_model(rng, n=5):
    mu = rng.normal(size=n) * 0.3
    sigma = rng.uniform(0.5, 2.0, n)
    a = rng.normal(size=(n, n))
    return mu, sigma, a @ a.T / n + 0.1 * np.eye(n)


def test_exact_lr_matches_printed_eq9_and_enumerated_lemma1():
    rng = np.random.default_rng(3)
    mu, sigma, h = random_small_model(rng)
    model = SignGradientModel(mu, sigma, h)
    for b in (0.5, 1.0, 7.0, 60.0, 900.0):
        lr_enum, dl_enum = enumerated_lemma1(mu, sigma, h, b)
        assert float(model.optimal_lr(b)) == pytest.approx(literal_eq9(mu, sigma, h, b), rel=1e-12)
        assert float(model.optimal_lr(b)) == pytest.approx(lr_enum, rel=1e-10)
        assert float(model.loss_improvement(b)) == pytest.approx(dl_enum, rel=1e-10)  # Eq 8


def test_loss_improvement_is_the_maximum_of_eq31_over_lr(surge_model):
    for b in (2.0, 16.0, 200.0):
        res = optimize.minimize_scalar(
            lambda lr: -float(surge_model.expected_loss_decrease(b, lr)),
            bounds=(1e-6, 1.0),
            method="bounded",
            options={"xatol": 1e-12},
        )
        assert res.x == pytest.approx(float(surge_model.optimal_lr(b)), rel=1e-5)
        assert -res.fun == pytest.approx(float(surge_model.loss_improvement(b)), rel=1e-9)


def test_exact_curve_agrees_with_monte_carlo_of_lemma1(surge_model):
    """Sample V = sign(G_est), G_est ~ N(mu, sigma^2/B) independently per coordinate (Eq 34); the
    optimum E[G^T V] / E[V^T H V] is a ratio of means, with a delta-method standard error."""
    rng = np.random.default_rng(11)
    m = surge_model
    for b in (1.0, 4.0, 16.0, 64.0, 256.0, 4096.0):
        g = m.mu + m.sigma / math.sqrt(b) * rng.standard_normal((60_000, m.n))
        v = np.sign(g)
        a = v @ m.mu
        c = np.einsum("ki,ij,kj->k", v, m.hessian, v)
        ratio = a.mean() / c.mean()
        cov = np.cov(a, c) / a.size
        se = abs(ratio) * math.sqrt(
            cov[0, 0] / a.mean() ** 2 + cov[1, 1] / c.mean() ** 2 - 2 * cov[0, 1] / (a.mean() * c.mean())
        )
        assert abs(ratio - float(m.optimal_lr(b))) < 3 * se, (b, ratio, float(m.optimal_lr(b)), se)


def test_key_quantities_match_their_printed_double_sums(surge_model):
    m = surge_model
    mu, sigma, h, n = m.mu, m.sigma, m.hessian, m.n
    offdiag = sum(mu[i] * mu[j] / (sigma[i] * sigma[j]) * h[i, j] for i in range(n) for j in range(n) if i != j)
    trace = sum(h[i, i] for i in range(n))
    msum = sum(mu[i] ** 2 / sigma[i] for i in range(n))
    b_noise = math.pi * trace / (2 * offdiag)  # Eq 14, with H_ij
    assert m.b_noise == pytest.approx(b_noise, rel=1e-12)
    assert m.eps_max == pytest.approx(math.sqrt(b_noise / (2 * math.pi)) * msum / trace, rel=1e-12)  # Eq 16
    dl = sum(mu[i] ** 2 * mu[j] ** 2 / (sigma[i] * sigma[j]) for i in range(n) for j in range(n)) / (
        2 * offdiag
    )  # Eq 19
    assert m.dl_max == pytest.approx(dl, rel=1e-12)
    # Eq 41: eps_max >= M / (S + D) by AM-GM
    assert m.eps_max >= msum / (offdiag + trace)


def test_theorem3_curve_is_eq2_and_within_1_percent_below_a_tenth_of_validity(surge_model):
    m = surge_model
    assert m.b_noise < m.validity_batch_size / 10
    b = np.geomspace(0.01, m.validity_batch_size / 10, 60)
    np.testing.assert_allclose(m.theorem3_lr(b), adam_optimal_lr(b, m.eps_max, m.b_noise), rtol=1e-12)  # Eq 13 = Eq 40
    assert np.max(np.abs(m.theorem3_lr(b) / m.optimal_lr(b) - 1)) < 0.01
    np.testing.assert_allclose(
        m.theorem5_loss_improvement(b), loss_improvement(b, m.dl_max, m.b_noise), rtol=1e-12
    )  # Eq 43 = Eq 18
    assert np.max(np.abs(m.theorem5_loss_improvement(b) / m.loss_improvement(b) - 1)) < 0.03


def test_exact_peak_is_near_b_noise_when_b_noise_is_deep_in_the_linear_regime(surge_model):
    p = surge_model.peak()
    assert p is not None
    assert p.batch_size == pytest.approx(surge_model.b_noise, rel=0.05)
    assert p.lr == pytest.approx(surge_model.eps_max, rel=0.01)
    # it is the maximum: nearby batch sizes give less
    assert (
        float(surge_model.optimal_lr(p.batch_size * 1.01)) < p.lr > float(surge_model.optimal_lr(p.batch_size / 1.01))
    )


@pytest.mark.parametrize("coupling_ratio, expected", [(52.5, 12.09), (1.57, 648.0), (0.79, None)])
def test_peak_matches_the_closed_form_equal_snr_model(coupling_ratio, expected):
    """mu_i/sigma_i = r and H = (h - c) I + c 11^T: the peak is at B = 2 (erfinv(E*) / r)^2 with
    E* = sqrt(h / ((n - 1) c)), and exists iff (n - 1) c > h (docs/equations.md)."""
    n, h, r = 8, 1.0, 0.05
    c = coupling_ratio * h / (n - 1)
    model = SignGradientModel(np.full(n, r), np.ones(n), (h - c) * np.eye(n) + c * np.ones((n, n)))
    p = model.peak()
    if expected is None:
        assert p is None
        return
    e_star = math.sqrt(h / ((n - 1) * c))
    closed = 2 * (special.erfinv(e_star) / r) ** 2
    assert p.batch_size == pytest.approx(closed, rel=1e-6)
    assert closed == pytest.approx(expected, rel=0.01)  # the numbers docs/equations.md quotes
    assert p.batch_size >= model.b_noise


def test_diagonal_hessian_has_no_surge_and_a_monotone_curve(check_parameters):
    mu, sigma, h = check_parameters(seed=2)
    diag = np.diag(h).copy()
    model = SignGradientModel(mu, sigma, diag)
    assert not model.has_surge and model.b_noise == math.inf and model.eps_max == math.inf and model.dl_max == math.inf
    assert "diagonal" in model.no_surge_reason
    b = np.geomspace(0.01, 1e7, 400)
    assert (np.diff(model.optimal_lr(b)) >= 0).all()  # non-decreasing; flat once every erf is 1.0 in float64
    assert (np.diff(model.optimal_lr(b[b < 1e4])) > 0).all()
    assert model.peak() is None
    # closed form for diagonal H: sum_i |mu_i| erf(sqrt(B/2)|mu_i|/sigma_i) / D
    closed = np.abs(mu) @ special.erf(np.sqrt(b[None, :] / 2) * np.abs(mu / sigma)[:, None]) / diag.sum()
    np.testing.assert_allclose(model.optimal_lr(b), closed, rtol=1e-12)
    # the same Hessian given dense gives the same numbers
    np.testing.assert_allclose(
        SignGradientModel(mu, sigma, np.diag(diag)).optimal_lr(b), model.optimal_lr(b), rtol=1e-12
    )


def test_sign_blind_coupling_gives_no_surge():
    rng = np.random.default_rng(5)
    n = 64
    mu = rng.choice([-1, 1], n) * 0.05 * np.ones(n)
    mu[: n // 2] = 0.05
    mu[n // 2 :] = -0.05  # exactly balanced signs: S < 0 for H = I + 0.5 11^T
    model = SignGradientModel(mu, np.ones(n), np.eye(n) + 0.5 * np.ones((n, n)))
    assert not model.has_surge
    assert math.isnan(model.b_noise) and "negative" in model.no_surge_reason
    assert model.peak() is None


def test_large_batch_plateau_eq17_is_reached(surge_model):
    m = surge_model
    s = np.sign(m.mu)
    assert m.large_batch_lr == pytest.approx(np.abs(m.mu).sum() / (s @ m.hessian @ s), rel=1e-12)
    assert float(m.optimal_lr(1e9)) == pytest.approx(m.large_batch_lr, rel=1e-6)
    # Eq 2 extrapolated there is far too low (Caveat 2)
    assert float(m.theorem3_lr(1e6)) < m.large_batch_lr / 10


def test_large_batch_plateau_general_form_with_zero_gradients():
    mu = np.array([0.2, -0.1, 0.0, 0.0])
    h = np.array([[2.0, -0.5, 0.3, 0.0], [-0.5, 1.0, 0.1, 0.2], [0.3, 0.1, 3.0, 0.0], [0.0, 0.2, 0.0, 0.7]])
    model = SignGradientModel(mu, np.ones(4), h)
    s = np.sign(mu)
    expected = 0.3 / (3.0 + 0.7 + s @ h @ s)  # sum|mu| / (sum_{mu_i=0} H_ii + s^T H s)
    assert model.large_batch_lr == pytest.approx(expected, rel=1e-12)
    assert float(model.optimal_lr(1e10)) == pytest.approx(expected, rel=1e-6)


def test_eq10_surrogate_error_is_bounded_by_11_6_percent(surge_model):
    x = np.linspace(1e-4, 6, 20001)
    rel = x / np.sqrt(np.pi / 4 + x**2) / special.erf(x) - 1
    assert rel.min() == pytest.approx(-0.116, abs=0.001)
    assert x[np.argmin(rel)] == pytest.approx(1.20, abs=0.02)
    m = surge_model
    b = np.array([1e-3, 1e12])
    np.testing.assert_allclose(m.surrogate_lr(b), m.optimal_lr(b), rtol=1e-3)  # exact in both limits


def test_diagonal_model_with_two_million_coordinates():
    rng = np.random.default_rng(0)
    n = 2_000_000
    mu, sigma, h = rng.normal(size=n) * 0.01, np.ones(n), rng.uniform(0.5, 1.5, n)
    model = SignGradientModel(mu, sigma, h)
    b = np.array([1.0, 100.0, 1e4])
    expected = np.array([np.abs(mu) @ special.erf(math.sqrt(x / 2) * np.abs(mu)) / h.sum() for x in b])
    np.testing.assert_allclose(model.optimal_lr(b), expected, rtol=1e-10)
    assert model.b_noise == math.inf


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.ones(3), np.ones(2), np.ones(3)), r"sigma must have the shape of mu \(3,\), got \(2,\)"),
        ((np.ones(3), np.array([1.0, 0.0, 1.0]), np.ones(3)), r"sigma must be > 0; element 1 is 0.0"),
        ((np.ones(3), np.ones(3), np.ones(4)), r"a diagonal hessian must have shape \(3,\) like mu, got \(4,\)"),
        ((np.ones(3), np.ones(3), np.ones((3, 2))), r"hessian must have shape \(3, 3\) or \(3,\), got \(3, 2\)"),
        (
            (np.ones(2), np.ones(2), np.array([[1.0, 0.5], [0.0, 1.0]])),
            r"hessian must be symmetric; max \|H - H\^T\| is 0.5",
        ),
        ((np.ones(2), np.ones(2), np.array([1.0, -1.0])), r"hessian diagonal must be >= 0 .*H\[1,1\] = -1.0"),
        ((np.ones(2), np.ones(2), np.zeros(2)), r"hessian must have a positive trace"),
        ((np.ones((2, 2)), np.ones(2), np.ones(2)), r"mu must be 1-dimensional, got shape \(2, 2\)"),
        ((np.array([1.0, np.inf]), np.ones(2), np.ones(2)), r"mu must be finite; element 1 is inf"),
        ((np.ones(2), np.ones(2), np.ones((2, 2, 2))), r"hessian must be 1-D \(diagonal\) or 2-D, got 3-D"),
    ],
)
def test_construction_errors(args, match):
    with pytest.raises(ValueError, match=match):
        SignGradientModel(*args)


def test_batch_size_errors_and_non_psd_denominator():
    model = SignGradientModel(np.array([0.5, 0.5]), np.ones(2), np.array([[1.0, -3.0], [-3.0, 1.0]]))
    with pytest.raises(ValueError, match=r"batch_size must be > 0; element 0 is -1.0"):
        model.optimal_lr(-1.0)
    with pytest.raises(ValueError, match=r"E\[V\^T H V\] <= 0 at batch_size=1000.0"):
        model.optimal_lr([1.0, 1000.0])
