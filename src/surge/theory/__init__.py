"""The paper's theory: closed-form laws and the exact sign-gradient model. NumPy/SciPy only."""

from surge.theory.laws import (
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
from surge.theory.sign_model import Peak, SignGradientModel

__all__ = [
    "Peak",
    "SignGradientModel",
    "adam_large_batch_lr",
    "adam_optimal_lr",
    "adam_small_batch_lr",
    "batch_size_for_steps",
    "critical_batch_size",
    "examples_for_steps",
    "examples_to_target",
    "loss_improvement",
    "sgd_optimal_lr",
    "sgd_small_batch_lr",
    "steps_for_examples",
    "steps_to_target",
]

# ---- the synthetic problems whose truth is known (mu, sigma, H); the simulator is surge.simulate ----
from surge.theory.problems import (  # noqa: E402
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

__all__ += [
    "PROBLEM_NAMES",
    "Problem",
    "custom_problem",
    "diagonal_problem",
    "equal_snr_peak_batch_size",
    "equal_snr_problem",
    "load_problem",
    "make_problem",
    "random_problem",
    "sign_blind_problem",
    "surge_problem",
]
