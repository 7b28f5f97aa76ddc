"""Estimators of the paper's Section 3.2: B_noise from steps and examples (Eq 22), eps_max (Eq 23 / 24),
both together, and a comparison of the Adam and SGD laws. NumPy/SciPy only.

Every estimator returns a frozen dataclass with the estimate, a confidence interval, the number of
points used, residual statistics and ``success`` / ``message``. Input that cannot give an answer
(too few points, non-positive or non-finite values, a single batch size) raises ``SurgeError`` (a ``ValueError``);
a fit that runs but gives no meaningful answer (a negative B_noise, a peak outside the data) returns
``success=False`` with the reason, and its estimates are NaN rather than a silent wrong number.
Batch sizes, B_noise and E_min count the data's batch unit: examples, or tokens / sequences for
language models.

Why one module of ~810 lines: the Eq 22-24 estimators and the law comparison share the input checks and
interval helpers at its top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from surge._validation import check_array, check_choice, check_confidence, check_same_length, check_scalar
from surge.errors import EstimationError, SurgeError
from surge.theory.laws import ADAM_LAW, Law, SGDLaw, get_law

Interval = tuple[float, float]
_NAN_CI: Interval = (math.nan, math.nan)


# ---- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BNoiseFit:
    """B_noise, S_min and E_min from the steps S(B) needed to reach one target loss (Eq 20-22).

    Attributes:
        b_noise: E_min / S_min (Eq 21/22), the batch size that balances steps and examples, in the unit of
            the batch sizes given; inf when the steps show no loss of data efficiency, NaN on failure.
        b_noise_ci: confidence interval (low, high) of ``b_noise`` at ``confidence``; (NaN, NaN) without one.
        s_min: fewest steps, reached as B -> inf (Eq 20), in steps.
        s_min_ci: confidence interval (low, high) of ``s_min``, in steps.
        e_min: fewest examples, reached as B -> 0 (Eq 20), in the unit of the batch sizes; with
            ``b_noise = inf``, the fewest examples observed, an upper bound on E_min (E(B) >= E_min).
        e_min_ci: confidence interval (low, high) of ``e_min``.
        method: ``"linear"`` (Eq 22, least squares of 1/S on 1/E), ``"nonlinear"``
            (log S = log S_min + log(1 + B_noise/B)) or ``"exact"`` (2 points).
        confidence: nominal coverage of the intervals, in (0, 1).
        n_points: (B, S) points used.
        rms_residual: root mean square residual of the fit, in its own space (1/S, or log S).
        r_squared: coefficient of determination of the fit, in its own space; NaN when undefined.
        success: False when the points cannot give B_noise (the estimates are then NaN).
        message: ``"ok"`` or why the fit failed or what limits it.
        b_noise_lower_bound: one-sided lower confidence bound on B_noise when the steps show no loss of data
            efficiency (``b_noise`` is then inf); NaN otherwise.
    """

    b_noise: float  # E_min / S_min (Eq 21/22), the batch size that balances steps and examples
    b_noise_ci: Interval  # confidence interval (low, high) at ``confidence``
    s_min: float  # fewest steps, reached as B -> inf
    s_min_ci: Interval
    e_min: float  # fewest examples, reached as B -> 0
    e_min_ci: Interval
    method: str  # "linear" (Eq 22, least squares of 1/S on 1/E), "nonlinear" (log S = log S_min (1 + B_noise/B)), "exact" (2 points)
    confidence: float  # nominal coverage of the intervals
    n_points: int  # (B, S) points used
    rms_residual: float  # root mean square residual of the fit, in its own space (1/S, or log S)
    r_squared: float  # coefficient of determination of the fit, in its own space
    success: bool
    message: str
    # one-sided lower confidence bound on B_noise when the steps show no loss of data efficiency
    # (b_noise is then inf); NaN otherwise
    b_noise_lower_bound: float = math.nan


@dataclass(frozen=True)
class EpsMaxFit:
    """eps_max of the Adam law (Eq 23) or of the SGD law (Eq 24) at a given B_noise.

    Attributes:
        eps_max: the estimate: the Adam law's peak learning rate, or the SGD law's large-batch limit.
        eps_max_ci: confidence interval (low, high) of ``eps_max`` at ``confidence``.
        law: the law's family, ``"adam"`` or ``"sgd"``.
        alpha: SGD exponent of (1 + B_noise / B); None for the Adam law.
        b_noise: the B_noise the fit was given, in the unit of the batch sizes.
        method: ``"mean"`` (the paper's Eq 23/24: mean of per-point inversions) or ``"lsq"`` (least squares
            of log lr).
        confidence: nominal coverage of the interval, in (0, 1).
        n_points: (B, lr) points used.
        rms_log_residual: RMS of log(lr) - log(law(B)) at the estimate (natural log, dimensionless).
        success: True (input that gives no estimate raises instead).
        message: ``"ok"``.
    """

    eps_max: float
    eps_max_ci: Interval
    law: str  # the law's family, "adam" or "sgd"
    alpha: float | None  # SGD exponent of (1 + B_noise / B); None for the Adam law
    b_noise: float  # the B_noise the fit was given
    method: str  # "mean" (the paper's Eq 23/24: mean of per-point inversions) or "lsq" (least squares of log lr)
    confidence: float
    n_points: int
    rms_log_residual: float  # RMS of log(lr) - log(law(B)) at the estimate
    success: bool
    message: str

    @property
    def name(self) -> str:
        """The law's name: "adam" or "sgd(alpha=<alpha>)"."""
        return get_law(self.law, self.alpha).name


