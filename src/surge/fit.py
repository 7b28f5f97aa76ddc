"""Estimators of the paper's Section 3.2: B_noise from steps and examples (Eq 22), eps_max (Eq 23 / 24),
both together, and a comparison of the Adam and SGD laws. NumPy/SciPy only.

Every estimator returns a frozen dataclass with the estimate, a confidence interval, the number of
points used, residual statistics and ``success`` / ``message``. Input that cannot give an answer
(too few points, non-positive or non-finite values, a single batch size) raises ``ValueError``;
a fit that runs but gives no meaningful answer (a negative B_noise, a peak outside the data) returns
``success=False`` with the reason, and its estimates are NaN rather than a silent wrong number.

Why one module of ~470 lines: the Eq 22-24 estimators and the law comparison share the input checks
and interval helpers at its top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from surge._validation import check_array, check_choice, check_same_length, check_scalar
from surge.errors import SurgeError
from surge.theory.laws import ADAM_LAW, Law, SGDLaw, get_law

Interval = tuple[float, float]
_NAN_CI: Interval = (math.nan, math.nan)


# ---- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BNoiseFit:
    """B_noise, S_min and E_min from the steps S(B) needed to reach one target loss (Eq 20-22)."""

    b_noise: float  # E_min / S_min (Eq 21/22), the batch size that balances steps and examples
    b_noise_ci: Interval  # confidence interval (low, high) at ``confidence``
    s_min: float  # fewest steps, reached as B -> inf
    s_min_ci: Interval
    e_min: float  # fewest examples, reached as B -> 0
    e_min_ci: Interval
    method: str  # "linear" (Eq 22, least squares of 1/S on 1/E) or "nonlinear" (log S = log S_min (1 + B_noise/B))
    confidence: float  # nominal coverage of the intervals
    n_points: int  # (B, S) points used
    rms_residual: float  # root mean square residual of the fit, in its own space (1/S, or log S)
    r_squared: float  # coefficient of determination of the fit, in its own space
    success: bool
    message: str


@dataclass(frozen=True)
class EpsMaxFit:
    """eps_max of the Adam law (Eq 23) or of the SGD law (Eq 24) at a given B_noise."""

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
    """eps_max and B_noise of the Adam law (Eq 2) fitted together, by least squares in log lr."""

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
    """One candidate law of ``compare_laws`` fitted by least squares in log lr."""

    name: str  # "adam", "sgd(alpha=1)", "sgd(alpha=0.5)" or "sgd(alpha=free)"
    params: dict[str, float]  # eps_max, b_noise, alpha (alpha only for SGD)
    n_params: int  # free parameters (B_noise counts only when not given)
    rms_log_residual: float
    aic: float  # n log(RSS/n) + 2k
    bic: float  # n log(RSS/n) + k log n
    success: bool
    message: str

    def predict(self, batch_size) -> np.ndarray:
        """The fitted law's learning rate at ``batch_size``."""
        law = get_law(self.name)
        if law.family == "sgd":
            law = SGDLaw(self.params["alpha"])  # a free exponent takes its fitted value
        return law.lr(batch_size, self.params["eps_max"], self.params["b_noise"])


@dataclass(frozen=True)
class LawComparison:
    """Adam law against SGD laws on the same (batch size, optimal lr) points."""

    laws: tuple[LawFit, ...]
    best: LawFit  # lowest AIC among the laws that fitted; ties go to fewer parameters
    criterion: str  # "aic"
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
    return math.exp(x) if x < 700.0 else math.inf


def _t(confidence: float, dof: int) -> float:
    return float(stats.t.ppf(0.5 + confidence / 2.0, dof))


def _confidence(confidence: float) -> float:
    c = check_scalar(confidence, "confidence", positive=True)
    if not c < 1:
        raise SurgeError(f"confidence must be in (0, 1), got {c}")
    return c


# ---- Eq 22: B_noise from steps ---------------------------------------------------------------


