"""The verdicts: does the optimal learning rate fall past B_noise (the surge), and does B_noise grow as
the target loss falls."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from surge.analysis.results import _NAN_CI, BatchOptimum, BNoiseTrend, FallEvidence, StageAnalysis


def _fall_evidence(rows: tuple[BatchOptimum, ...], b_noise: float, confidence: float) -> FallEvidence:
    pts = [r for r in rows if math.isfinite(r.optimal_lr)]
    nan = math.nan
    empty = dict(
        peak_batch_size=nan,
        peak_lr=nan,
        peak_lr_ci=_NAN_CI,
        far_batch_size=nan,
        far_lr=nan,
        far_lr_ci=_NAN_CI,
        slope=nan,
        slope_ci=_NAN_CI,
    )
    if not math.isfinite(b_noise):
        return FallEvidence(
            "untestable", None, n_above=0, message="no B_noise estimate, so nothing to test past it", **empty
        )
    if len(pts) < 2:
        return FallEvidence(
            "untestable", None, n_above=0, message="fewer than 2 batch sizes have an optimal learning rate", **empty
        )
    peak = max(pts, key=lambda r: (r.optimal_lr, -r.batch_size))
    above = [r for r in pts if r.batch_size > b_noise]
    slope, slope_ci = nan, _NAN_CI
    if len(above) >= 2:
        x = np.log([r.batch_size for r in above])
        y = np.log([r.optimal_lr for r in above])
        res = stats.linregress(x, y)
        slope = float(res.slope)
        if len(above) >= 3:
            half = float(stats.t.ppf(0.5 + confidence / 2, len(above) - 2)) * float(res.stderr)
            slope_ci = (slope - half, slope + half)
    common = dict(
        peak_batch_size=float(peak.batch_size),
        peak_lr=peak.optimal_lr,
        peak_lr_ci=peak.optimal_lr_ci,
        slope=slope,
        slope_ci=slope_ci,
        n_above=len(above),
    )
    slope_txt = ""
    if math.isfinite(slope):
        slope_txt = f"; log-log slope past B_noise {slope:.2f}"
        if math.isfinite(slope_ci[0]):
            slope_txt += f" [{slope_ci[0]:.2f}, {slope_ci[1]:.2f}]"
    if not above:
        return FallEvidence(
            "untestable",
            None,
            far_batch_size=nan,
            far_lr=nan,
            far_lr_ci=_NAN_CI,
            message=f"no batch size with an optimal learning rate lies past B_noise = {b_noise:.4g} "
            f"(the largest is {max(r.batch_size for r in pts)})",
            **common,
        )
    beyond = [r for r in above if r.batch_size > peak.batch_size]
    if not beyond:
        return FallEvidence(
            "no",
            False,
            far_batch_size=nan,
            far_lr=nan,
            far_lr_ci=_NAN_CI,
            message=f"the largest optimal learning rate is at the largest batch size tried "
            f"past B_noise (B = {peak.batch_size}): it does not fall{slope_txt}",
            **common,
        )
    far = beyond[-1]
    common.update(far_batch_size=float(far.batch_size), far_lr=far.optimal_lr, far_lr_ci=far.optimal_lr_ci)
    pk_lo, far_hi = peak.optimal_lr_ci[0], far.optimal_lr_ci[1]
    pct = f"{confidence:.0%}"
    head = (
        f"optimal lr {far.optimal_lr:.3g} at B = {far.batch_size} against the peak {peak.optimal_lr:.3g} "
        f"at B = {peak.batch_size}"
    )
    if far.optimal_lr >= peak.optimal_lr:
        return FallEvidence("no", False, message=f"{head}: it does not fall{slope_txt}", **common)
    if not (math.isfinite(pk_lo) and math.isfinite(far_hi)):
        return FallEvidence(
            "inconclusive",
            None,
            message=f"{head}: lower, but without bootstrap intervals (a single round){slope_txt}",
            **common,
        )
    if far_hi < pk_lo:
        return FallEvidence(
            "yes",
            True,
            message=f"{head}: the {pct} intervals [{far.optimal_lr_ci[0]:.3g}, {far_hi:.3g}] and "
            f"[{pk_lo:.3g}, {peak.optimal_lr_ci[1]:.3g}] do not overlap{slope_txt}",
            **common,
        )
    return FallEvidence(
        "inconclusive",
        None,
        message=f"{head}: lower, but the {pct} intervals [{far.optimal_lr_ci[0]:.3g}, {far_hi:.3g}] "
        f"and [{pk_lo:.3g}, {peak.optimal_lr_ci[1]:.3g}] overlap{slope_txt}",
        **common,
    )


def _trend(stages: tuple[StageAnalysis, ...]) -> BNoiseTrend:
    targets = tuple(s.target_loss for s in stages)
    bn = tuple(s.b_noise for s in stages)
    cis = tuple(s.b_noise_ci for s in stages)
    ok = [(t, v) for t, v in zip(targets, bn) if math.isfinite(v)]
    if len(ok) < 2:
        return BNoiseTrend(
            targets,
            bn,
            cis,
            math.nan,
            None,
            f"{len(ok)} stage(s) with a B_noise estimate: no trend across target losses",
        )
    ts, vs = zip(*ok)
    rho = (
        float(stats.spearmanr(ts, vs).statistic)
        if len(ok) >= 3
        else float(np.sign(vs[1] - vs[0]) * np.sign(ts[1] - ts[0]))
    )
    grows = all(b2 > b1 for b1, b2 in zip(vs, vs[1:]))  # stages are ordered by descending target
    pairs = ", ".join(f"{v:.4g} at {t:g}" for t, v in ok)
    if grows:
        msg = f"B_noise grows as the target loss falls ({pairs}), as the paper predicts"
    else:
        msg = f"B_noise does not grow at every step as the target loss falls ({pairs})"
    return BNoiseTrend(targets, bn, cis, rho, grows, msg)


