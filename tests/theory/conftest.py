import numpy as np
import pytest

from surge.theory import SignGradientModel


def check_model_parameters(seed: int = 0, n: int = 64):
    """docs/equations.md's check parameterisation: SNR log-uniform in [0.02, 0.08], sigma log-uniform in
    [0.5, 2], random signs s, H = 0.2 I + s s^T (a surge: coupling aligned with the gradient signs)."""
    rng = np.random.default_rng(seed)
    snr = np.exp(rng.uniform(np.log(0.02), np.log(0.08), n))
    sigma = np.exp(rng.uniform(np.log(0.5), np.log(2.0), n))
    s = rng.choice([-1.0, 1.0], n)
    return s * snr * sigma, sigma, 0.2 * np.eye(n) + np.outer(s, s)


@pytest.fixture
def surge_model():
    return SignGradientModel(*check_model_parameters())


@pytest.fixture
def check_parameters():
    """The check parameterisation as a function of (seed, n)."""
    return check_model_parameters