def fit_b_noise(batch_sizes, steps, *, method: str = "linear", confidence: float = 0.95) -> BNoiseFit:
    """Estimate B_noise, S_min and E_min from the steps S needed at each batch size (Eq 20-22).

    ``method="linear"`` is the paper's Eq 22: ordinary least squares of 1/S on 1/E with E = B S;
    B_noise = -slope, S_min = 1/intercept, E_min = B_noise S_min. The B_noise interval is the
    t-interval of the slope, the S_min interval the inverted t-interval of the intercept, and the
    E_min interval a delta-method interval. Noise in S enters both axes, which biases B_noise slightly
    low (about -1 % at 5 % noise).

    ``method="nonlinear"`` fits log S = log S_min + log(1 + B_noise / B), the right model for
    multiplicative noise, with (log S_min, log B_noise) as parameters and intervals from the Jacobian.
    """
    method = check_choice(method, "method", ("linear", "nonlinear"))
    confidence = _confidence(confidence)
    b, s = _points(batch_sizes, steps, "steps", 3)
    if method == "linear":
        return _fit_b_noise_linear(b, s, confidence)
    return _fit_b_noise_nonlinear(b, s, confidence)


def _fit_b_noise_linear(b: np.ndarray, s: np.ndarray, confidence: float) -> BNoiseFit:
    n = b.size
    x = 1.0 / (b * s)
    y = 1.0 / s
    xbar, ybar = x.mean(), y.mean()
    sxx = float(np.sum((x - xbar) ** 2))
    slope = float(np.sum((x - xbar) * (y - ybar)) / sxx)
    intercept = float(ybar - slope * xbar)
    resid = y - (intercept + slope * x)
    rss = float(resid @ resid)
    s2 = rss / (n - 2) if n > 2 else math.nan
    var_slope = s2 / sxx
    var_int = s2 * (1.0 / n + xbar**2 / sxx)
    cov = -xbar * s2 / sxx
    t = _t(confidence, n - 2)
    tss = float(np.sum((y - ybar) ** 2))
    r2 = 1.0 - rss / tss if tss > 0 else math.nan
    common = dict(method="linear", confidence=confidence, n_points=n, rms_residual=math.sqrt(rss / n), r_squared=r2)
    if slope >= 0 or intercept <= 0:
        what = (
            f"slope of 1/S on 1/E is {slope:.4g} >= 0, which would give B_noise <= 0: steps do not fall as batch size grows"
            if slope >= 0
            else f"intercept of 1/S on 1/E is {intercept:.4g} <= 0, which would give S_min <= 0"
        )
        return BNoiseFit(math.nan, _NAN_CI, math.nan, _NAN_CI, math.nan, _NAN_CI, success=False, message=what, **common)
    b_noise = -slope
    s_min = 1.0 / intercept
    e_min = b_noise * s_min
    half = t * math.sqrt(var_slope)
    b_noise_ci = (max(b_noise - half, 0.0), b_noise + half)
    int_half = t * math.sqrt(var_int)
    int_lo, int_hi = intercept - int_half, intercept + int_half
    s_min_ci = (1.0 / int_hi, 1.0 / int_lo if int_lo > 0 else math.inf)
    # e_min = -slope / intercept: gradient (-1/intercept, slope/intercept^2)
    g = np.array([-1.0 / intercept, slope / intercept**2])
    var_e = float(g @ np.array([[var_slope, cov], [cov, var_int]]) @ g)
    e_half = t * math.sqrt(max(var_e, 0.0))
    e_min_ci = (max(e_min - e_half, 0.0), e_min + e_half)
    message = "ok"
    if b_noise_ci[0] == 0.0:
        message = "the B_noise interval reaches 0: the data barely constrain B_noise"
    return BNoiseFit(b_noise, b_noise_ci, s_min, s_min_ci, e_min, e_min_ci, success=True, message=message, **common)


