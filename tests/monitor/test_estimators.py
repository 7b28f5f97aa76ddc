"""Known truth for surge.monitor.estimate_noise: Gaussian per-example gradients with known mu, sigma, H.

On these problems Eq 14 is exact, so the estimates are compared with the closed forms of
SignGradientModel (B_noise, eps_max, Eq 9 and its argmax) and with McCandlish's tr(Sigma) / |G|^2.
Enough examples: 20,000 per-example rows (or 5,000 micro-batches of 4) for n = 64 coordinates with
SNR 0.02-0.08 (the README of the monitor says so).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from surge.errors import SurgeError
from surge.monitor import estimate_noise, pool_estimates
from surge.theory.problems import make_problem

SEEDS = range(20)
GRID = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], dtype=float)
GRID_MB = np.array([4, 8, 16, 32, 64, 128, 256, 512, 1024], dtype=float)


def draws(problem, m: int, seed: int, micro: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return problem.mu + problem.sigma * rng.standard_normal((m, problem.n)) / math.sqrt(micro)


def b_simple_truth(problem) -> float:
    return float(problem.sigma @ problem.sigma / (problem.mu @ problem.mu))


class MatrixHVP:
    """v -> H v for a dense H; ``batched`` so that estimate_noise hands it (k, n) blocks."""

    batched = True

    def __init__(self, h: np.ndarray) -> None:
        self.h = h

    def __call__(self, v: np.ndarray) -> np.ndarray:
        return v @ self.h  # H symmetric: (k, n) @ H = (H v_k)_k


def run(problem, micro: int, seed: int, grid=None, n_draws: int = 64):
    m = 20_000 // micro
    return estimate_noise(
        draws(problem, m, seed, micro),
        MatrixHVP(problem.hessian_matrix()),
        micro_batch_size=micro,
        batch_sizes=grid,
        n_draws=n_draws,
        seed=seed,
    )


def grid_steps_from(grid: np.ndarray, found: float, exact: float) -> int:
    """How many grid steps ``found`` lies from the grid point nearest (in log B) to ``exact``."""
    nearest = int(np.argmin(np.abs(np.log(grid / exact))))
    return abs(int(np.flatnonzero(grid == found)[0]) - nearest)


PROBLEMS = {
    "surge": lambda s: make_problem("surge"),
    "equal-snr": lambda s: make_problem("equal-snr"),
    "random": lambda s: make_problem("random", seed=1000 + s),
}


@pytest.fixture(scope="module")
def results():
    """20 seeds x (surge, equal-snr, random) x (per-example, micro-batches of 4): point estimates only."""
    out = {}
    for name, build in PROBLEMS.items():
        for micro in (1, 4):
            out[name, micro] = [(build(s), run(build(s), micro, s)) for s in SEEDS]
    return out


@pytest.mark.parametrize("micro", [1, 4])
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_recovers_b_noise_eps_max_b_simple_within_10_percent(results, name, micro):
    rows = results[name, micro]
    for key, truth in (
        ("b_noise", lambda p: p.model.b_noise),
        ("eps_max", lambda p: p.model.eps_max),
        ("b_simple", b_simple_truth),
    ):
        rel = np.median([abs(getattr(e, key) / truth(p) - 1) for p, e in rows])
        assert rel < 0.10, f"{name} micro={micro} {key}: median relative error {rel:.3f}"


@pytest.mark.parametrize("key", ["b_noise", "eps_max", "b_simple"])
def test_95_percent_intervals_cover_the_truth_in_90_percent_of_seeds(results, key):
    """Coverage over 20 seeds x 3 problems x (per-example, micro-batch) = 120 intervals per quantity.

    Pooled over the six cases so that the check has power (a 95 % interval covers 18 of 20 seeds only
    92 % of the time by chance); each case on its own must still cover at least 80 %.
    """
    truths = {"b_noise": lambda p: p.model.b_noise, "eps_max": lambda p: p.model.eps_max, "b_simple": b_simple_truth}
    all_hits = []
    for (name, micro), rows in results.items():
        hits = [getattr(e, key + "_ci")[0] <= truths[key](p) <= getattr(e, key + "_ci")[1] for p, e in rows]
        assert np.mean(hits) >= 0.80, f"{name} micro={micro} {key}: coverage {np.mean(hits):.2f}"
        all_hits += hits
    assert np.mean(all_hits) >= 0.90, f"{key}: coverage {np.mean(all_hits):.3f} over {len(all_hits)} intervals"


def test_delta_l_max_and_validity_batch_size_against_the_closed_forms(results):
    rows = results["surge", 1]
    rel = np.median([abs(e.delta_l_max / p.model.dl_max - 1) for p, e in rows])
    assert rel < 0.15
    # the validity batch size is a high quantile of r_i^2 over coordinates: between the model's min_i
    # pi / (2 r_i^2) and a few times it, and b_noise lies inside it, as in the model
    for p, e in rows:
        assert 0.5 * p.model.validity_batch_size < e.validity_batch_size < 3 * p.model.validity_batch_size
        assert e.within_validity is True


@pytest.mark.parametrize("micro", [1, 4])
@pytest.mark.parametrize("name", ["surge", "equal-snr", "random"])
def test_direct_curve_argmax_within_one_grid_step_of_exact_eq9(name, micro):
    grid = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256], dtype=float)
    grid = grid[grid >= micro]
    for seed in range(10):
        p = PROBLEMS[name](seed)
        e = run(p, micro, seed, grid=grid, n_draws=1000)
        exact = p.model.peak().batch_size
        assert grid_steps_from(grid, e.direct_peak_batch_size, exact) <= 1, (seed, e.direct_lr)
        # the model-based curve (exact Eq 9 with the measured statistics) peaks there too
        assert grid_steps_from(grid, e.model_peak_batch_size, exact) <= 1, (seed, e.model_lr)


def test_direct_curve_matches_exact_eq9_pointwise_and_its_intervals_cover():
    p = make_problem("surge")
    grid = np.array([2, 8, 32, 128, 512], dtype=float)
    e = run(p, 1, 3, grid=grid, n_draws=2000)
    exact = p.model.optimal_lr(grid)
    assert np.all(np.abs(e.direct_lr / exact - 1) < 0.10), e.direct_lr / exact
    assert np.mean((e.direct_lr_ci[:, 0] <= exact) & (exact <= e.direct_lr_ci[:, 1])) >= 0.8
    # the Theorem 3 curve lr_at agrees with Eq 40 of the true statistics below the validity batch size
    small = GRID[GRID <= 64]
    assert np.all(np.abs(e.lr_at(small) / p.model.theorem3_lr(small) - 1) < 0.12)
    assert isinstance(e.lr_at(16.0), float)


def test_no_surge_diagonal_problem_interval_reaches_infinity_and_curve_rises():
    p = make_problem("diagonal")
    reach = []
    for seed in range(10):
        e = run(p, 1, seed, grid=GRID[::2], n_draws=32)
        reach.append(e.b_noise_ci[1] == math.inf)
        assert abs(e.b_simple / b_simple_truth(p) - 1) < 0.15
        assert e.model_peak_batch_size == GRID[::2][-1]  # Eq 9 is increasing for a diagonal H
    assert np.mean(reach) >= 0.9


def test_adam_state_direct_curve_first_step_equals_sign():
    """Before the first step (m = v = 0) Adam's update is g / (|g| + eps): the sign curve (Eq 29)."""
    p = make_problem("surge")
    h = p.hessian_matrix()
    g = draws(p, 4000, 0)
    kw = dict(batch_sizes=[4, 16, 64], n_draws=16, seed=1)
    sign = estimate_noise(g, lambda v: h @ v, **kw)
    adam = estimate_noise(
        g, lambda v: h @ v, adam_state={"m": np.zeros(p.n), "v": np.zeros(p.n), "step": 0, "eps": 0.0}, **kw
    )
    np.testing.assert_allclose(adam.direct_lr, sign.direct_lr, rtol=1e-9)
    assert adam.direct_update == "adam" and sign.direct_update == "sign"


