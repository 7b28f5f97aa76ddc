"""Problem builders: each one's structure, its ground truth, and its errors."""

import math

import numpy as np
import pytest
from scipy import special

from surge.errors import SurgeError, SurgeTypeError
from surge.theory.problems import (
    PROBLEM_NAMES,
    Problem,
    custom_problem,
    diagonal_problem,
    equal_snr_peak_batch_size,
    equal_snr_problem,
    load_problem,
    make_problem,
    random_problem,
    sign_blind_problem,
    surge_problem,
)


def _coupling_by_loops(mu, sigma, h):
    """S = sum_{i != j} r_i r_j H_ij, written out (the coupling in Eq 14's denominator)."""
    r = mu / sigma
    n = r.size
    return sum(r[i] * r[j] * h[i, j] for i in range(n) for j in range(n) if i != j)


def test_surge_problem_is_the_check_parameterisation(check_parameters):
    p = surge_problem(seed=3)
    mu, sigma, h = check_parameters(seed=3)
    np.testing.assert_array_equal(p.mu, mu)
    np.testing.assert_array_equal(p.sigma, sigma)
    np.testing.assert_array_equal(p.hessian, h)


def test_surge_problem_structure_and_ground_truth():
    p = surge_problem()
    s = np.sign(p.mu)
    np.testing.assert_allclose(p.hessian, 0.2 * np.eye(64) + np.outer(s, s))
    snr = np.abs(p.mu / p.sigma)
    assert snr.min() >= 0.02 and snr.max() <= 0.08
    assert p.sigma.min() >= 0.5 and p.sigma.max() <= 2.0
    coupling = _coupling_by_loops(p.mu, p.sigma, p.hessian)
    assert p.model.coupling == pytest.approx(coupling, rel=1e-12)
    b_noise = math.pi * np.trace(p.hessian) / (2 * coupling)  # Eq 14, independently
    assert p.model.b_noise == pytest.approx(b_noise, rel=1e-12)
    assert 10 < b_noise < 25  # docs/equations.md: about 16.5
    assert p.model.validity_batch_size > 10 * b_noise  # Theorem 3 applies at the peak
    peak = p.model.peak()
    assert peak.batch_size == pytest.approx(b_noise, rel=0.02)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_problem_has_a_surge_with_an_unstructured_hessian(seed):
    p = random_problem(seed=seed)
    h = p.hessian_matrix()
    assert np.allclose(h, h.T) and np.linalg.eigvalsh(h).min() > 0.29  # A A^T / n + 0.3 I + c s s^T is PD
    snr = np.abs(p.mu / p.sigma)
    assert snr.min() >= 0.02 and snr.max() <= 0.1 and p.sigma.min() >= 0.3 and p.sigma.max() <= 3.0
    coupling = _coupling_by_loops(p.mu, p.sigma, h)
    assert coupling > 0 and p.model.coupling == pytest.approx(coupling, rel=1e-10)
    assert p.model.b_noise == pytest.approx(math.pi * np.trace(h) / (2 * coupling), rel=1e-10)  # Eq 14
    off = h - np.diag(np.diag(h))
    assert np.ptp(off[off != 0]) > 0.1  # not the one-coupling structure of surge_problem
    assert p.model.peak().batch_size is not None  # an interior peak, as Theorem 3 predicts
    assert not np.array_equal(random_problem(seed=seed).mu, random_problem(seed=seed + 1).mu)


def test_problems_are_deterministic_in_the_seed():
    np.testing.assert_array_equal(surge_problem(seed=5).mu, surge_problem(seed=5).mu)
    assert not np.array_equal(surge_problem(seed=5).mu, surge_problem(seed=6).mu)


def test_diagonal_problem_has_no_surge():
    p, q = diagonal_problem(seed=2), surge_problem(seed=2)
    np.testing.assert_array_equal(p.mu, q.mu)
    np.testing.assert_array_equal(p.sigma, q.sigma)
    assert p.is_diagonal and p.hessian.shape == (64,)
    assert p.hessian.sum() == pytest.approx(np.trace(q.hessian))  # same trace
    assert math.isinf(p.model.b_noise) and p.model.peak() is None
    b = np.geomspace(0.1, 1e6, 400)
    # docs/equations.md: sum_i |mu_i| erf(sqrt(B/2) |r_i|) / D, increasing
    exact = (np.abs(p.mu) * special.erf(np.sqrt(b[:, None] / 2) * np.abs(p.mu / p.sigma))).sum(1) / p.hessian.sum()
    np.testing.assert_allclose(p.model.optimal_lr(b), exact, rtol=1e-12)
    assert np.all(np.diff(exact) >= -1e-12 * exact[1:]) and exact[-1] > 50 * exact[0]  # rises, then saturates


def test_sign_blind_problem_has_no_surge():
    p, q = sign_blind_problem(), surge_problem()
    r = p.mu / p.sigma
    assert abs(r.sum()) <= np.abs(r).max() + 1e-15  # balanced signs
    np.testing.assert_allclose(p.hessian, 0.2 * np.eye(64) + np.ones((64, 64)))
    np.testing.assert_allclose(np.linalg.eigvalsh(p.hessian), np.linalg.eigvalsh(q.hessian), atol=1e-10)
    assert _coupling_by_loops(p.mu, p.sigma, p.hessian) < 0
    assert math.isnan(p.model.b_noise) and p.model.peak() is None
    lr = p.model.optimal_lr(np.geomspace(0.1, 1e6, 400))
    assert np.all(np.diff(lr) >= -1e-12 * lr[1:]) and lr[-1] > 50 * lr[0]  # up to rounding at saturation