@dataclass(frozen=True)
class SurgeFit:
    """eps_max and B_noise of the Adam law (Eq 2) fitted together, by least squares in log lr.

    Attributes:
        eps_max: the fitted peak learning rate (the Adam law's value at B = B_noise).
        eps_max_ci: confidence interval (low, high) of ``eps_max``, from the Jacobian in log eps_max.
        b_noise: the fitted B_noise, in the unit of the batch sizes.
        b_noise_ci: confidence interval (low, high) of ``b_noise``, from the Jacobian in log B_noise.
        confidence: nominal coverage of the intervals, in (0, 1).
        n_points: (B, lr) points used.
        rms_log_residual: RMS of the log-lr residuals at the fit (natural log, dimensionless).
        success: False when the optimizer failed or the fitted peak lies outside the batch sizes given.
        message: ``"ok"`` or why ``success`` is False.
    """

    eps_max: float
    eps_max_ci: Interval
    b_noise: float
    b_noise_ci: Interval
    confidence: float
    n_points: int
    rms_log_residual: float
    success: bool  # False when the optimizer failed or the fitted peak lies outside the batch sizes given
    message: str


@dataclass(frozen=True)
class LawFit:
    """One candidate law of ``compare_laws`` fitted by least squares in log lr.

    Attributes:
        name: ``"adam"``, ``"sgd(alpha=1)"``, ``"sgd(alpha=0.5)"`` or ``"sgd(alpha=free)"``.
        params: ``eps_max``, ``b_noise`` (in the unit of the batch sizes) and, for SGD laws only, ``alpha``.
        n_params: free parameters k (B_noise counts only when not given).
        rms_log_residual: RMS of the log-lr residuals (natural log, dimensionless).
        aic: Akaike criterion n log(RSS/n) + 2k (RSS/n floored at ``RESIDUAL_FLOOR`` squared).
        bic: Bayesian criterion n log(RSS/n) + k log n (same floor).
        success: the least-squares fit converged.
        message: ``"ok"``, or why the fit failed or is extrapolated.
        aicc: AIC + 2k(k+1)/(n-k-1), the small-sample criterion; inf when n <= k + 1.
        status: ``"ok"``, ``"extrapolated"`` (a parameter at its bound or B_noise far outside the data) or
            ``"failed"``.
    """

    name: str  # "adam", "sgd(alpha=1)", "sgd(alpha=0.5)" or "sgd(alpha=free)"
    params: dict[str, float]  # eps_max, b_noise, alpha (alpha only for SGD)
    n_params: int  # free parameters (B_noise counts only when not given)
    rms_log_residual: float
    aic: float  # n log(RSS/n) + 2k
    bic: float  # n log(RSS/n) + k log n
    success: bool  # the least-squares fit converged
    message: str
    aicc: float = math.nan  # AIC + 2k(k+1)/(n-k-1), the small-sample criterion; inf when n <= k + 1
    status: str = "ok"  # "ok", "extrapolated" (a parameter at its bound or B_noise far outside the data) or "failed"

    def predict(self, batch_size) -> np.ndarray:
        """The fitted law's learning rate at ``batch_size``.

        Args:
            batch_size: array-like of batch sizes, in the unit the law was fitted in, > 0; any shape.

        Returns:
            np.ndarray of the shape of ``batch_size``: the law's learning rate there.

        Raises:
            SurgeError: a batch size <= 0 or non-finite.
        """
        law = get_law(self.name)
        if law.family == "sgd":
            law = SGDLaw(self.params["alpha"])  # a free exponent takes its fitted value
        return law.lr(batch_size, self.params["eps_max"], self.params["b_noise"])


@dataclass(frozen=True)
class LawComparison:
    """Adam law against SGD laws on the same (batch size, optimal lr) points.

    Attributes:
        laws: one :class:`LawFit` per law of ``COMPARED_LAWS``, in that order.
        best: lowest AICc among the laws that fitted (among all when none did); ties go to fewer parameters.
        criterion: the criterion ``best`` minimises: ``"aicc"``.
        n_points: (B, lr) points used.
        b_noise_given: the B_noise fixed for every law, or None when each law fitted its own.
    """

    laws: tuple[LawFit, ...]
    best: LawFit  # lowest AICc among the laws that fitted; ties go to fewer parameters
    criterion: str  # "aicc"
    n_points: int
    b_noise_given: float | None = field(default=None)


# ---- input checks ----------------------------------------------------------------------------