def test_torch_tensors_are_accepted_and_give_the_same_answer():
    torch = pytest.importorskip("torch")
    p = make_problem("surge")
    g = draws(p, 2000, 0)
    h = p.hessian_matrix()
    a = estimate_noise(g, lambda v: h @ v, seed=0)
    b = estimate_noise(torch.from_numpy(g), lambda v: torch.from_numpy(h @ np.asarray(v)), seed=0)
    assert a.b_noise == pytest.approx(b.b_noise, rel=1e-12)


def test_without_hvp_hessian_quantities_are_nan_with_a_message():
    p = make_problem("surge")
    e = estimate_noise(draws(p, 4000, 0), batch_sizes=[4, 16])
    assert math.isnan(e.b_noise) and math.isnan(e.eps_max) and np.isnan(e.direct_lr).all()
    assert np.isnan(e.lr_at([4.0, 16.0])).all()
    assert "no hvp" in e.message
    assert abs(e.b_simple / b_simple_truth(p) - 1) < 0.25


def test_too_few_examples_give_nan_with_a_message():
    e = estimate_noise(np.random.default_rng(0).normal(size=(5, 10)), lambda v: v)
    assert math.isnan(e.b_noise) and math.isnan(e.b_simple)
    assert "too few examples" in e.message and e.n_examples == 5


