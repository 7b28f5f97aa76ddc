"""The verdicts: does the optimal learning rate fall past B_noise (the surge), and does B_noise grow as
the target loss falls."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from surge.analysis.results import _NAN_CI, BatchOptimum, BNoiseTrend, FallEvidence, StageAnalysis


def _fall_evidence(
    rows: tuple[BatchOptimum, ...],
    b_noise: float,
    confidence: float,
    *,
    top_of_grid: frozenset = frozenset(),
    b_noise_lower_bound: float = math.nan,
) -> FallEvidence:
    """The verdict on "does the optimal lr fall past B_noise": "yes", "no", "inconclusive" (intervals
    overlap) or "untestable" (the sweep cannot answer: no B_noise, none of the batch sizes past it, or
    the optima the answer rests on sit at the top of the learning-rate grid, where they are only lower
    bounds). ``top_of_grid`` holds the batch sizes whose optimal lr is the largest lr tried there."""
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
    if math.isinf(b_noise):
        return FallEvidence(
            "untestable",
            None,
            n_above=0,
            message=f"B_noise lies above every batch size tried (B_noise > {b_noise_lower_bound:.4g}: no loss of "
            "data efficiency), so no batch size lies past it; add larger batch sizes",
            **empty,
        )
    if pts and all(r.batch_size in top_of_grid for r in pts):
        return FallEvidence(
            "untestable",
            None,
            n_above=0,
            message="every optimal learning rate is the largest learning rate tried, so the grid does not reach the "
            "optimum at any batch size and whether it falls cannot be tested; extend the learning-rate grid upward",
            **empty,
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

    def untestable(which: str) -> FallEvidence:
        far_ = beyond[-1] if beyond else None
        return FallEvidence(
            "untestable",
            None,
            far_batch_size=float(far_.batch_size) if far_ else nan,
            far_lr=far_.optimal_lr if far_ else nan,
            far_lr_ci=far_.optimal_lr_ci if far_ else _NAN_CI,
            message=f"the optimal learning rate at {which} is the largest learning rate tried, only a lower bound, "
            "so whether it falls cannot be tested; extend the learning-rate grid upward",
            **{k: v for k, v in common.items() if not k.startswith("far_")},
        )

    if not beyond:
        others = [r for r in above if r is not peak and r.batch_size in top_of_grid]
        if peak.batch_size in top_of_grid and others:
            return untestable(f"B = {peak.batch_size} and B = {others[0].batch_size}")
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
    if far.optimal_lr >= peak.optimal_lr and peak.batch_size in top_of_grid:
        return untestable(f"the peak B = {peak.batch_size}")
    if far.optimal_lr < peak.optimal_lr and far.batch_size in top_of_grid:
        return untestable(f"B = {far.batch_size}")
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
    """Does B_noise grow as the target loss falls? Judged with the Eq 22 intervals, not the point estimates:

    - "grows": the point estimates rise at every step to a lower target and the first fitted stage's
      interval lies entirely below the last one's;
    - "does not grow": at some step B_noise falls with the two intervals apart;
    - "inconclusive": neither (the intervals overlap, or a stage has no interval);
    - "untestable": fewer than 2 stages with a finite B_noise estimate.
    """
    targets = tuple(s.target_loss for s in stages)
    bn = tuple(s.b_noise for s in stages)
    cis = tuple(s.b_noise_ci for s in stages)
    ok = [(t, v, ci) for t, v, ci in zip(targets, bn, cis) if math.isfinite(v)]
    if len(ok) < 2:
        return BNoiseTrend(
            targets,
            bn,
            cis,
            math.nan,
            None,
            f"{len(ok)} stage(s) with a B_noise estimate: no trend across target losses can be tested",
            "untestable",
        )
    ts, vs, cs = zip(*ok)
    rho = (
        float(stats.spearmanr(ts, vs).statistic)
        if len(ok) >= 3
        else float(np.sign(vs[1] - vs[0]) * np.sign(ts[1] - ts[0]))
    )
    pairs = ", ".join(f"{v:.4g} {_ci_text(c)} at {t:g}" for t, v, c in ok)
    rises = all(b2 > b1 for b1, b2 in zip(vs, vs[1:]))  # stages are ordered by descending target
    apart_up = math.isfinite(cs[0][1]) and math.isfinite(cs[-1][0]) and cs[-1][0] > cs[0][1]
    falls_apart = any(
        v2 < v1 and math.isfinite(c2[1]) and math.isfinite(c1[0]) and c2[1] < c1[0]
        for (v1, c1), (v2, c2) in zip(zip(vs, cs), zip(vs[1:], cs[1:]))
    )
    if rises and apart_up:
        return BNoiseTrend(
            targets,
            bn,
            cis,
            rho,
            True,
            f"B_noise grows as the target loss falls ({pairs}), as the paper predicts",
            "grows",
        )
    if falls_apart:
        return BNoiseTrend(
            targets,
            bn,
            cis,
            rho,
            False,
            f"B_noise falls between stages with intervals that do not overlap ({pairs}), against the paper's prediction",
            "does not grow",
        )
    return BNoiseTrend(
        targets,
        bn,
        cis,
        rho,
        None,
        f"whether B_noise grows as the target loss falls cannot be told: the intervals overlap ({pairs})",
        "inconclusive",
    )


def _ci_text(ci) -> str:
    lo, hi = ci
    if not (math.isfinite(lo) or math.isfinite(hi)):
        return "(no interval)"
    return f"[{lo:.3g}, {hi:.3g}]"