def _points(batch_sizes, values, values_name: str, min_points: int) -> tuple[np.ndarray, np.ndarray]:
    b = check_array(batch_sizes, "batch_sizes", ndim=1, positive=True)
    v = check_array(values, values_name, ndim=1, positive=True)
    n = check_same_length(batch_sizes=b, **{values_name: v})
    if n < min_points:
        raise SurgeError(f"need at least {min_points} points, got {n}")
    if np.unique(b).size < 2:
        raise SurgeError(f"batch_sizes must contain at least 2 distinct values, got only {b[0]}")
    return b, v


def _exp(x: float) -> float:
    """exp that saturates to inf instead of raising OverflowError (for intervals with huge errors)."""
    if math.isnan(x):
        return math.nan
    return math.exp(x) if x < 709.0 else math.inf


def _t(confidence: float, dof: int) -> float:
    return float(stats.t.ppf(0.5 + confidence / 2.0, dof))


def _confidence(confidence: float) -> float:
    return check_confidence(confidence)


# ---- Eq 22: B_noise from steps ---------------------------------------------------------------


def fit_b_noise(batch_sizes, steps, *, method: str = "linear", confidence: float = 0.95) -> BNoiseFit:
    """Estimate B_noise, S_min and E_min from the steps S needed at each batch size (Eq 20-22).

    Args:
        batch_sizes: array (n,) of batch sizes, in the data's batch unit, > 0, n >= 2,
            at least 2 distinct values.
        steps: array (n,) of the optimizer steps S(B) to reach one target loss, > 0.
        method: ``"linear"`` (default) is the paper's Eq 22: ordinary least squares of 1/S on 1/E with
            E = B S; B_noise = -slope, S_min = 1/intercept, E_min = B_noise S_min. The B_noise interval is
            the t-interval of the slope, the S_min interval the inverted t-interval of the intercept, and
            the E_min interval a delta-method interval. Noise in S enters both axes, which biases B_noise
            slightly low (about -1 % at 5 % noise). ``"nonlinear"`` fits
            log S = log S_min + log(1 + B_noise / B), the right model for multiplicative noise, with
            (log S_min, log B_noise) as parameters and intervals from the Jacobian.
        confidence: nominal coverage of the intervals, in (0, 1); default 0.95.

    Returns:
        BNoiseFit: B_noise and E_min in the unit of ``batch_sizes``, S_min in steps. Two points determine
            Eq 22 exactly: the estimates come without intervals (``method="exact"``). Steps that fall as
            fast as 1/B (no loss of data efficiency: E = B S does not grow with B) give ``b_noise = inf``
            with ``b_noise_lower_bound``, a one-sided lower confidence bound on B_noise from the
            regression E = E_min + S_min B (Eq 20), and ``success=True``. Steps that do not fall, or a
            fit that gives B_noise <= 0 or S_min <= 0, give ``success=False`` with the reason and NaN
            estimates.

    Raises:
        SurgeError: bad input (fewer than 2 points, non-positive or non-finite values, arrays of unequal
            length or not 1-D, one batch size, an unknown ``method``, ``confidence`` outside (0, 1));
            SurgeTypeError (a SurgeError) for non-numeric input.
        EstimationError: valid input whose estimates overflow the largest float (steps near 1e308).
    """
    method = check_choice(method, "method", ("linear", "nonlinear"))
    confidence = _confidence(confidence)
    b, s = _points(batch_sizes, steps, "steps", 2)
    # fit on values scaled to order 1, so that products such as B*S cannot overflow
    b_scale, s_scale = float(np.exp(np.mean(np.log(b)))), float(np.exp(np.mean(np.log(s))))
    bn, sn = b / b_scale, s / s_scale
    kind = _steps_shape(bn, sn)
    if kind != "falls":
        raw = dict(kind=kind, rss=0.0, r2=math.nan, ci=True)
        if method == "linear" and kind == "no_loss" and b.size > 2:
            raw.update(_b_noise_linear_stats(bn, sn))
    elif b.size == 2:
        raw = _b_noise_exact(bn, sn)
    elif method == "linear":
        raw = _b_noise_linear(bn, sn, confidence)
    else:
        raw = _b_noise_nonlinear(bn, sn, confidence)
    return _b_noise_result(raw, b, s, b_scale, s_scale, method, confidence)


def _steps_shape(b: np.ndarray, s: np.ndarray) -> str:
    """ "rising" when the steps do not fall with the batch size (least-squares slope of log S on log B
    >= 0), "no_loss" when the examples E = B S do not grow with it (slope of E on B <= 0: no loss of
    data efficiency, B_noise above the batch sizes), "falls" otherwise (Eq 20 applies)."""
    lb = np.log(b)
    if np.polyfit(lb, np.log(s), 1)[0] >= -1e-9:  # flat to rounding counts as not falling
        return "rising"
    e = b * s
    scale = float(np.abs(e).max())
    if np.polyfit(b, e / scale, 1)[0] <= 1e-12:
        return "no_loss"
    return "falls"


def _b_noise_exact(b: np.ndarray, s: np.ndarray) -> dict:
    """Eq 22 through two points whose steps fall and whose examples grow: exact, no interval."""
    x, y = 1.0 / (b * s), 1.0 / s
    slope = (y[1] - y[0]) / (x[1] - x[0])
    intercept = y[0] - slope * x[0]
    return dict(kind="ok", b_noise=-slope, s_min=1.0 / intercept, rss=0.0, r2=math.nan, ci=False)