def test_pooling_two_halves_matches_one_measurement_of_all_the_data():
    p = make_problem("surge")
    h = p.hessian_matrix()
    g = draws(p, 20_000, 7)
    halves = [estimate_noise(g[i::2], lambda v: h @ v, seed=i) for i in range(2)]
    pooled = pool_estimates(halves)
    assert pooled.n_examples == 20_000
    assert pooled.b_noise == pytest.approx(p.model.b_noise, rel=0.12)
    width = lambda e: e.b_noise_ci[1] / e.b_noise_ci[0]  # noqa: E731
    assert width(pooled) < min(width(x) for x in halves)


@pytest.mark.parametrize(
    "grads,kwargs,match",
    [
        (np.zeros((10, 0)), {}, "no trainable parameters"),
        (np.zeros((1, 5)), {}, "one example"),
        (np.zeros(5), {}, "2-dimensional"),
        (np.array([[1.0, np.nan]] * 10), {}, "row 0 column 1 is nan"),
        (np.array([[1.0, np.inf]] * 10), {}, "must be finite"),
        (np.ones((10, 3)), {"micro_batch_size": 0}, "micro_batch_size must be positive"),
        (np.ones((10, 3)), {"confidence": 1.5}, r"confidence must be in \(0, 1\)"),
        (np.ones((10, 3)), {"batch_sizes": [4, 2]}, "strictly increasing"),
        (np.ones((10, 3)), {"batch_sizes": ["a", "b"]}, "batch_sizes must be an array of real numbers"),
        (np.ones((10, 3)), {"batch_sizes": [4, 0]}, "batch_sizes must be > 0; element 1 is 0.0"),
        (np.ones((10, 3)), {"n_probes": 1}, "n_probes must be >= 2"),
        (np.ones((10, 3)), {"adam_state": {"m": np.zeros(2), "v": np.zeros(2), "step": 0}}, r"shape \(3,\)"),
        (
            np.ones((10, 3)),
            {"adam_state": {"m": np.zeros(3), "v": -np.ones(3), "step": 0}},
            "adam_state v must be >= 0",
        ),
        (
            np.ones((10, 3)) * (1 + 1j),
            {},
            r"grads must be an \(m, n\) array of real numbers",
        ),  # was read without the imaginary part
    ],
)
def test_bad_input_one_clear_line(grads, kwargs, match):
    with pytest.raises(SurgeError, match=match) as info:
        estimate_noise(grads, **kwargs)
    assert "\n" not in str(info.value)


def test_hvp_of_the_wrong_shape_is_bad_input():
    g = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(SurgeError, match=r"hvp must return an array of shape \(4,\)"):
        estimate_noise(g, lambda v: np.ones(3))
    with pytest.raises(SurgeError, match=r"hvp must return an array of real numbers, got str"):
        estimate_noise(g, lambda v: "x")  # was numpy's ValueError


def test_the_estimator_core_imports_without_torch():
    import subprocess
    import sys

    code = "import sys, surge.monitor; assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr
