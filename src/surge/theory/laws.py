"""Closed-form scaling laws of the paper (Eq 1-4, 18, 20-22, 24).

Every function is array-friendly in ``batch_size`` and returns a NumPy array of the broadcast shape
(a 0-d array for scalar input; wrap it in ``float`` for a Python number).
"""

from __future__ import annotations

import numpy as np

from surge._validation import check_array, check_scalar
from surge.errors import SurgeError


def _batch(batch_size: object) -> np.ndarray:
    return check_array(batch_size, "batch_size", positive=True)


def adam_optimal_lr(batch_size, eps_max: float, b_noise: float) -> np.ndarray:
    """The surge law for sign-like updates (Eq 2, Theorem 3 / Eq 13).

    eps_opt(B) = eps_max / (0.5 * (sqrt(B_noise / B) + sqrt(B / B_noise)))
               = 2 * eps_max * sqrt(B * B_noise) / (B + B_noise).

    Symmetric in log B about ``b_noise``, where it equals ``eps_max``. Valid only where Theorem 3
    applies (B well below the validity batch size); past that the true curve tends to the non-zero
    Eq 17 plateau instead of decaying like 1/sqrt(B).
    """
    b = _batch(batch_size)
    eps_max = check_scalar(eps_max, "eps_max", positive=True)
    b_noise = check_scalar(b_noise, "b_noise", positive=True)
    return 2.0 * eps_max * np.sqrt(b * b_noise) / (b + b_noise)


def sgd_optimal_lr(batch_size, eps_max: float, b_noise: float, alpha: float = 1.0) -> np.ndarray:
    """McCandlish et al.'s SGD law (Eq 1), and with ``alpha`` the curve implied by Eq 24.

    eps_opt(B) = eps_max / (1 + B_noise / B) ** alpha. The exponent applies to (1 + B_noise / B).
    """
    b = _batch(batch_size)
    eps_max = check_scalar(eps_max, "eps_max", positive=True)
    b_noise = check_scalar(b_noise, "b_noise", positive=True)
    alpha = check_scalar(alpha, "alpha", positive=True)
    return eps_max / (1.0 + b_noise / b) ** alpha


def sgd_small_batch_lr(batch_size, eps_max: float, b_noise: float) -> np.ndarray:
    """Linear scaling, the B << B_noise limit of Eq 1 (Eq 3): eps_opt(B) ~ eps_max * B / B_noise."""
    b = _batch(batch_size)
    eps_max = check_scalar(eps_max, "eps_max", positive=True)
    b_noise = check_scalar(b_noise, "b_noise", positive=True)
    return eps_max * b / b_noise


def adam_small_batch_lr(batch_size, eps_max: float, b_noise: float) -> np.ndarray:
    """Square-root scaling, the B << B_noise limit of Eq 2 (Eq 4): eps_opt(B) ~ 2 eps_max sqrt(B / B_noise)."""
    b = _batch(batch_size)
    eps_max = check_scalar(eps_max, "eps_max", positive=True)
    b_noise = check_scalar(b_noise, "b_noise", positive=True)
    return 2.0 * eps_max * np.sqrt(b / b_noise)


def adam_large_batch_lr(batch_size, eps_max: float, b_noise: float) -> np.ndarray:
    """The B >> B_noise limit of Eq 2: eps_opt(B) ~ 2 eps_max sqrt(B_noise / B).

    This is the limit of the formula, not of the optimum itself: the exact curve levels off at the
    Eq 17 plateau (see ``SignGradientModel.large_batch_lr``).
    """
    b = _batch(batch_size)
    eps_max = check_scalar(eps_max, "eps_max", positive=True)
    b_noise = check_scalar(b_noise, "b_noise", positive=True)
    return 2.0 * eps_max * np.sqrt(b_noise / b)


def loss_improvement(batch_size, dl_max: float, b_noise: float) -> np.ndarray:
    """Best expected loss decrease per step (Eq 18, Theorem 5): dL_opt(B) = dL_max / (1 + B_noise / B)."""
    b = _batch(batch_size)
    dl_max = check_scalar(dl_max, "dl_max", positive=True)
    b_noise = check_scalar(b_noise, "b_noise", positive=True)
    return dl_max / (1.0 + b_noise / b)


def critical_batch_size(s_min: float, e_min: float) -> float:
    """B_crit = E_min / S_min (Eq 21), the batch size where (S/S_min - 1)(E/E_min - 1) = 1 balances."""
    s_min = check_scalar(s_min, "s_min", positive=True)
    e_min = check_scalar(e_min, "e_min", positive=True)
    return e_min / s_min


def steps_to_target(batch_size, s_min: float, e_min: float) -> np.ndarray:
    """Steps S(B) to reach a target at constant batch size (Eq 20 / Eq 46): S = S_min (1 + B_noise / B)."""
    b = _batch(batch_size)
    return check_scalar(s_min, "s_min", positive=True) * (1.0 + critical_batch_size(s_min, e_min) / b)


def examples_to_target(batch_size, s_min: float, e_min: float) -> np.ndarray:
    """Examples E(B) = B S(B) to reach a target (Eq 20 / Eq 46): E = E_min (1 + B / B_noise)."""
    b = _batch(batch_size)
    return check_scalar(e_min, "e_min", positive=True) * (1.0 + b / critical_batch_size(s_min, e_min))


def examples_for_steps(steps, s_min: float, e_min: float) -> np.ndarray:
    """The examples E on the Eq 20 frontier for a given number of steps S > S_min.

    From S_min / S + E_min / E = 1 (Eq 46): E = E_min / (1 - S_min / S).
    """
    s = check_array(steps, "steps", positive=True)
    s_min = check_scalar(s_min, "s_min", positive=True)
    e_min = check_scalar(e_min, "e_min", positive=True)
    if (s <= s_min).any():
        raise SurgeError(f"steps must be > s_min={s_min} (fewer steps cannot reach the target); got min {s.min()}")
    return e_min / (1.0 - s_min / s)


def steps_for_examples(examples, s_min: float, e_min: float) -> np.ndarray:
    """The steps S on the Eq 20 frontier for a given number of examples E > E_min: S = S_min / (1 - E_min / E)."""
    e = check_array(examples, "examples", positive=True)
    s_min = check_scalar(s_min, "s_min", positive=True)
    e_min = check_scalar(e_min, "e_min", positive=True)
    if (e <= e_min).any():
        raise SurgeError(f"examples must be > e_min={e_min} (fewer examples cannot reach the target); got min {e.min()}")
    return s_min / (1.0 - e_min / e)


def batch_size_for_steps(steps, s_min: float, e_min: float) -> np.ndarray:
    """The constant batch size that reaches the target in ``steps`` steps: B = E / S on the Eq 20 frontier.

    Inverse of ``steps_to_target``: B = B_noise / (S / S_min - 1).
    """
    e = examples_for_steps(steps, s_min, e_min)
    return e / check_array(steps, "steps", positive=True)