def _b_noise_linear_stats(b: np.ndarray, s: np.ndarray) -> dict:
    """RSS and R^2 of the Eq 22 line, for the record, when the points do not give B_noise."""
    x, y = 1.0 / (b * s), 1.0 / s
    if np.ptp(x) <= 1e-12 * float(np.abs(x).max()):
        return dict(rss=0.0, r2=math.nan)
    slope, intercept = np.polyfit(x, y, 1)
    r = y - (intercept + slope * x)
    tss = float(np.sum((y - y.mean()) ** 2))
    rss = float(r @ r)
    return dict(rss=rss, r2=1.0 - rss / tss if tss > 0 else math.nan)


def _b_noise_linear(b: np.ndarray, s: np.ndarray, confidence: float) -> dict:
    n = b.size
    x = 1.0 / (b * s)
    y = 1.0 / s
    xbar, ybar = x.mean(), y.mean()
    sxx = float(np.sum((x - xbar) ** 2))
    tss = float(np.sum((y - ybar) ** 2))
    slope = float(np.sum((x - xbar) * (y - ybar)) / sxx)
    intercept = float(ybar - slope * xbar)
    resid = y - (intercept + slope * x)
    rss = float(resid @ resid)
    r2 = 1.0 - rss / tss if tss > 0 else math.nan
    out = dict(rss=rss, r2=r2, ci=True, slope=slope, intercept=intercept)
    if slope >= 0 or intercept <= 0:
        what = (
            f"slope {slope:.4g} >= 0, which gives B_noise <= 0"
            if slope >= 0
            else f"intercept {intercept:.4g} <= 0, which gives S_min <= 0"
        )
        return dict(
            out,
            kind="failed",
            detail=f"the Eq 22 line of 1/S on 1/E has {what} (in units scaled to the geometric means of B and S): "
            "the steps are too noisy to give B_noise; try --method nonlinear or more rounds",
        )
    s2 = rss / (n - 2)
    var_slope = s2 / sxx
    var_int = s2 * (1.0 / n + xbar**2 / sxx)
    cov = -xbar * s2 / sxx
    t = _t(confidence, n - 2)
    b_noise, s_min = -slope, 1.0 / intercept
    half = t * math.sqrt(var_slope)
    int_half = t * math.sqrt(var_int)
    int_lo, int_hi = intercept - int_half, intercept + int_half
    # e_min = -slope / intercept: gradient (-1/intercept, slope/intercept^2)
    g = np.array([-1.0 / intercept, slope / intercept**2])
    var_e = float(g @ np.array([[var_slope, cov], [cov, var_int]]) @ g)
    e_min = b_noise * s_min
    e_half = t * math.sqrt(max(var_e, 0.0))
    return dict(
        out,
        kind="ok",
        b_noise=b_noise,
        b_noise_ci=(max(b_noise - half, 0.0), b_noise + half),
        s_min=s_min,
        s_min_ci=(1.0 / int_hi, 1.0 / int_lo if int_lo > 0 else math.inf),
        e_min_ci=(max(e_min - e_half, 0.0), e_min + e_half),
    )


def _b_noise_nonlinear(b: np.ndarray, s: np.ndarray, confidence: float) -> dict:
    n = b.size
    logs = np.log(s)

    def model(p):
        return p[0] + np.log1p(np.exp(p[1]) / b)

    best = None
    for lb in (-4.0, -2.0, 0.0, 2.0, 4.0):  # log B_noise starts around the (scaled) batch sizes
        p0 = np.array([math.log(s.min()), lb])
        with np.errstate(over="ignore", invalid="ignore"):
            res = optimize.least_squares(lambda p: model(p) - logs, p0, method="lm")
        if best is None or res.cost < best.cost:
            best = res
    p = best.x
    resid = model(p) - logs
    rss = float(resid @ resid)
    tss = float(np.sum((logs - logs.mean()) ** 2))
    out = dict(rss=rss, r2=1.0 - rss / tss if tss > 0 else math.nan, ci=True)
    log_s_min, log_b = float(p[0]), float(p[1])
    if not best.success:
        return dict(out, kind="failed", detail=f"least squares stopped without converging ({best.message})")
    if log_b < math.log(1e-3 * b.min()):
        return dict(out, kind="rising")
    if log_b > math.log(1e3 * b.max()):
        return dict(out, kind="no_loss")
    cov = _lsq_covariance(best.jac, rss, n)
    if not np.isfinite(cov).all():
        return dict(
            out, kind="failed", detail="the points do not determine S_min and B_noise separately (singular fit)"
        )
    t = _t(confidence, n - 2)
    se_ls, se_lb = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])
    se_le = math.sqrt(max(cov[0, 0] + cov[1, 1] + 2 * cov[0, 1], 0.0))
    log_e = log_s_min + log_b
    return dict(
        out,
        kind="ok",
        b_noise=math.exp(log_b),
        b_noise_ci=(_exp(log_b - t * se_lb), _exp(log_b + t * se_lb)),
        s_min=math.exp(log_s_min),
        s_min_ci=(_exp(log_s_min - t * se_ls), _exp(log_s_min + t * se_ls)),
        e_min_ci=(_exp(log_e - t * se_le), _exp(log_e + t * se_le)),
    )


