"""Eq 22 from the rounds: which S(B) feeds it, and a bias-aware (jackknife) interval for B_noise.

Which S: ``"fewest"`` takes, per batch size, the fewest mean steps over learning rates (what the code
did first: the learning rate that reaches the target soonest); ``"optimal"`` takes the mean steps at that
batch size's optimal learning rate (the paper's wording, "S at the optimal learning rate"). Both use
only learning rates at which every trial reached the target (a mean over the survivors of a censored
cell would be too low).

Why a jackknife: S(B) is a minimum (``"fewest"``) or a mean at an argmax over noisy cells, and Eq 22
takes reciprocals, so the plug-in B_noise is biased when the rounds are few (measured low on the CNN
sample). The leave-one-round-out jackknife on log B_noise estimates that bias (``(R - 1)(mean_jk -
full)``), corrects for it, and gives a t-interval from the jackknife standard error with R - 1 degrees
of freedom. With fewer than :data:`MIN_ROUNDS` rounds the interval is not trusted, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from surge.fit import fit_b_noise

STEPS_RULES = ("fewest", "optimal")
MIN_ROUNDS = 5  # below this the jackknife interval is reported with a warning


@dataclass(frozen=True)
class JackknifeBNoise:
    """The Eq 22 B_noise with a leave-one-round-out jackknife bias correction and interval.

    Attributes:
        b_noise: the plug-in Eq 22 estimate from all rounds, in batch-size units (examples, or the sweep's
            ``batch_unit``).
        b_noise_corrected: the bias-corrected estimate (the correction is made in log B_noise); NaN when
            the jackknife failed.
        b_noise_ci: the t-interval around the corrected value, from the jackknife standard error with
            R - 1 degrees of freedom; NaNs when there is none.
        bias_factor: ``b_noise / b_noise_corrected`` (> 1: the plug-in is high; < 1: low); NaN without a
            correction.
        n_rounds: R, the rounds in the stage's trials.
        n_failed: leave-one-out fits that failed (fewer than 3 batch sizes with S(B), or a failed fit).
        trusted: ``n_rounds >= MIN_ROUNDS`` and every leave-one-out fit succeeded.
        message: ``""``, or why the interval is missing or not to be trusted.
    """

    b_noise: float  # the plug-in estimate from all rounds
    b_noise_corrected: float  # bias-corrected (in log B_noise); NaN when the jackknife failed
    b_noise_ci: tuple[float, float]  # t-interval around the corrected value, from the jackknife SE
    bias_factor: float  # b_noise / b_noise_corrected (> 1: the plug-in is high; < 1: low)
    n_rounds: int  # rounds used
    n_failed: int  # leave-one-out fits that failed
    trusted: bool  # n_rounds >= MIN_ROUNDS and every leave-one-out fit succeeded
    message: str


def steps_points(stage_df: pd.DataFrame, rule: str, optimal_lr: dict[int, float]) -> dict[int, float]:
    """S(B) per batch size under ``rule`` (see the module docstring); batch sizes without one are absent.

    Failed trials are left out; only learning rates at which every trial reached the target with a finite
    S count.

    Args:
        stage_df: the tidy frame (:func:`surge.analysis.tidy_frame`) of one stage.
        rule: ``"fewest"`` (the fewest mean steps over learning rates) or ``"optimal"`` (the mean steps at
            the optimal learning rate); any value other than ``"fewest"`` is read as ``"optimal"`` (not
            checked).
        optimal_lr: maps a batch size to its optimal grid learning rate (used by ``rule="optimal"``,
            matched within a relative 1e-9; a batch size missing or NaN there gets no S(B)).

    Returns:
        dict[int, float]: batch size -> S(B), the mean steps to reach the target (ascending batch size).
    """
    ok = stage_df[stage_df["status"] != "failed"]
    out: dict[int, float] = {}
    for b, sub in ok.groupby("batch_size"):
        cells = sub.groupby("lr")
        reached_all = cells["reached"].all() & cells["steps"].apply(lambda s: np.isfinite(s).all())
        means = cells["steps"].mean()[reached_all]
        if rule == "fewest":
            if len(means):
                out[int(b)] = float(means.min())
        else:
            lr = optimal_lr.get(int(b), math.nan)
            hit = (
                means[np.isclose(means.index.to_numpy(dtype=float), lr, rtol=1e-9)] if math.isfinite(lr) else means[:0]
            )
            if len(hit):
                out[int(b)] = float(hit.iloc[0])
    return out


def jackknife_b_noise(
    stage_df: pd.DataFrame, rule: str, optimal_lr: dict[int, float], *, method: str = "linear", confidence: float = 0.95
) -> JackknifeBNoise | None:
    """Leave-one-round-out jackknife of the Eq 22 B_noise (see the module docstring); None without a fit.

    The optimal learning rates (rule ``"optimal"``) are held at their all-rounds values.

    Args:
        stage_df: the tidy frame (:func:`surge.analysis.tidy_frame`) of one stage, with its ``round`` column.
        rule: which S(B) feeds Eq 22, ``"fewest"`` or ``"optimal"`` (:func:`steps_points`).
        optimal_lr: maps a batch size to its optimal grid learning rate (for ``rule="optimal"``).
        method: the :func:`surge.fit.fit_b_noise` method, ``"linear"`` (default, Eq 22) or ``"nonlinear"``.
        confidence: coverage of the interval, in (0, 1); default 0.95.

    Returns:
        JackknifeBNoise | None: None when fewer than 3 batch sizes have S(B) or the all-rounds fit fails;
        otherwise the estimate, with NaN corrected value and interval (and a message) when there is a
        single round or fewer than 2 leave-one-out fits succeed. An infinite B_noise (no loss of data
        efficiency, see :func:`surge.fit.fit_b_noise`) gives the interval (its lower bound, inf); an
        infinite leave-one-out estimate gives (NaN, inf); both untrusted, with the reason.
    """
    pts = steps_points(stage_df, rule, optimal_lr)
    if len(pts) < 3:
        return None
    full = fit_b_noise(list(pts), list(pts.values()), method=method, confidence=confidence)
    if not full.success:
        return None
    rounds = np.sort(stage_df["round"].unique())
    R = rounds.size
    nan = math.nan
    if math.isinf(full.b_noise):  # no loss of data efficiency: only a lower bound, nothing to correct
        return JackknifeBNoise(
            full.b_noise,
            nan,
            (full.b_noise_lower_bound, math.inf),
            nan,
            int(R),
            0,
            False,
            f"B_noise lies above the batch sizes measured (examples do not grow with B, Eq 20): a one-sided "
            f"lower bound {full.b_noise_lower_bound:.4g}, no jackknife; measure larger batch sizes",
        )
    if R < 2:
        return JackknifeBNoise(
            full.b_noise, nan, (nan, nan), nan, int(R), 0, False, "a single round: no jackknife interval"
        )
    logs, failed, unbounded = [], 0, 0
    for r in rounds:
        p = steps_points(stage_df[stage_df["round"] != r], rule, optimal_lr)
        fit = fit_b_noise(list(p), list(p.values()), method=method, confidence=confidence) if len(p) >= 3 else None
        if fit is None or not fit.success:
            failed += 1
        elif math.isinf(fit.b_noise):
            unbounded += 1
        else:
            logs.append(math.log(fit.b_noise))
    if unbounded:  # a leave-one-out B_noise above the batch sizes: the spread has no upper end
        return JackknifeBNoise(
            full.b_noise,
            nan,
            (nan, math.inf),
            nan,
            int(R),
            failed,
            False,
            f"{unbounded} of {R} leave-one-round-out fits put B_noise above the batch sizes measured: the "
            f"interval has no upper end; measure larger batch sizes or run more rounds",
        )
    if len(logs) < 2:
        return JackknifeBNoise(
            full.b_noise,
            nan,
            (nan, nan),
            nan,
            int(R),
            failed,
            False,
            f"{failed} of {R} leave-one-round-out fits failed: no jackknife interval",
        )
    jk = np.asarray(logs)
    n = jk.size
    theta = math.log(full.b_noise)
    bias = (n - 1) * (float(jk.mean()) - theta)
    corrected = theta - bias
    se = math.sqrt((n - 1) / n * float(((jk - jk.mean()) ** 2).sum()))
    t = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    ci = (math.exp(corrected - t * se), math.exp(corrected + t * se))
    trusted = R >= MIN_ROUNDS and failed == 0
    msg = ""
    if R < MIN_ROUNDS:
        msg = (
            f"only {R} rounds: the jackknife interval of B_noise is not to be trusted (needs at least "
            f"{MIN_ROUNDS}); run more rounds"
        )
    elif failed:
        msg = f"{failed} of {R} leave-one-round-out fits failed; the interval uses the others"
    return JackknifeBNoise(
        full.b_noise, math.exp(corrected), ci, full.b_noise / math.exp(corrected), int(R), failed, trusted, msg
    )