@pytest.mark.parametrize(
    "ratio, expected_peak, expected_b_noise",
    [(52.5, 12.09, 11.97), (1.57, 648, 399), (0.79, None, None)],  # docs/equations.md's examples, r = 0.05
)
def test_equal_snr_closed_form(ratio, expected_peak, expected_b_noise):
    n, h = 64, 1.0
    c = ratio * h / (n - 1)
    peak = equal_snr_peak_batch_size(n=n, snr=0.05, diagonal=h, off_diagonal=c)
    p = equal_snr_problem(n=n, snr=0.05, diagonal=h, off_diagonal=c)
    np.testing.assert_allclose(p.mu / p.sigma, 0.05, rtol=1e-12)
    np.testing.assert_allclose(p.hessian, (h - c) * np.eye(n) + c * np.ones((n, n)))
    exact = p.model.peak()
    if expected_peak is None:
        assert peak is None and exact is None
        return
    # docs/equations.md quotes the ratios rounded (1.57), hence 1 %
    assert peak == pytest.approx(expected_peak, rel=1e-2)
    assert p.model.b_noise == pytest.approx(expected_b_noise, rel=1e-2)
    assert exact.batch_size == pytest.approx(peak, rel=1e-6)
    assert peak >= p.model.b_noise


def test_sgd_ground_truth_is_mccandlish():
    p = surge_problem()
    g, h, sig2 = p.mu, p.hessian, p.sigma**2
    ghg = g @ h @ g
    assert p.sgd_eps_max == pytest.approx(g @ g / ghg, rel=1e-12)
    assert p.sgd_b_noise == pytest.approx(np.trace(h @ np.diag(sig2)) / ghg, rel=1e-12)
    b = np.array([1.0, 7.0, 100.0, 1e5])
    expected = p.sgd_eps_max / (1 + p.sgd_b_noise / b)
    np.testing.assert_allclose(p.sgd_optimal_lr(b), expected, rtol=1e-12)
    d = diagonal_problem()
    assert d.sgd_b_noise == pytest.approx(d.hessian @ d.sigma**2 / (d.mu**2 @ d.hessian), rel=1e-12)


def test_custom_and_loaded_problems(tmp_path):
    mu, sigma = np.array([0.1, -0.2, 0.05]), np.array([1.0, 2.0, 0.5])
    h = np.array([[1.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 1.0]])
    p = custom_problem(mu, sigma, h, name="mine")
    assert isinstance(p, Problem) and p.name == "mine" and p.n == 3
    assert p.model.coupling == pytest.approx(_coupling_by_loops(mu, sigma, h))
    path = tmp_path / "prob.npz"
    np.savez(path, mu=mu, sigma=sigma, hessian=h)
    q = load_problem(path)
    assert q.name == "prob"
    np.testing.assert_array_equal(q.hessian, h)
    assert make_problem(str(path)).n == 3


def test_make_problem_by_name():
    assert set(PROBLEM_NAMES) == {"surge", "diagonal", "sign-blind", "equal-snr", "random"}
    for name in PROBLEM_NAMES:
        assert make_problem(name).name == name
    assert make_problem("surge", n=8, seed=1).n == 8


def test_problem_errors(tmp_path):
    with pytest.raises(ValueError, match="problem must be one of 'surge'.*got 'nope'"):
        make_problem("nope")
    with pytest.raises(ValueError, match="n must be >= 2"):
        surge_problem(n=1)
    with pytest.raises(TypeError, match="n must be an integer"):
        surge_problem(n=8.5)
    with pytest.raises(ValueError, match="snr_range must be \\(low, high\\)"):
        surge_problem(snr_range=(0.08, 0.02))
    with pytest.raises(ValueError, match="seed must be >= 0"):
        diagonal_problem(seed=-1)
    with pytest.raises(ValueError, match="off_diagonal must lie in"):
        equal_snr_problem(off_diagonal=2.0)
    with pytest.raises(ValueError, match="off_diagonal must lie in"):
        equal_snr_peak_batch_size(
            n=64, snr=0.05, diagonal=1.0, off_diagonal=2.0
        )  # the peak of a non-PSD H is not computed
    with pytest.raises(ValueError, match="coupling must be > 0"):
        sign_blind_problem(coupling=0.0)
    with pytest.raises(ValueError, match="sigma must have the shape of mu"):
        custom_problem([0.1, 0.2], [1.0], np.eye(2))
    with pytest.raises(ValueError, match="hessian must be symmetric"):
        custom_problem([0.1, 0.2], [1.0, 1.0], [[1.0, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        custom_problem([0.1, 0.2], [1.0, 1.0], np.eye(2), name="")
    with pytest.raises(ValueError, match="does not exist"):
        load_problem(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, mu=np.ones(2), sigma=np.ones(2))
    with pytest.raises(ValueError, match="lacks array\\(s\\) hessian"):
        load_problem(bad)
    with pytest.raises(ValueError, match="takes no builder arguments"):
        make_problem(str(bad), n=3)
    with pytest.raises(SurgeError, match="problem 'surge' takes no argument 'size'; it takes n, snr_range"):
        make_problem("surge", size=3)
    with pytest.raises(SurgeTypeError, match="mu must be an array of real numbers"):
        custom_problem([0.1, [0.2, 0.3]], [1.0, 1.0], np.eye(2))  # ragged