def _no_loss_bound(b: np.ndarray, s: np.ndarray, confidence: float) -> float:
    """One-sided lower confidence bound on B_noise when E = B S does not grow with B.

    Eq 20 in examples is E = E_min + S_min B, a straight line in B with B_noise = E_min / S_min. The
    bound is E_min / (upper confidence limit of S_min), from ordinary least squares of E on B; it is
    the largest batch size tried when the line is exact (no residual to make an interval from) or the
    upper limit is not positive. ``b`` and ``s`` are the points scaled to order 1.
    """
    n = b.size
    e = b * s
    if n < 3 or not np.isfinite(e).all():
        return float(b.max())
    res = stats.linregress(b, e)
    upper = float(res.slope) + float(stats.t.ppf(confidence, n - 2)) * float(res.stderr)
    intercept = float(res.intercept)
    if not (upper > 0 and intercept > 0) or not math.isfinite(upper):
        return float(b.max())
    return intercept / upper


def _b_noise_result(raw: dict, b, s, b_scale, s_scale, method, confidence) -> BNoiseFit:
    nan = math.nan
    n = b.size
    common = dict(
        method=method if n > 2 else "exact",
        confidence=confidence,
        n_points=n,
        rms_residual=math.sqrt(raw["rss"] / n),
        r_squared=raw["r2"],
    )
    kind = raw["kind"]
    if kind == "rising":
        msg = (
            "steps do not fall as the batch size grows (the fit needs B_noise <= 0; equal steps mean B_noise "
            "lies below the batch sizes tried): "
            "these points cannot give B_noise; check that each S(B) is the steps to the same target loss"
        )
        return BNoiseFit(nan, _NAN_CI, nan, _NAN_CI, nan, _NAN_CI, success=False, message=msg, **common)
    if kind == "failed":
        return BNoiseFit(nan, _NAN_CI, nan, _NAN_CI, nan, _NAN_CI, success=False, message=raw["detail"], **common)
    if kind == "no_loss":
        # on the scaled points (B_noise is invariant to the steps' scale), so that B S cannot overflow
        bound = b_scale * _no_loss_bound(b / b_scale, s / s_scale, confidence)
        with np.errstate(over="ignore"):
            e = b * s
        e_min = float(e.min()) if np.isfinite(e).all() else float((b / b_scale * s / s_scale).min()) * b_scale * s_scale
        if math.isinf(e_min):
            raise EstimationError(
                f"E = B S overflows a 64-bit float (~ {b.max():.3g} x {s.max():.3g}); give steps and batch sizes "
                f"in larger units"
            )
        msg = (
            f"no loss of data efficiency: steps fall as fast as 1/B across the batch sizes tried "
            f"({b.min():g} to {b.max():g}), so B_noise lies above them: B_noise > {bound:.4g} "
            + (f"(one-sided {confidence:.0%} bound)" if bound != float(b.max()) else "(the largest batch size tried)")
        )
        return BNoiseFit(
            math.inf,
            (bound, math.inf),
            nan,
            _NAN_CI,
            e_min,
            _NAN_CI,
            success=True,
            message=msg,
            b_noise_lower_bound=bound,
            **common,
        )
    if not (raw["b_noise"] > 0 and raw["s_min"] > 0):
        msg = f"the Eq 22 fit gives B_noise {raw['b_noise'] * b_scale:.4g} and S_min {raw['s_min'] * s_scale:.4g}: not both > 0"
        return BNoiseFit(nan, _NAN_CI, nan, _NAN_CI, nan, _NAN_CI, success=False, message=msg, **common)
    # scale back; E_min = B_noise S_min is formed in logs so that an overflow is seen, not printed
    b_noise = raw["b_noise"] * b_scale
    s_min = raw["s_min"] * s_scale
    log_e = math.log(raw["b_noise"]) + math.log(raw["s_min"]) + math.log(b_scale) + math.log(s_scale)
    if not (math.isfinite(b_noise) and math.isfinite(s_min)) or log_e >= math.log(np.finfo(float).max):
        raise EstimationError(
            f"the Eq 22 estimates overflow a 64-bit float (B_noise {b_noise:.4g}, S_min {s_min:.4g}, "
            f"E_min = B_noise * S_min ~ 10^{log_e / math.log(10):.0f}); give steps and batch sizes in larger units"
        )
    e_min = math.exp(log_e)
    if not raw["ci"] or n == 2:
        msg = "two points determine Eq 22 exactly: no interval"
        return BNoiseFit(b_noise, _NAN_CI, s_min, _NAN_CI, e_min, _NAN_CI, success=True, message=msg, **common)
    bs, ss = b_scale, s_scale
    b_ci = (raw["b_noise_ci"][0] * bs, raw["b_noise_ci"][1] * bs)
    s_ci = (raw["s_min_ci"][0] * ss, raw["s_min_ci"][1] * ss)
    with np.errstate(over="ignore"):
        e_ci = (float(np.float64(raw["e_min_ci"][0]) * bs * ss), float(np.float64(raw["e_min_ci"][1]) * bs * ss))
    message = "ok"
    if b_ci[0] == 0.0:
        message = "the B_noise interval reaches 0: the data barely constrain B_noise"
    return BNoiseFit(b_noise, b_ci, s_min, s_ci, e_min, e_ci, success=True, message=message, **common)


