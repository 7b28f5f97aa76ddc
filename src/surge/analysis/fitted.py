"""The fitted optimum: a smooth fit of the mean loss decrease against the learning rate, over all
learning rates of one batch size, with a bootstrap over rounds.

The grid argmax (the paper's reading) moves in whole grid steps and its bootstrap interval spans as many
grid steps as the noise lets the argmax jump; a fit uses every learning rate and gives an optimum between
grid points, with an interval that shrinks like 1 / sqrt(rounds).

Models (``model``):

``"second-order"``
    Lemma 1 / Eq 31: the expected decrease of one step at theta is ``a eps - c eps^2 / 2`` to second order
    in the learning rate eps (exactly so for sign descent on a quadratic), so the mean decrease is fitted
    by least squares through the origin, ``d(eps) = a eps - (c / 2) eps^2``, on the learning rates up to
    ``reach`` times the grid argmax, and the optimum is ``a / c`` (Eq 9's form). Right for N = 1.
``"log-quadratic"``
    A quadratic in log lr, least squares through the grid argmax and ``halfwidth`` candidates on each
    side; the optimum is its vertex. For N > 1 steps, where the decrease is no longer a polynomial in eps.
``"auto"``
    ``"second-order"`` when N = 1, else ``"log-quadratic"``.

The interval is the percentile interval of the fitted optimum over ``n_boot`` resamples of the rounds
(rounds are the independent units: within a round, learning rates share data). The *flat optimum* note
says when the best grid learning rate and the runner-up differ by less than one standard error of their
paired difference over rounds: the data do not tell them apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from surge._validation import check_choice
from surge.errors import SurgeError

FIT_MODELS = ("auto", "second-order", "log-quadratic")

Interval = tuple[float, float]


@dataclass(frozen=True)
class FittedOptimum:
    """The fitted optimal learning rate of one batch size at one stage.

    Attributes:
        lr: the fitted optimal learning rate; NaN when there is none (the fitted curve has no maximum at a
            positive lr, too few learning rates, or for ``"log-quadratic"`` the grid argmax at an end of the
            candidates). A maximum outside the learning rates used is kept, with a note in ``message``.
        lr_ci: the bootstrap percentile interval over rounds of ``lr`` (an upper end of inf: some resamples
            have no maximum); NaNs with fewer than 2 rounds or ``n_boot=0``.
        width: ``lr_ci[1] / lr_ci[0]``, the interval's width as a factor (inf when open; NaN when there is
            none).
        model: ``"second-order"`` or ``"log-quadratic"`` (what ``"auto"`` chose).
        n_lrs: the learning rates the fit used.
        boot_failed: the share of bootstrap resamples without a maximum inside the span, in [0, 1]; NaN
            without a bootstrap.
        flat: the best grid lr and the runner-up differ by less than one standard error of their paired
            difference over rounds.
        message: ``""``, or why there is no number / what to keep in mind.
    """

    lr: float  # the fitted optimum; NaN when the fit gives none (it may lie outside the grid's span)
    lr_ci: Interval  # bootstrap percentile interval over rounds; NaNs with fewer than 2 rounds
    width: float  # lr_ci[1] / lr_ci[0]: the interval's width as a factor (NaN when there is none)
    model: str  # "second-order" or "log-quadratic" (what "auto" chose)
    n_lrs: int  # learning rates the fit used
    boot_failed: float  # share of bootstrap resamples without a maximum inside the span
    flat: bool  # the best grid lr and the runner-up differ by less than one standard error
    message: str  # "" or why there is no number / what to keep in mind


def _second_order(eps: np.ndarray, y: np.ndarray) -> np.ndarray:
    """a / c of the least-squares fit y = a eps - (c/2) eps^2 through the origin; y (k,) or (k, m).
    NaN where c <= 0 or a <= 0 (no maximum at a positive lr)."""
    X = np.stack([eps, -0.5 * eps**2], axis=1)
    coef, *_ = np.linalg.lstsq(X, y.reshape(len(eps), -1), rcond=None)
    a, c = coef[0], coef[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where((c > 0) & (a > 0), a / c, np.nan)
    return out


def _log_quadratic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The vertex (in x = log lr) of the least-squares quadratic; NaN where not concave."""
    coef = np.polynomial.polynomial.polyfit(x, y.reshape(len(x), -1), 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(coef[2] < 0, -coef[1] / (2 * coef[2]), np.nan)


def fit_optimum(
    lrs,
    decreases,
    *,
    extra_steps: int = 1,
    model: str = "auto",
    candidate=None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    halfwidth: int = 2,
    reach: float = 2.0,
    rng: np.random.Generator | int | None = 0,
) -> FittedOptimum:
    """Fit the mean loss decrease against the learning rate and return its maximum with an interval.

    Args:
        lrs: array (L,) of ascending learning rates, > 0, strictly increasing.
        decreases: array (R, L): the loss decrease (nats) of round r at learning rate l (NaN: no usable
            trial); a 1-D array (L,) is one round.
        extra_steps: N, the steps over which the decrease was measured (``model="auto"`` uses it:
            ``"second-order"`` when N = 1); default 1.
        model: one of :data:`FIT_MODELS` (see the module docstring); default ``"auto"``.
        candidate: array (L,) of bool, the learning rates that may be the optimum (None: every lr with data).
        n_boot: bootstrap resamples of the rounds (0: no interval); default 1000.
        confidence: coverage of the interval, in (0, 1); default 0.95.
        halfwidth: grid points each side of the argmax used by ``"log-quadratic"``; default 2.
        reach: ``"second-order"`` uses the learning rates up to ``reach`` x the grid argmax; default 2.
        rng: a numpy Generator or a seed for the bootstrap (None: fresh entropy); default 0.

    Returns:
        FittedOptimum: ``lr`` is NaN (with a message) when the fit gives no optimum: no maximum at a
        positive learning rate, too few learning rates, or (``"log-quadratic"``) the grid argmax at the
        smallest or largest candidate. A maximum outside the learning rates used is returned with a message
        saying so (extend the grid).

    Raises:
        SurgeError: arrays of the wrong shape (``lrs`` not 1-D, or ``decreases`` without L columns);
            ``lrs`` not positive and strictly increasing; a ``model`` not in :data:`FIT_MODELS`.
        SurgeTypeError: a ``model`` that is not a string.
    """
    model = check_choice(model, "model", FIT_MODELS)
    lrs = np.asarray(lrs, dtype=float)
    V = np.atleast_2d(np.asarray(decreases, dtype=float))
    if lrs.ndim != 1 or V.shape[1] != lrs.size:
        raise SurgeError(f"decreases must have shape (rounds, {lrs.size}) for {lrs.size} learning rates, got {V.shape}")
    if lrs.size and not (np.all(lrs > 0) and np.all(np.diff(lrs) > 0)):
        raise SurgeError("lrs must be positive and strictly increasing")
    if model == "auto":
        model = "second-order" if int(extra_steps) == 1 else "log-quadratic"
    cand = (
        np.isfinite(V).any(axis=0)
        if candidate is None
        else np.asarray(candidate, dtype=bool) & np.isfinite(V).any(axis=0)
    )
    nan = math.nan

    def none(msg: str, n_lrs: int = 0, flat: bool = False) -> FittedOptimum:
        return FittedOptimum(nan, (nan, nan), nan, model, n_lrs, nan, flat, msg)

    fin = np.isfinite(V)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cand, np.nansum(V, axis=0) / fin.sum(axis=0), np.nan)
    if not np.isfinite(mean).any():
        return none("no learning rate with a usable decrease")
    k = int(np.nanargmax(mean))
    flat = _flat(V, mean, k)
    idx = np.flatnonzero(cand)
    if model == "second-order":
        use = idx[lrs[idx] <= reach * lrs[k] * (1 + 1e-12)]
        if use.size < 2:
            return none("fewer than 2 learning rates up to the best one: no second-order fit", int(use.size), flat)
        x = lrs[use]
        fitter = _second_order
        span = (lrs[use].min(), lrs[use].max())
    else:
        pos = int(np.searchsorted(idx, k))
        lo, hi = max(0, pos - halfwidth), min(idx.size, pos + halfwidth + 1)
        use = idx[lo:hi]
        if pos == 0 or pos == idx.size - 1:
            side = "smallest" if pos == 0 else "largest"
            return none(
                f"the best learning rate is the {side} candidate: the grid does not bracket the optimum",
                int(use.size),
                flat,
            )
        if use.size < 3:
            return none("fewer than 3 learning rates around the best one: no log-quadratic fit", int(use.size), flat)
        x = np.log(lrs[use])
        fitter = _log_quadratic
        span = (lrs[use].min(), lrs[use].max())
    y = mean[use]
    point = fitter(x, y)[0]
    if model == "log-quadratic":
        point = math.exp(point) if math.isfinite(point) else nan
    msg = ""
    if not math.isfinite(point):
        return none("the fitted curve has no maximum at a positive learning rate", int(use.size), flat)
    if not span[0] <= point <= span[1]:
        msg = (
            f"the fitted optimum {point:.3g} lies outside the learning rates used ({span[0]:.3g}..{span[1]:.3g}): "
            "extend the grid"
        )
    ci, width, failed = (nan, nan), nan, nan
    R = V.shape[0]
    if R >= 2 and n_boot > 0:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        W = gen.multinomial(R, np.full(R, 1.0 / R), size=int(n_boot)).astype(float)
        Vu = V[:, use]
        fu = np.isfinite(Vu)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = (W @ np.where(fu, Vu, 0.0)) / (W @ fu.astype(float))  # (n_boot, k)
        ok = np.isfinite(boot).all(axis=1)
        vals = np.full(int(n_boot), np.nan)
        if ok.any():
            vals[ok] = fitter(x, boot[ok].T)
        if model == "log-quadratic":
            with np.errstate(over="ignore"):
                vals = np.exp(vals)  # a vertex far outside the grid overflows to inf: an unbounded optimum
        # a resample whose curve has no maximum, or one far outside the span, counts as an unbounded optimum
        good = np.isfinite(vals)
        failed = float(1 - good.mean())
        if good.any():
            vals = np.where(good, vals, np.inf)  # no maximum: the optimum is unbounded (counted at the top)
            q = (1 - confidence) / 2
            lo_q, hi_q = np.quantile(vals, [q, 1 - q], method="inverted_cdf")
            ci = (float(lo_q), float(hi_q))
            width = ci[1] / ci[0] if ci[0] > 0 and math.isfinite(ci[1]) else math.inf
        if failed > (1 - confidence) / 2:
            msg = (msg + "; " if msg else "") + (
                f"{failed:.0%} of the bootstrap resamples have no maximum: "
                "the interval is open; more rounds or a wider grid"
            )
    elif R < 2:
        msg = (msg + "; " if msg else "") + "a single round: no bootstrap interval"
    if flat:
        msg = (msg + "; " if msg else "") + (
            "flat optimum: the best grid learning rate and the runner-up differ by less than one standard error"
        )
    return FittedOptimum(float(point), ci, float(width), model, int(use.size), failed, flat, msg)


def _flat(V: np.ndarray, mean: np.ndarray, k: int) -> bool:
    """Best grid lr vs the runner-up: is their mean difference below one standard error (paired over rounds)?"""
    order = np.argsort(np.where(np.isfinite(mean), -mean, np.inf))
    if np.isfinite(mean).sum() < 2:
        return False
    j = int(order[1])
    d = V[:, k] - V[:, j]
    d = d[np.isfinite(d)]
    if d.size < 2:
        return False
    se = float(np.std(d, ddof=1) / math.sqrt(d.size))
    return bool(mean[k] - mean[j] < se)
