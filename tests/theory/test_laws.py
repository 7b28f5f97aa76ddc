"""Closed-form laws (Eq 1-4, 18, 20-22, 24) against literal transcriptions and their limits."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surge.theory import (
    adam_large_batch_lr,
    adam_optimal_lr,
    adam_small_batch_lr,
    batch_size_for_steps,
    critical_batch_size,
    examples_for_steps,
    examples_to_target,
    loss_improvement,
    sgd_optimal_lr,
    sgd_small_batch_lr,
    steps_for_examples,
    steps_to_target,
)

positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)


def test_adam_law_matches_the_printed_form_of_eq2():
    b = np.array([1.0, 3.0, 10.0, 64.0, 500.0, 1e5])
    eps_max, b_noise = 2e-3, 64.0
    printed = eps_max / (0.5 * (np.sqrt(b_noise / b) + np.sqrt(b / b_noise)))
    np.testing.assert_allclose(adam_optimal_lr(b, eps_max, b_noise), printed, rtol=1e-14)


@settings(max_examples=200, deadline=None)
@given(eps_max=positive, b_noise=positive, log_ratio=st.floats(min_value=-12, max_value=12))
def test_adam_law_is_symmetric_in_log_b_about_b_noise_and_peaks_there(eps_max, b_noise, log_ratio):
    up = adam_optimal_lr(b_noise * math.exp(log_ratio), eps_max, b_noise)
    down = adam_optimal_lr(b_noise * math.exp(-log_ratio), eps_max, b_noise)
    assert float(up) == pytest.approx(float(down), rel=1e-10)
    assert float(adam_optimal_lr(b_noise, eps_max, b_noise)) == pytest.approx(eps_max, rel=1e-14)
    assert float(up) <= eps_max * (1 + 1e-12)


@settings(max_examples=100, deadline=None)
@given(eps_max=positive, b_noise=positive)
def test_small_and_large_batch_asymptotes_hold_in_their_limits(eps_max, b_noise):
    tiny, huge = b_noise * 1e-8, b_noise * 1e8
    # Eq 4: square-root scaling below B_noise; Eq 2's own large-B limit above it.
    assert float(
        adam_optimal_lr(tiny, eps_max, b_noise) / adam_small_batch_lr(tiny, eps_max, b_noise)
    ) == pytest.approx(1, rel=1e-6)
    assert float(
        adam_optimal_lr(huge, eps_max, b_noise) / adam_large_batch_lr(huge, eps_max, b_noise)
    ) == pytest.approx(1, rel=1e-6)
    # Eq 3: linear scaling below B_noise; eps_max above it.
    assert float(sgd_optimal_lr(tiny, eps_max, b_noise) / sgd_small_batch_lr(tiny, eps_max, b_noise)) == pytest.approx(
        1, rel=1e-6
    )
    assert float(sgd_optimal_lr(huge, eps_max, b_noise)) == pytest.approx(eps_max, rel=1e-6)


def test_asymptotes_are_off_away_from_their_limits():
    # At B = B_noise the Eq 4 asymptote overshoots Eq 2 by a factor 2, and Eq 3 overshoots Eq 1 by 2.
    assert float(adam_small_batch_lr(64, 1.0, 64) / adam_optimal_lr(64, 1.0, 64)) == pytest.approx(2.0)
    assert float(sgd_small_batch_lr(64, 1.0, 64) / sgd_optimal_lr(64, 1.0, 64)) == pytest.approx(2.0)


def test_sgd_law_exponent_applies_to_one_plus_ratio_eq24():
    b = np.array([2.0, 16.0, 128.0])
    got = sgd_optimal_lr(b, 1e-2, 32.0, alpha=0.5)
    np.testing.assert_allclose(got, 1e-2 / np.sqrt(1 + 32.0 / b), rtol=1e-14)
    # The literal misreading eps / (1 + (B_noise/B)**alpha) differs: guard against it.
    assert not np.allclose(got, 1e-2 / (1 + np.sqrt(32.0 / b)))


def test_sgd_law_is_monotone_increasing():
    b = np.geomspace(1, 1e6, 200)
    assert (np.diff(sgd_optimal_lr(b, 1.0, 100.0, alpha=0.7)) > 0).all()


def test_loss_improvement_eq18():
    b = np.array([1.0, 10.0, 1000.0])
    np.testing.assert_allclose(loss_improvement(b, 0.3, 10.0), 0.3 * b / (b + 10.0), rtol=1e-14)


log10 = st.floats(min_value=-3.0, max_value=6.0, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(log_s_min=log10, log_batch=log10, log_ratio=st.floats(min_value=-3.9, max_value=3.9, allow_nan=False))
def test_steps_and_examples_satisfy_eq20(log_s_min, log_batch, log_ratio):
    # E_min / S_min = B * 10**log_ratio: the critical batch size within 1e4 of B, away from cancellation
    # in S/S_min - 1 and E/E_min - 1 (drawn directly instead of filtering, which starves Hypothesis)
    s_min, batch = 10.0**log_s_min, 10.0**log_batch
    e_min = s_min * batch * 10.0**log_ratio
    s = float(steps_to_target(batch, s_min, e_min))
    e = float(examples_to_target(batch, s_min, e_min))
    assert e == pytest.approx(batch * s, rel=1e-12)  # E = B S
    assert (s / s_min - 1) * (e / e_min - 1) == pytest.approx(1.0, rel=1e-9)
    # and back: from S to E, E to S, and S to B
    assert float(examples_for_steps(s, s_min, e_min)) == pytest.approx(e, rel=1e-8)
    assert float(steps_for_examples(e, s_min, e_min)) == pytest.approx(s, rel=1e-8)
    assert float(batch_size_for_steps(s, s_min, e_min)) == pytest.approx(batch, rel=1e-7)


def test_critical_batch_size_eq21():
    assert critical_batch_size(100.0, 25600.0) == 256.0


def test_scalar_in_gives_zero_d_array_and_shape_is_kept():
    assert adam_optimal_lr(4, 1.0, 4).shape == ()
    assert adam_optimal_lr(np.ones((2, 3)), 1.0, 4).shape == (2, 3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: adam_optimal_lr(0, 1.0, 4.0), r"batch_size must be > 0; element 0 is 0.0"),
        (lambda: adam_optimal_lr([1, -2], 1.0, 4.0), r"batch_size must be > 0; element 1 is -2.0"),
        (lambda: adam_optimal_lr([1, np.nan], 1.0, 4.0), r"batch_size must be finite; element 1 is nan"),
        (lambda: adam_optimal_lr(1, -1.0, 4.0), r"eps_max must be > 0, got -1.0"),
        (lambda: adam_optimal_lr(1, 1.0, 0), r"b_noise must be > 0, got 0.0"),
        (lambda: adam_optimal_lr(1, 1.0, math.inf), r"b_noise must be finite, got inf"),
        (lambda: adam_optimal_lr(1, "x", 1.0), r"eps_max must be a real number, got 'x' of type str"),
        (lambda: adam_optimal_lr(["a"], 1.0, 1.0), r"batch_size must be an array of real numbers"),
        (lambda: sgd_optimal_lr(1, 1.0, 4.0, alpha=0), r"alpha must be > 0, got 0.0"),
        (lambda: sgd_optimal_lr(1, 1.0, math.nan), r"b_noise must be a number, got nan"),
        (lambda: loss_improvement(1, -0.1, 4.0), r"dl_max must be > 0, got -0.1"),
        (lambda: steps_to_target(1, 0, 4.0), r"s_min must be > 0, got 0.0"),
        (lambda: examples_for_steps(5.0, 10.0, 100.0), r"steps must be > s_min=10.0"),
        (lambda: steps_for_examples(50.0, 10.0, 100.0), r"examples must be > e_min=100.0"),
        (lambda: critical_batch_size(True, 1.0), r"s_min must be a real number, got True of type bool"),
    ],
)
def test_errors_name_the_argument_and_the_value(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_the_laws_hold_at_extreme_ratios_without_overflow():
    """g(B) is evaluated in logs: at B / B_noise = 1e600 the Adam law is its asymptote 2 eps_max sqrt(B_noise/B)
    (was 0: the direct sqrt(B/B_noise) overflowed), and SGD's is eps_max (B/B_noise)^alpha at B << B_noise."""
    assert float(adam_optimal_lr(1e300, 1e308, 1e-300)) == pytest.approx(2e8, rel=1e-12)
    assert float(adam_optimal_lr(1e-300, 1.0, 1e300)) == pytest.approx(2e-300, rel=1e-12)
    assert float(sgd_optimal_lr(1e-300, 1.0, 1e300, alpha=0.5)) == pytest.approx(1e-300, rel=1e-12)