def _lsq_covariance(jac: np.ndarray, rss: float, n: int) -> np.ndarray:
    """Parameter covariance s^2 (J^T J)^-1 of a least-squares fit with n residuals."""
    k = jac.shape[1]
    if n <= k:
        return np.full((k, k), math.nan)
    jtj = jac.T @ jac
    try:
        inv = np.linalg.inv(jtj)
    except np.linalg.LinAlgError:
        return np.full((k, k), math.nan)
    return inv * (rss / (n - k))


# ---- Eq 23 / 24: eps_max at a given B_noise --------------------------------------------------


def fit_eps_max(
    batch_sizes,
    optimal_lrs,
    b_noise: float,
    *,
    law: str | Law = "adam",
    alpha: float = 1.0,
    method: str = "mean",
    confidence: float = 0.95,
) -> EpsMaxFit:
    """Estimate eps_max from (batch size, optimal lr) points at a known B_noise (Eq 23 / Eq 24).

    ``method="mean"`` is the paper's form: the arithmetic mean over points of
    lr_i * 0.5 (sqrt(B_noise/B_i) + sqrt(B_i/B_noise)) (Eq 23, ``law="adam"``) or
    lr_i * (1 + B_noise/B_i) ** alpha (Eq 24, ``law="sgd"``), with a t-interval of the mean.
    ``method="lsq"`` is least squares in log lr, i.e. the geometric mean of the same inversions, with
    a t-interval in log space.

    Args:
        batch_sizes: array (n,) of batch sizes, in the data's batch unit, > 0, n >= 2,
            at least 2 distinct values.
        optimal_lrs: array (n,) of the optimal learning rate at each batch size, > 0.
        b_noise: B_noise, > 0, in the unit of ``batch_sizes`` (e.g. :func:`fit_b_noise`'s estimate).
        law: a :class:`surge.theory.laws.Law` or its name: ``"adam"`` (Eq 2 / 23, default) or ``"sgd"``
            (Eq 1 / 24, with ``alpha``); an SGD ``Law`` object must have a fixed alpha.
        alpha: the SGD law's exponent, > 0; used only with ``law="sgd"`` given by name. Default 1.
        method: ``"mean"`` (the paper's Eq 23 / 24, default) or ``"lsq"`` (geometric mean).
        confidence: nominal coverage of the interval, in (0, 1); default 0.95.

    Returns:
        EpsMaxFit: eps_max in the unit of the learning rates, its interval and the log residual.

    Raises:
        SurgeError: bad input (fewer than 2 points, non-positive or non-finite values, arrays of unequal
            length or not 1-D, one batch size, an unknown ``law`` or ``method``, a non-positive
            ``b_noise`` or ``alpha``, ``confidence`` outside (0, 1), an SGD ``Law`` with a free alpha);
            SurgeTypeError (a SurgeError) for non-numeric input.
        EstimationError: eps_max overflows or underflows a 64-bit float (learning rates in extreme units).
    """
    if not isinstance(law, Law):
        check_choice(law, "law", ("adam", "sgd"))
        law = get_law(law, check_scalar(alpha, "alpha", positive=True))
    if law.family == "sgd" and law.alpha is None:
        raise SurgeError("fit_eps_max needs an SGD law with a fixed alpha")
    method = check_choice(method, "method", ("mean", "lsq"))
    b_noise = check_scalar(b_noise, "b_noise", positive=True)
    confidence = _confidence(confidence)
    b, lr = _points(batch_sizes, optimal_lrs, "optimal_lrs", 2)
    n = b.size
    log_g = law.log_g(b, b_noise)
    logs = np.log(lr) + log_g  # per-point inversions in logs, scaled below so that nothing overflows
    top = float(logs.max())
    t = _t(confidence, n - 1)
    if method == "mean":
        scaled = np.exp(logs - top)
        mean, sd = float(scaled.mean()), float(scaled.std(ddof=1))
        est = _exp(top + math.log(mean))
        half = _exp(top + math.log(sd)) * t / math.sqrt(n) if sd > 0 else 0.0
        ci = (est - half, est + half)
    else:
        est = _exp(float(logs.mean()))
        half = t * float(logs.std(ddof=1)) / math.sqrt(n)
        ci = (est * _exp(-half), est * _exp(half))
    if not math.isfinite(est) or est == 0.0:
        raise EstimationError(
            f"eps_max overflows a 64-bit float (log eps_max ~ {top:.4g}); give learning rates in other units"
            if not math.isfinite(est)
            else "eps_max underflows to 0 in a 64-bit float; give learning rates in other units"
        )
    resid = np.log(lr) - (math.log(est) - log_g)
    return EpsMaxFit(
        eps_max=est,
        eps_max_ci=ci,
        law=law.family,
        alpha=law.alpha if law.family == "sgd" else None,
        b_noise=b_noise,
        method=method,
        confidence=confidence,
        n_points=n,
        rms_log_residual=float(np.sqrt(np.mean(resid**2))),
        success=True,
        message="ok",
    )


