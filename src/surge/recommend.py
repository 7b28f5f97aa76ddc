"""The practical question: "I tuned lr at batch B0; what learning rate at B1?"

Treats (from_batch_size, from_lr) as a point on the optimal-lr curve of the chosen law, which fixes
eps_max, and reads the curve at to_batch_size. The linear and square-root rules are given beside it.
NumPy/SciPy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from surge._validation import check_choice, check_scalar
from surge.theory.laws import get_law


@dataclass(frozen=True)
class Recommendation:
    """A learning rate for a new batch size, with the rules of thumb and the regime."""

    from_batch_size: float
    from_lr: float
    to_batch_size: float
    b_noise: float
    law: str  # "adam" (Eq 2) or "sgd" (Eq 1 / Eq 24 with ``alpha``)
    alpha: float | None  # SGD exponent; None for the Adam law
    lr: float  # the chosen law's learning rate at to_batch_size
    linear_lr: float  # from_lr * to / from (linear scaling rule, Eq 3)
    sqrt_lr: float  # from_lr * sqrt(to / from) (square-root rule, Eq 4)
    eps_max: float  # the law's peak (Adam) or large-batch limit (SGD) implied by the starting point
    regime: str  # where to_batch_size lies: "below", "at" or "above" B_noise
    warning: str | None  # set when the Adam law says the learning rate must fall, None otherwise


def _regime(batch_size: float, b_noise: float) -> str:
    if math.isclose(batch_size, b_noise, rel_tol=1e-9):
        return "at"
    return "below" if batch_size < b_noise else "above"


def recommend_lr(
    from_batch_size: float,
    from_lr: float,
    to_batch_size: float,
    b_noise: float,
    law: str = "adam",
    alpha: float = 1.0,
) -> Recommendation:
    """The learning rate at ``to_batch_size`` given an optimal ``from_lr`` at ``from_batch_size``.

    Under the Adam law (Eq 2) the optimal lr rises like sqrt(B) below B_noise and falls past it;
    moving to a larger batch size past B_noise therefore calls for a smaller learning rate, and the
    recommendation carries a warning saying so. Under the SGD law (Eq 1 / 24) the optimal lr only rises.
    """
    b0 = check_scalar(from_batch_size, "from_batch_size", positive=True)
    lr0 = check_scalar(from_lr, "from_lr", positive=True)
    b1 = check_scalar(to_batch_size, "to_batch_size", positive=True)
    bn = check_scalar(b_noise, "b_noise", positive=True)
    law = check_choice(law, "law", ("adam", "sgd"))
    alpha = check_scalar(alpha, "alpha", positive=True)
    curve = get_law(law, alpha)
    unit0, unit1 = (float(curve.lr(x, 1.0, bn)) for x in (b0, b1))
    eps_max = lr0 / unit0
    lr = eps_max * unit1
    linear_lr = lr0 * b1 / b0
    sqrt_lr = lr0 * math.sqrt(b1 / b0)
    warning = None
    if law == "adam" and b1 > b0 and b1 > bn:
        crossing = b0 < bn
        where = f"crosses B_noise={bn:g}" if crossing else f"stays above B_noise={bn:g}"
        warning = (
            f"moving from batch size {b0:g} to {b1:g} {where}: the Adam law says the optimal learning rate "
            f"{'peaks at B_noise and then falls' if crossing else 'falls as the batch size grows'} "
            f"({lr:.4g} at {b1:g}, against {linear_lr:.4g} by the linear rule and {sqrt_lr:.4g} by the "
            "square-root rule)"
        )
    return Recommendation(
        from_batch_size=b0,
        from_lr=lr0,
        to_batch_size=b1,
        b_noise=bn,
        law=law,
        alpha=alpha if law == "sgd" else None,
        lr=lr,
        linear_lr=linear_lr,
        sqrt_lr=sqrt_lr,
        eps_max=eps_max,
        regime=_regime(b1, bn),
        warning=warning,
    )