def _fit_b_noise_nonlinear(b: np.ndarray, s: np.ndarray, confidence: float) -> BNoiseFit:
    n = b.size
    logs = np.log(s)

    def model(p):
        return p[0] + np.log1p(np.exp(p[1]) / b)

    starts = [np.log(np.median(b)) + k for k in (-4.0, -2.0, 0.0, 2.0, 4.0)]
    best = None
    for lb in starts:
        p0 = np.array([math.log(s.min()), lb])
        res = optimize.least_squares(lambda p: model(p) - logs, p0, method="lm")
        if best is None or res.cost < best.cost:
            best = res
    p = best.x
    resid = model(p) - logs
    rss = float(resid @ resid)
    tss = float(np.sum((logs - logs.mean()) ** 2))
    cov = _lsq_covariance(best.jac, rss, n)
    t = _t(confidence, n - 2)
    log_s_min, log_b = float(p[0]), float(p[1])
    b_noise, s_min = math.exp(log_b), math.exp(log_s_min)
    e_min = b_noise * s_min
    se_ls, se_lb = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])
    se_le = math.sqrt(max(cov[0, 0] + cov[1, 1] + 2 * cov[0, 1], 0.0))
    common = dict(
        method="nonlinear",
        confidence=confidence,
        n_points=n,
        rms_residual=math.sqrt(rss / n),
        r_squared=1.0 - rss / tss if tss > 0 else math.nan,
    )
    ok = bool(best.success) and bool(np.isfinite(cov).all())
    message = "ok" if ok else f"least squares did not converge: {best.message}"
    if ok and b_noise > 1e3 * b.max():
        ok, message = False, f"B_noise ran off to {b_noise:.3g}, far beyond the largest batch size {b.max():g}"
    if ok and b_noise < 1e-3 * b.min():
        ok, message = False, f"B_noise ran down to {b_noise:.3g}, far below the smallest batch size {b.min():g}"
    return BNoiseFit(
        b_noise,
        (_exp(log_b - t * se_lb), _exp(log_b + t * se_lb)),
        s_min,
        (_exp(log_s_min - t * se_ls), _exp(log_s_min + t * se_ls)),
        e_min,
        (_exp(math.log(e_min) - t * se_le), _exp(math.log(e_min) + t * se_le)),
        success=ok,
        message=message,
        **common,
    )


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
    """Estimate eps_max from (batch size, optimal lr) points at a known B_noise.

    ``method="mean"`` is the paper's form: the arithmetic mean over points of
    lr_i * 0.5 (sqrt(B_noise/B_i) + sqrt(B_i/B_noise)) (Eq 23, ``law="adam"``) or
    lr_i * (1 + B_noise/B_i) ** alpha (Eq 24, ``law="sgd"``), with a t-interval of the mean.
    ``method="lsq"`` is least squares in log lr, i.e. the geometric mean of the same inversions, with
    a t-interval in log space. ``law`` is a :class:`surge.theory.laws.Law` or its name ("adam", "sgd"
    with ``alpha``).
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
    per_point = lr * np.exp(log_g)
    t = _t(confidence, n - 1)
    if method == "mean":
        est = float(per_point.mean())
        half = t * float(per_point.std(ddof=1)) / math.sqrt(n)
        ci = (est - half, est + half)
    else:
        logs = np.log(per_point)
        est = float(math.exp(logs.mean()))
        half = t * float(logs.std(ddof=1)) / math.sqrt(n)
        ci = (est * _exp(-half), est * _exp(half))
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
            bn = math.exp(p[i])
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
    params = {"eps_max": float(math.exp(best.x[0])), "b_noise": float(bn)}
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


def compare_laws(batch_sizes, optimal_lrs, b_noise: float | None = None) -> LawComparison:
    """Fit the Adam law and the SGD laws (alpha = 1, 0.5 and free) to (batch size, optimal lr) points.

    Each law is fitted by least squares in log lr, with B_noise free unless ``b_noise`` is given. The
    best law has the lowest AIC (n log(RSS/n) + 2k, k the number of free parameters); near-ties
    within 1e-9 go to the law with fewer parameters.
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
        mse = max(rss / n, 1e-300)
        fits.append(
            LawFit(
                name=law.name,
                params=params,
                n_params=k,
                rms_log_residual=math.sqrt(rss / n),
                aic=n * math.log(mse) + 2 * k,
                bic=n * math.log(mse) + k * math.log(n),
                success=ok,
                message="ok" if ok else f"least squares did not converge: {msg}",
            )
        )
    candidates = [f for f in fits if f.success] or fits
    best = min(candidates, key=lambda f: (round(f.aic, 9), f.n_params))
    return LawComparison(laws=tuple(fits), best=best, criterion="aic", n_points=n, b_noise_given=b_noise)