# ---- free fits -------------------------------------------------------------------------------


def _fit_log_law(law: Law, b: np.ndarray, lr: np.ndarray, b_noise: float | None):
    """Least squares of log lr on a law; free parameters are log eps_max, log B_noise (if None), and alpha
    for an SGD law whose alpha is None.

    Returns (params, covariance of the free parameters in their fitted space, rss, success, message).
    """
    log_lr = np.log(lr)
    free_b = b_noise is None
    free_a = law.family == "sgd" and law.alpha is None
    a_fixed = 1.0 if free_a or law.family == "adam" else law.alpha

    def unpack(p):
        i = 1
        bn = b_noise
        if free_b:
            bn = _exp(p[i])
            i += 1
        al = p[i] if free_a else a_fixed
        return bn, al

    def resid(p):
        bn, al = unpack(p)
        return p[0] - law.log_g(b, bn, al) - log_lr

    best = None
    b_starts = np.log(np.geomspace(b.min() / 30.0, b.max() * 30.0, 9)) if free_b else [None]
    a_starts = [0.5, 1.0, 2.0] if free_a else [None]
    for lb in b_starts:
        for a0 in a_starts:
            p0 = [0.0]
            if free_b:
                p0.append(lb)
            if free_a:
                p0.append(a0)
            bn0, al0 = unpack(np.array(p0))
            p0[0] = float(np.mean(log_lr + law.log_g(b, bn0, al0)))
            lo = [-np.inf] * len(p0)
            hi = [np.inf] * len(p0)
            if free_b:
                lo[1], hi[1] = math.log(b.min()) - 12.0, math.log(b.max()) + 12.0
            if free_a:
                lo[-1], hi[-1] = 1e-3, 10.0
            res = optimize.least_squares(resid, p0, bounds=(lo, hi), x_scale="jac")
            if best is None or res.cost < best.cost:
                best = res
    bn, al = unpack(best.x)
    eps = _exp(float(best.x[0]))
    if not math.isfinite(eps) or eps == 0.0 or not math.isfinite(bn):
        raise EstimationError(
            f"the {law.name} law's eps_max or B_noise does not fit in a 64-bit float (log eps_max ~ {best.x[0]:.4g}); "
            "give learning rates and batch sizes in other units"
        )
    params = {"eps_max": eps, "b_noise": float(bn)}
    if law.family == "sgd":
        params["alpha"] = float(al)
    r = resid(best.x)
    rss = float(r @ r)
    cov = _lsq_covariance(best.jac, rss, b.size)
    return params, cov, rss, bool(best.success), str(best.message)


def fit_surge(batch_sizes, optimal_lrs, *, confidence: float = 0.95) -> SurgeFit:
    """Fit eps_max and B_noise of the Adam law (Eq 2) together, by least squares of log lr.

    Intervals come from the Jacobian in (log eps_max, log B_noise). ``success`` is False when the
    fitted B_noise lies outside the batch sizes given: the data then show only one side of the peak,
    where only eps_max / sqrt(B_noise) (or eps_max sqrt(B_noise)) is determined.

    Args:
        batch_sizes: array (n,) of batch sizes, in the data's batch unit, > 0, n >= 3,
            at least 2 distinct values.
        optimal_lrs: array (n,) of the optimal learning rate at each batch size, > 0.
        confidence: nominal coverage of the intervals, in (0, 1); default 0.95.

    Returns:
        SurgeFit: eps_max (unit of the learning rates) and B_noise (unit of ``batch_sizes``) with their
            intervals (NaN when the Jacobian is singular), and ``success`` / ``message``.

    Raises:
        SurgeError: bad input (fewer than 3 points, non-positive or non-finite values, arrays of unequal
            length or not 1-D, one batch size, ``confidence`` outside (0, 1)); SurgeTypeError (a
            SurgeError) for non-numeric input.
        EstimationError: the fitted eps_max or B_noise does not fit in a 64-bit float.
    """
    confidence = _confidence(confidence)
    b, lr = _points(batch_sizes, optimal_lrs, "optimal_lrs", 3)
    n = b.size
    params, cov, rss, ok, msg = _fit_log_law(ADAM_LAW, b, lr, None)
    t = _t(confidence, n - 2)
    se = np.sqrt(np.clip(np.diag(cov), 0, None)) if np.isfinite(cov).all() else np.array([math.nan, math.nan])
    eps, bn = params["eps_max"], params["b_noise"]
    message = "ok" if ok else f"least squares did not converge: {msg}"
    if ok and not (b.min() <= bn <= b.max()):
        ok = False
        message = (
            f"fitted B_noise {bn:.4g} lies outside the batch sizes given [{b.min():g}, {b.max():g}]: "
            "the peak is not bracketed by the data, so B_noise and eps_max are not separately determined"
        )
    return SurgeFit(
        eps_max=eps,
        eps_max_ci=(eps * _exp(-t * se[0]), eps * _exp(t * se[0])),
        b_noise=bn,
        b_noise_ci=(bn * _exp(-t * se[1]), bn * _exp(t * se[1])),
        confidence=confidence,
        n_points=n,
        rms_log_residual=math.sqrt(rss / n),
        success=ok,
        message=message,
    )


