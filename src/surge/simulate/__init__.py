"""The simulator: the paper's theory run on synthetic problems whose truth is known. NumPy only.

- :mod:`surge.simulate.montecarlo`: one optimizer step by Monte Carlo (the paper's Figure 1) against the
  exact Eq 9.
- :mod:`surge.simulate.training`: many-step training on a noisy quadratic with the paper's protocol; it
  emits the same tidy trial frame as a sweep and is analysed by :func:`surge.analysis.analyze`.

The closed forms it is checked against live in :mod:`surge.theory`.
"""

from surge.simulate.montecarlo import (
    AdamMoments,
    Figure1Result,
    OneStepResult,
    figure1_data,
    mc_peak_batch_size,
    one_step_monte_carlo,
)
from surge.simulate.quadratic import QuadraticProblem, default_training_problem
from surge.simulate.training import StageTheory, TrainingResult, simulate_training

__all__ = [
    "AdamMoments",
    "Figure1Result",
    "OneStepResult",
    "QuadraticProblem",
    "StageTheory",
    "TrainingResult",
    "default_training_problem",
    "figure1_data",
    "mc_peak_batch_size",
    "one_step_monte_carlo",
    "simulate_training",
]
