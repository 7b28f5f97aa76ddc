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