COMPARED_LAWS: tuple[Law, ...] = (ADAM_LAW, SGDLaw(1.0), SGDLaw(0.5), SGDLaw(None))  # what compare_laws fits

# log-lr residuals below this (0.01 %) are finer than any measured optimal learning rate: the mean squared
# residual is floored at its square so that rounding noise in the inputs cannot choose between laws
RESIDUAL_FLOOR = 1e-4
EXTRAPOLATION_FACTOR = 10.0  # a free B_noise beyond [min B / 10, max B * 10] is flagged "extrapolated"


def compare_laws(batch_sizes, optimal_lrs, b_noise: float | None = None) -> LawComparison:
    """Fit the Adam law and the SGD laws (alpha = 1, 0.5 and free) to (batch size, optimal lr) points.

    Each law is fitted by least squares in log lr. The best law has the lowest AICc, the small-sample
    Akaike criterion n log(MSE) + 2k + 2k(k+1)/(n-k-1) (k free parameters; inf when n <= k + 1), with the
    mean squared log residual floored at ``RESIDUAL_FLOOR``^2 so that rounding in the inputs cannot pick a
    law; near-ties within 1e-9 go to the law with fewer parameters. A fit whose B_noise sits at its bound
    or lies more than ``EXTRAPOLATION_FACTOR`` outside the batch sizes, or whose free alpha sits at its
    bound, has ``status="extrapolated"``: the data show one side of the law only.

    Args:
        batch_sizes: array (n,) of batch sizes, in the data's batch unit, > 0, at least 2
            distinct values; n >= 3 with ``b_noise`` given, else n >= 4.
        optimal_lrs: array (n,) of the optimal learning rate at each batch size, > 0.
        b_noise: B_noise to fix for every law (Eq 22's estimate), > 0, in the unit of ``batch_sizes``; or
            None (default) to fit it per law.

    Returns:
        LawComparison: one :class:`LawFit` per law of ``COMPARED_LAWS`` and the best by AICc.

    Raises:
        SurgeError: too few points, non-positive or non-finite values, arrays of unequal length or not
            1-D, one batch size, a non-positive ``b_noise``; SurgeTypeError (a SurgeError) for
            non-numeric input.
        EstimationError: a law's fitted eps_max or B_noise does not fit in a 64-bit float.
    """
    if b_noise is not None:
        b_noise = check_scalar(b_noise, "b_noise", positive=True)
    max_k = 2 if b_noise is not None else 3
    b, lr = _points(batch_sizes, optimal_lrs, "optimal_lrs", max_k + 1)
    n = b.size
    fits = []
    for law in COMPARED_LAWS:
        params, _, rss, ok, msg = _fit_log_law(law, b, lr, b_noise)
        k = 1 + (b_noise is None) + (law.family == "sgd" and law.alpha is None)
        mse = max(rss / n, RESIDUAL_FLOOR**2)
        aic = n * math.log(mse) + 2 * k
        aicc = aic + 2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else math.inf
        status, message = ("ok", "ok") if ok else ("failed", f"least squares did not converge: {msg}")
        if ok:
            why = _extrapolated(params, b, b_noise is None, law.family == "sgd" and law.alpha is None)
            if why:
                status, message = "extrapolated", why
        fits.append(
            LawFit(
                name=law.name,
                params=params,
                n_params=k,
                rms_log_residual=math.sqrt(rss / n),
                aic=aic,
                bic=n * math.log(mse) + k * math.log(n),
                success=ok,
                message=message,
                aicc=aicc,
                status=status,
            )
        )
    candidates = [f for f in fits if f.success] or fits
    best = min(candidates, key=lambda f: (round(f.aicc, 9), f.n_params))
    return LawComparison(laws=tuple(fits), best=best, criterion="aicc", n_points=n, b_noise_given=b_noise)


def _extrapolated(params: dict, b: np.ndarray, free_b: bool, free_a: bool) -> str:
    """Why a law fit's parameters are extrapolated ("" when they are not)."""
    why = []
    if free_b:
        bn = params["b_noise"]
        lo, hi = b.min() / EXTRAPOLATION_FACTOR, b.max() * EXTRAPOLATION_FACTOR
        if not lo <= bn <= hi:
            why.append(
                f"B_noise {bn:.3g} lies far outside the batch sizes of the data [{b.min():g}, {b.max():g}]: "
                "only one side of the law is seen, so B_noise and eps_max are not separately determined"
            )
    if free_a and not 1e-3 * 1.001 < params["alpha"] < 10.0 * 0.999:
        why.append(f"alpha {params['alpha']:.3g} sits at its bound")
    return "; ".join(why)
