"""The practical question: "I tuned lr at batch B0; what learning rate at B1?"

Treats (from_batch_size, from_lr) as a point on the optimal-lr curve of the chosen law, which fixes
eps_max, and reads the curve at to_batch_size. The linear and square-root rules are given beside it.
NumPy/SciPy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from surge._validation import check_choice, check_scalar
from surge.errors import EstimationError, SurgeError
from surge.theory.laws import get_law


@dataclass(frozen=True)
class Recommendation:
    """A learning rate for a new batch size, with the rules of thumb and the regime.

    Attributes:
        from_batch_size: the batch size the learning rate was tuned at, in the unit of ``b_noise``.
        from_lr: the tuned (optimal) learning rate at ``from_batch_size``.
        to_batch_size: the new batch size, in the same unit.
        b_noise: B_noise of the workload; NaN when none was given.
        law: ``"adam"`` (Eq 2) or ``"sgd"`` (Eq 1 / Eq 24 with ``alpha``).
        alpha: SGD exponent; None for the Adam law.
        lr: the chosen law's learning rate at ``to_batch_size``; NaN without a B_noise.
        linear_lr: from_lr * to / from (linear scaling rule, Eq 3).
        sqrt_lr: from_lr * sqrt(to / from) (square-root rule, Eq 4).
        eps_max: the law's peak (Adam) or large-batch limit (SGD) implied by the starting point; NaN without
            B_noise.
        regime: where ``to_batch_size`` lies: ``"below"``, ``"at"`` or ``"above"`` B_noise; ``"unknown"``
            without a B_noise.
        warning: set when the law moves the lr against the batch size or across its peak, or without
            B_noise; None otherwise.
        from_beta2: Adam's beta2 at ``from_batch_size``, when given; else None.
        beta2: from_beta2 ** (to / from), the same half-life of the second moment in examples; None when
            ``from_beta2`` is None.
    """

    from_batch_size: float
    from_lr: float
    to_batch_size: float
    b_noise: float  # NaN when none was given
    law: str  # "adam" (Eq 2) or "sgd" (Eq 1 / Eq 24 with ``alpha``)
    alpha: float | None  # SGD exponent; None for the Adam law
    lr: float  # the chosen law's learning rate at to_batch_size; NaN without a B_noise
    linear_lr: float  # from_lr * to / from (linear scaling rule, Eq 3)
    sqrt_lr: float  # from_lr * sqrt(to / from) (square-root rule, Eq 4)
    eps_max: (
        float  # the law's peak (Adam) or large-batch limit (SGD) implied by the starting point; NaN without B_noise
    )
    regime: str  # where to_batch_size lies: "below", "at" or "above" B_noise; "unknown" without a B_noise
    warning: str | None  # set when the law moves the lr against the batch size or across its peak, or without B_noise
    from_beta2: float | None = None  # Adam's beta2 at from_batch_size, when given
    beta2: float | None = None  # from_beta2 ** (to / from): the same half-life of the second moment in examples


def _regime(batch_size: float, b_noise: float) -> str:
    if math.isclose(batch_size, b_noise, rel_tol=1e-9):
        return "at"
    return "below" if batch_size < b_noise else "above"


def beta2_for_batch_size(beta2: float, from_batch_size: float, to_batch_size: float) -> float:
    """Adam's beta2 at a new batch size that keeps the half-life of the second moment fixed in examples.

    The second-moment average forgets with weight beta2 per step, a half-life of ln(1/2) / ln(beta2)
    steps or B ln(1/2) / ln(beta2) examples; keeping that fixed from B to B' gives
    beta2' = beta2 ** (B' / B).

    Args:
        beta2: Adam's beta2 at ``from_batch_size``, in (0, 1).
        from_batch_size: the batch size ``beta2`` was used at, > 0 (in the data's batch unit).
        to_batch_size: the new batch size, > 0, in the unit of ``from_batch_size``.

    Returns:
        float in (0, 1) (it may round to 0 or 1 for extreme ratios): beta2 ** (to_batch_size /
            from_batch_size).

    Raises:
        SurgeError: ``beta2`` outside (0, 1), or a batch size that is not a finite number > 0;
            SurgeTypeError (a SurgeError) for a non-number.
    """
    beta2 = check_scalar(beta2, "beta2", positive=True)
    if not beta2 < 1:
        raise SurgeError(f"beta2 must be in (0, 1), got {beta2:g}")
    b0 = check_scalar(from_batch_size, "from_batch_size", positive=True)
    b1 = check_scalar(to_batch_size, "to_batch_size", positive=True)
    return float(math.exp(math.log(beta2) * (b1 / b0)))


def _check_finite(**values: float) -> None:
    for name, value in values.items():
        if math.isinf(value):
            raise EstimationError(f"{name} overflows a 64-bit float (> 1.8e308): the inputs are too large")


def recommend_lr(
    from_batch_size: float,
    from_lr: float,
    to_batch_size: float,
    b_noise: float | None = None,
    law: str = "adam",
    alpha: float = 1.0,
    *,
    beta2: float | None = None,
) -> Recommendation:
    """The learning rate at ``to_batch_size`` given an optimal ``from_lr`` at ``from_batch_size``.

    Under the Adam law (Eq 2) the optimal lr rises like sqrt(B) below B_noise and falls past it. Any move
    whose lr goes against the batch size or across the peak (up past B_noise, down from above it, in
    either direction across it) carries a warning: there the linear and square-root rules point the
    wrong way. Under the SGD law (Eq 1 / 24) the optimal lr only rises with the batch size.

    Args:
        from_batch_size: the batch size ``from_lr`` was tuned at, > 0, in the unit B_noise is in
            (in the data's batch unit).
        from_lr: the tuned (optimal) learning rate at ``from_batch_size``, > 0.
        to_batch_size: the new batch size, > 0, in the same unit.
        b_noise: B_noise of the workload, > 0, in the same unit; or None (default): then only the linear
            (Eq 3) and square-root (Eq 4) rules are given, ``lr`` is NaN and ``warning`` says where to get
            B_noise.
        law: ``"adam"`` (Eq 2, default) or ``"sgd"`` (Eq 1 / 24 with exponent ``alpha``).
        alpha: the SGD law's exponent, > 0 (default 1); checked but unused for the Adam law.
        beta2: Adam's beta2 at ``from_batch_size``, in (0, 1), optional: the result then carries
            ``beta2 ** (to / from)`` (:func:`beta2_for_batch_size`).

    Returns:
        Recommendation: the law's learning rate at ``to_batch_size``, the linear and square-root rules,
            the implied eps_max, the regime and any warning.

    Raises:
        SurgeError: a non-positive or non-finite number, an unknown law, beta2 outside (0, 1);
            SurgeTypeError (a SurgeError) for a non-number or a non-string ``law``.
        EstimationError: an answer (lr, eps_max, or a rule's lr) that overflows a 64-bit float.
    """
    b0 = check_scalar(from_batch_size, "from_batch_size", positive=True)
    lr0 = check_scalar(from_lr, "from_lr", positive=True)
    b1 = check_scalar(to_batch_size, "to_batch_size", positive=True)
    bn = check_scalar(b_noise, "b_noise", positive=True) if b_noise is not None else math.nan
    law = check_choice(law, "law", ("adam", "sgd"))
    alpha = check_scalar(alpha, "alpha", positive=True)
    to_beta2 = beta2_for_batch_size(beta2, b0, b1) if beta2 is not None else None
    linear_lr = lr0 * (b1 / b0)
    sqrt_lr = lr0 * math.sqrt(b1 / b0)
    _check_finite(linear_lr=linear_lr, sqrt_lr=sqrt_lr)
    common = dict(
        from_batch_size=b0,
        from_lr=lr0,
        to_batch_size=b1,
        b_noise=bn,
        law=law,
        alpha=alpha if law == "sgd" else None,
        linear_lr=linear_lr,
        sqrt_lr=sqrt_lr,
        from_beta2=float(beta2) if beta2 is not None else None,
        beta2=to_beta2,
    )
    if b_noise is None:
        warning = (
            "no B_noise given, so the law's learning rate cannot be read: the linear rule holds only well below "
            "B_noise and the square-root rule only below it for Adam, and past B_noise Adam's optimal learning rate "
            "falls. Get B_noise from a sweep ('surge sweep run' then 'surge analyze', or 'surge analyze --table' on a "
            "learning-rate x batch-size table you have, or 'surge fit b-noise' on steps to a target loss), or measure "
            "it during one training run ('surge measure', then 'surge recommend --measured DIR/measure.json')"
        )
        return Recommendation(lr=math.nan, eps_max=math.nan, regime="unknown", warning=warning, **common)
    curve = get_law(law, alpha)
    log_g0, log_g1 = (float(curve.log_g(np.float64(x), bn)) for x in (b0, b1))
    with np.errstate(over="ignore"):  # in logs, so that only a result that overflows does
        eps_max = float(np.exp(math.log(lr0) + log_g0))
        lr = float(np.exp(math.log(lr0) + log_g0 - log_g1))
    _check_finite(lr=lr, eps_max=eps_max, linear_lr=linear_lr, sqrt_lr=sqrt_lr)
    warning = None
    if law == "adam" and not math.isclose(b0, b1, rel_tol=1e-12):
        against = f"({lr:.4g} at {b1:g}, against {linear_lr:.4g} by the linear rule and {sqrt_lr:.4g} by the square-root rule)"
        move = f"moving from batch size {b0:g} to {b1:g}"
        lo, hi = min(b0, b1), max(b0, b1)
        if lo < bn < hi:
            trend = (
                "rises to its peak at B_noise and then falls"
                if b1 > b0
                else "rises to its peak at B_noise and then falls again below it"
            )
            warning = f"{move} crosses B_noise={bn:g}: the Adam law says the optimal learning rate {trend} {against}"
        elif lo >= bn:
            trend = "falls as the batch size grows" if b1 > b0 else "rises as the batch size shrinks"
            warning = (
                f"{move} stays above B_noise={bn:g}: the Adam law says the optimal learning rate {trend} {against}"
            )
    return Recommendation(lr=lr, eps_max=eps_max, regime=_regime(b1, bn), warning=warning, **common)
