"""From a tidy trial frame to the paper's answers: optimal lr per batch size, S(B) and E(B), B_noise
(Eq 22), eps_max (Eq 23 / 24), the law comparison, whether the lr falls past B_noise, and B_noise
against the target loss.

Rules for trials that give no number (stated once here, and in every report):

* ``failed`` trials (the run raised) are left out and counted.
* A *diverged* trial gives no loss decrease at a stage it had not passed with a finite decrease; a trial
  that reached the target but whose decrease is NaN or infinite (the engine writes NaN when the N steps
  after the target blow up, even for an ``ok`` trial) counts as diverged too. A trial that did not reach
  the stage's target is *censored* for that stage. Both are counted per (batch size, lr) and never
  averaged in.
* A learning rate at which more than ``max_diverged_fraction`` of the trials diverged is not a candidate
  for the optimum (a learning rate that often diverges is not optimal, however well its survivors did).
* S(B) with ``steps_statistic="mean"`` uses only learning rates at which every trial reached the target
  (a mean over the survivors of a censored cell would be too low); with ``"median"``, censored and
  diverged trials count as infinitely many steps, which is exact for the median while fewer than half
  are censored.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from surge._validation import check_choice, check_scalar
from surge.analysis._frame import select_config, tidy_frame
from surge.fit import (
    BNoiseFit,
    EpsMaxFit,
    LawComparison,
    SurgeFit,
    compare_laws,
    fit_b_noise,
    fit_eps_max,
    fit_surge,
)
from surge.errors import SurgeError

Interval = tuple[float, float]
_NAN_CI: Interval = (math.nan, math.nan)
# the laws drawn and fitted at the Eq 22 B_noise, in the order the paper names them
EPS_LAWS: tuple[tuple[str, str, float], ...] = (
    ("adam", "adam", 1.0),
    ("sgd(alpha=1)", "sgd", 1.0),
    ("sgd(alpha=0.5)", "sgd", 0.5),
)
TIE_RTOL = 1e-9  # mean loss decreases within this relative distance of the best are ties


# ---- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisSettings:
    """How :func:`analyze` was asked to work (stored with the result, printed in the report)."""

    n_boot: int  # bootstrap resamples of the rounds
    seed: int  # seed of the bootstrap
    confidence: float  # coverage of every interval
    max_diverged_fraction: float  # a learning rate with a larger share of diverged trials is no candidate
    steps_statistic: str  # "mean" (cells where every trial reached) or "median" (censored count as infinite)
    lr_estimate: str  # which optimal lr the fits use: "grid" (the paper's) or "refined"
    refine_halfwidth: int  # grid neighbours on each side used by the quadratic refinement
    b_noise_method: str  # fit_b_noise method: "linear" (Eq 22) or "nonlinear"


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class DecreaseGrid:
    """The mean loss decrease on the (learning rate x batch size) grid of one stage, for the heatmap."""

    batch_sizes: np.ndarray  # (nB,) ascending
    lrs: np.ndarray  # (nL,) ascending, the union of the learning rates tried
    mean: np.ndarray  # (nL, nB) mean loss decrease over usable trials; NaN where none
    n_used: np.ndarray  # (nL, nB) trials that entered the mean
    n_diverged: np.ndarray  # (nL, nB)
    n_censored: np.ndarray  # (nL, nB)
    n_trials: np.ndarray  # (nL, nB) all trials, failed included
    candidate: np.ndarray  # (nL, nB) bool: may be the optimum (has data, not too often diverged)


@dataclass(frozen=True)
class BatchOptimum:
    """One batch size at one stage: its optimal learning rate and the steps / examples to the target."""

    batch_size: int
    optimal_lr: float  # grid lr with the largest mean loss decrease over rounds; NaN when no candidate
    optimal_lr_ci: Interval  # bootstrap (over rounds) percentile interval of the argmax, in grid points
    refined_lr: float  # vertex of a quadratic in log lr fitted around the best grid point; NaN at a grid edge
    refined_lr_ci: Interval  # bootstrap interval of the vertex
    best_decrease: float  # mean loss decrease at optimal_lr
    tied_lrs: tuple[float, ...]  # every lr tied with the best (ties go to the smallest, the safer choice)
    at_grid_edge: bool  # best lr is the smallest or largest candidate: the grid does not bracket the optimum
    steps: float  # S(B): the smallest, over lrs, mean steps to reach the target; NaN when none qualifies
    examples: float  # E(B): the examples at the same lr
    steps_lr: float  # the lr that gave S(B)
    n_lrs: int  # learning rates tried at this batch size
    n_rounds: int  # rounds with at least one trial here
    n_trials: int  # trials here (all statuses)
    n_used: int  # trials whose loss decrease entered the means
    n_diverged: int  # trials that diverged before reaching this target, or whose decrease blew up (NaN / inf)
    n_censored: int  # trials that did not reach this target (budget spent first)
    n_failed: int  # trials that raised
    n_excluded_lrs: int  # learning rates with data but too often diverged to be candidates
    note: str  # empty, or why a number is missing / what to keep in mind


@dataclass(frozen=True)
class FallEvidence:
    """Does the optimal learning rate fall for batch sizes past B_noise (the surge)?"""

    verdict: str  # "yes", "no", "inconclusive" or "untestable"
    falls: bool | None  # True for "yes", False for "no", None otherwise
    peak_batch_size: float  # batch size with the largest optimal lr
    peak_lr: float
    peak_lr_ci: Interval
    far_batch_size: float  # the largest batch size past both B_noise and the peak
    far_lr: float
    far_lr_ci: Interval
    slope: float  # least-squares slope of log(optimal lr) on log(B) over B > B_noise (Adam law -> -1/2)
    slope_ci: Interval
    n_above: int  # batch sizes past B_noise with an optimal lr
    message: str  # the evidence in one sentence


@dataclass(frozen=True)
class StageAnalysis:
    """Everything about one stage (target loss)."""

    target_loss: float
    rows: tuple[BatchOptimum, ...]  # one per batch size, ascending
    grid: DecreaseGrid
    b_noise_fit: BNoiseFit | None  # Eq 22 on the (B, S(B)) points; None when too few
    eps_max_fits: tuple[EpsMaxFit, ...]  # Eq 23 (adam) and Eq 24 (sgd, alpha 1 and 0.5) at the Eq 22 B_noise
    law_comparison: LawComparison | None  # laws fitted at the Eq 22 B_noise (free B_noise if that failed)
    law_comparison_free: LawComparison | None  # laws fitted with B_noise free
    surge_fit: SurgeFit | None  # the Adam law fitted to the optimal lrs alone (B_noise from the peak)
    falls: FallEvidence
    n_trials: int
    n_used: int
    n_diverged: int
    n_censored: int
    n_failed: int
    messages: tuple[str, ...]  # what went wrong or is worth knowing, one sentence each

    @property
    def b_noise(self) -> float:
        f = self.b_noise_fit
        return f.b_noise if f is not None and f.success else math.nan

    @property
    def b_noise_ci(self) -> Interval:
        f = self.b_noise_fit
        return f.b_noise_ci if f is not None and f.success else _NAN_CI

    @property
    def eps_max(self) -> dict[str, float]:
        """eps_max per law name ("adam", "sgd(alpha=1)", "sgd(alpha=0.5)"); NaN where not fitted."""
        got = {_eps_name(f): f.eps_max for f in self.eps_max_fits}
        return {name: got.get(name, math.nan) for name, _, _ in EPS_LAWS}

    @property
    def eps_max_ci(self) -> dict[str, Interval]:
        got = {_eps_name(f): f.eps_max_ci for f in self.eps_max_fits}
        return {name: got.get(name, _NAN_CI) for name, _, _ in EPS_LAWS}

    @property
    def best_law(self) -> str | None:
        return self.law_comparison.best.name if self.law_comparison is not None else None

    def eps_max_fit(self, name: str) -> EpsMaxFit | None:
        for f in self.eps_max_fits:
            if _eps_name(f) == name:
                return f
        return None

    def fit_points(self, lr_estimate: str = "grid") -> tuple[np.ndarray, np.ndarray]:
        """The (batch size, optimal lr) points the fits use."""
        return _lr_points(self.rows, lr_estimate)


@dataclass(frozen=True)
class BNoiseTrend:
    """B_noise against the target loss: it should grow as the target falls (training progresses)."""

    target_loss: tuple[float, ...]  # descending: training progresses along the tuple
    b_noise: tuple[float, ...]  # NaN where the stage's fit failed
    b_noise_ci: tuple[Interval, ...]
    spearman_rho: float  # rank correlation of B_noise with the target (negative when B_noise grows)
    grows: bool | None  # B_noise rises at every step to a lower target; None with fewer than 2 fitted stages
    message: str


@dataclass(frozen=True)
class SweepAnalysis:
    """The analysis of one optimizer configuration over its stages."""

    config: str  # label of the configuration (workload | optimizer(betas) | unit)
    workload: str
    optimizer: str
    betas: tuple[float, float] | None
    batch_unit: str  # "examples", "tokens" or "sequences"
    extra_steps: float  # N, the steps after the target over which the decrease is measured (NaN if unknown)
    stages: tuple[StageAnalysis, ...]  # descending target loss
    trend: BNoiseTrend
    n_trials: int  # distinct trials of this configuration
    n_failed: int
    settings: AnalysisSettings
    messages: tuple[str, ...]

    def stage(self, target_loss: float) -> StageAnalysis:
        for s in self.stages:
            if math.isclose(s.target_loss, float(target_loss), rel_tol=1e-9, abs_tol=1e-12):
                return s
        raise SurgeError(
            f"no stage with target loss {target_loss!r}; the stages are "
            + ", ".join(f"{s.target_loss:g}" for s in self.stages)
        )


def _eps_name(f: EpsMaxFit) -> str:
    return "adam" if f.law == "adam" else f"sgd(alpha={f.alpha:g})"


# ---- helpers -----------------------------------------------------------------------------------


def _percentile_ci(values: np.ndarray, confidence: float, *, grid: bool) -> Interval:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return _NAN_CI
    lo_q, hi_q = 0.5 - confidence / 2, 0.5 + confidence / 2
    if grid:  # endpoints on the grid
        return float(np.quantile(v, lo_q, method="lower")), float(np.quantile(v, hi_q, method="higher"))
    return float(np.quantile(v, lo_q)), float(np.quantile(v, hi_q))


def _argmax_smallest(means: np.ndarray) -> np.ndarray:
    """Per row, the first (smallest-lr) column within TIE_RTOL of the row's max; -1 for an all-NaN row."""
    m = np.atleast_2d(means)
    finite = np.isfinite(m)
    best = np.where(finite, m, -np.inf).max(axis=1)
    scale = np.maximum(np.abs(best), np.nanmax(np.where(finite, np.abs(m), 0.0), axis=1))
    tol = TIE_RTOL * np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    tied = finite & (m >= (best - tol)[:, None])
    idx = np.where(tied.any(axis=1), tied.argmax(axis=1), -1)
    return idx


def _vertex(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Vertex of the least-squares quadratic through (x, y[:, k]) for each column k, clipped to [x.min, x.max];
    NaN where the quadratic is not concave."""
    coef = np.polynomial.polynomial.polyfit(x, y, 2)  # (3, K): c0, c1, c2
    c1, c2 = coef[1], coef[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(c2 < 0, -c1 / (2 * c2), np.nan)
    return np.clip(v, x.min(), x.max())


def _stage_seed(seed: int, target: float, batch_size: int) -> np.random.Generator:
    bits = struct.unpack("<Q", struct.pack("<d", float(target)))[0]
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(batch_size), bits & 0xFFFFFFFF, bits >> 32])


def _lr_points(rows, lr_estimate: str) -> tuple[np.ndarray, np.ndarray]:
    b, lr = [], []
    for r in rows:
        v = r.optimal_lr
        if lr_estimate == "refined" and math.isfinite(r.refined_lr):
            v = r.refined_lr
        if math.isfinite(v):
            b.append(r.batch_size)
            lr.append(v)
    return np.asarray(b, dtype=float), np.asarray(lr, dtype=float)


# ---- one batch size ----------------------------------------------------------------------------


def _batch_optimum(
    sub: pd.DataFrame, b: int, lrs_all: np.ndarray, st: AnalysisSettings, rng
) -> tuple[BatchOptimum, dict]:
    """Optimal lr and S/E at one batch size; also returns the per-lr columns of the heatmap."""
    n_l = lrs_all.size
    col = {k: np.zeros(n_l, dtype=int) for k in ("n_used", "n_diverged", "n_censored", "n_trials")}
    col["mean"] = np.full(n_l, np.nan)
    col["candidate"] = np.zeros(n_l, dtype=bool)
    failed = sub["status"] == "failed"
    ld_ok = sub["reached"] & np.isfinite(sub["loss_decrease"]) & ~failed
    # no usable decrease: diverged before the target, or the N steps after it blew up (reached, NaN decrease)
    diverged = ~ld_ok & ~failed & ((sub["status"] == "diverged") | sub["reached"])
    censored = ~ld_ok & ~failed & ~diverged
    lr_index = np.searchsorted(lrs_all, sub["lr"].to_numpy())
    for name, mask in (("n_used", ld_ok), ("n_diverged", diverged), ("n_censored", censored)):
        np.add.at(col[name], lr_index[mask.to_numpy()], 1)
    np.add.at(col["n_trials"], lr_index, 1)
    n_nonfailed = col["n_trials"] - np.bincount(lr_index[failed.to_numpy()], minlength=n_l)
    tried = col["n_trials"] > 0
    lrs_here = lrs_all[tried]

    rounds = np.sort(sub["round"].unique())
    n_rounds = rounds.size
    # rounds x lr matrix of the loss decrease (NaN = no usable trial); duplicates averaged
    used = sub[ld_ok]
    V = np.full((n_rounds, n_l), np.nan)
    if len(used):
        g = used.groupby(["round", "lr"])["loss_decrease"].mean()
        ri = np.searchsorted(rounds, g.index.get_level_values(0).to_numpy())
        li = np.searchsorted(lrs_all, g.index.get_level_values(1).to_numpy())
        V[ri, li] = g.to_numpy()
    with np.errstate(invalid="ignore"):
        frac_div = np.where(n_nonfailed > 0, col["n_diverged"] / np.maximum(n_nonfailed, 1), 0.0)
    candidate = (col["n_used"] > 0) & (frac_div <= st.max_diverged_fraction + 1e-12)
    col["candidate"] = candidate
    with np.errstate(invalid="ignore"), np.errstate(divide="ignore"):
        mean = np.nansum(V, axis=0) / np.sum(np.isfinite(V), axis=0)
    col["mean"] = np.where(col["n_used"] > 0, mean, np.nan)
    cand_mean = np.where(candidate, col["mean"], np.nan)

    notes = []
    n_trials = int(col["n_trials"].sum())
    n_failed = int(n_trials - n_nonfailed.sum())
    n_div, n_cens, n_used = int(col["n_diverged"].sum()), int(col["n_censored"].sum()), int(col["n_used"].sum())
    n_excluded = int(((col["n_used"] > 0) & ~candidate).sum())
    optimal = refined = best_dec = math.nan
    opt_ci = ref_ci = _NAN_CI
    tied: tuple[float, ...] = ()
    edge = False
    if not np.isfinite(cand_mean).any():
        if n_trials == n_failed:
            notes.append(f"all {n_trials} trials failed")
        elif n_div == n_trials - n_failed:
            notes.append(f"all {n_div} trials diverged: no optimal learning rate")
        elif n_used == 0:
            notes.append(f"no trial reached the target ({n_cens} censored, {n_div} diverged): no optimal learning rate")
        else:
            notes.append(
                f"every learning rate with a measured decrease diverged in more than {st.max_diverged_fraction:.0%} "
                "of its trials: no optimal learning rate"
            )
    else:
        k = int(_argmax_smallest(cand_mean[None, :])[0])
        optimal = float(lrs_all[k])
        best_dec = float(cand_mean[k])
        scale = max(abs(best_dec), float(np.nanmax(np.abs(cand_mean))))
        tie_mask = np.isfinite(cand_mean) & (cand_mean >= best_dec - TIE_RTOL * (scale if scale > 0 else 1.0))
        tied = tuple(float(x) for x in lrs_all[tie_mask])
        if len(tied) > 1:
            notes.append(f"{len(tied)} learning rates tie for the best mean decrease; the smallest is taken")
        # bootstrap over rounds
        cand_idx = np.flatnonzero(candidate)
        if n_rounds >= 2 and st.n_boot > 0:
            W = rng.multinomial(n_rounds, np.full(n_rounds, 1.0 / n_rounds), size=st.n_boot).astype(float)
            Vc = V[:, cand_idx]
            fin = np.isfinite(Vc)
            with np.errstate(invalid="ignore", divide="ignore"):
                boot_means = (W @ np.where(fin, Vc, 0.0)) / (W @ fin.astype(float))
            bi = _argmax_smallest(boot_means)
            boot_lr = np.where(bi >= 0, lrs_all[cand_idx][np.maximum(bi, 0)], np.nan)
            opt_ci = _percentile_ci(boot_lr, st.confidence, grid=True)
        else:
            boot_means = None
            notes.append("a single round: no bootstrap interval")
        # quadratic refinement in log lr around the best grid point (contiguous candidates only)
        lo = hi = k
        while lo - 1 >= 0 and k - (lo - 1) <= st.refine_halfwidth and candidate[lo - 1]:
            lo -= 1
        while hi + 1 < n_l and (hi + 1) - k <= st.refine_halfwidth and candidate[hi + 1]:
            hi += 1
        if lo == k or hi == k:
            edge = True
            side = "smallest" if lo == k else "largest"
            why = ""
            if side == "largest" and k + 1 < n_l and col["n_trials"][k + 1] > 0 and not candidate[k + 1]:
                why = " (the next larger learning rate diverged or has no usable trial)"
            notes.append(
                f"the best learning rate is the {side} candidate{why}: the grid does not bracket the optimum, "
                "so it is a bound, and no refined estimate is made"
            )
        else:
            x = np.log(lrs_all[lo : hi + 1])
            v = _vertex(x, cand_mean[lo : hi + 1][:, None])[0]
            refined = float(np.exp(v)) if np.isfinite(v) else math.nan
            if boot_means is not None:
                pos = np.searchsorted(cand_idx, np.arange(lo, hi + 1))
                yb = boot_means[:, pos].T  # (window, n_boot)
                okb = np.isfinite(yb).all(axis=0)
                if okb.any():
                    vb = _vertex(x, yb[:, okb])
                    ref_ci = _percentile_ci(np.exp(vb), st.confidence, grid=False)
            if not math.isfinite(refined):
                notes.append("the mean decrease is not concave around the best learning rate: no refined estimate")
    if n_excluded:
        notes.append(
            f"{n_excluded} learning rate(s) diverged in more than {st.max_diverged_fraction:.0%} of their trials "
            "and are not candidates"
        )

    # S(B), E(B): the smallest mean steps over learning rates
    steps = examples = steps_lr = math.nan
    reached = (sub["reached"] & np.isfinite(sub["steps"]) & ~failed).to_numpy()
    keep = ~failed.to_numpy()
    s_all, e_all = sub["steps"].to_numpy(dtype=float), sub["examples"].to_numpy(dtype=float)
    rows = []
    for li in np.flatnonzero(n_nonfailed > 0):
        in_cell = (lr_index == li) & keep
        r = reached[in_cell]
        if st.steps_statistic == "mean":
            if not r.all():
                continue
            s_val, e_val = float(s_all[in_cell].mean()), float(e_all[in_cell].mean())
        else:
            s_val = float(np.median(np.where(r, s_all[in_cell], np.inf)))
            e_val = float(np.median(np.where(r, e_all[in_cell], np.inf)))
            if not math.isfinite(s_val):
                continue
        rows.append((s_val, e_val, float(lrs_all[li])))
    if rows:
        steps, examples, steps_lr = min(rows)
    elif n_trials > n_failed:
        need = "every trial reached" if st.steps_statistic == "mean" else "at least half the trials reached"
        notes.append(f"no learning rate at which {need} the target: no S(B) for the Eq 22 fit")
    row = BatchOptimum(
        batch_size=int(b),
        optimal_lr=optimal,
        optimal_lr_ci=opt_ci,
        refined_lr=refined,
        refined_lr_ci=ref_ci,
        best_decrease=best_dec,
        tied_lrs=tied,
        at_grid_edge=edge,
        steps=steps,
        examples=examples,
        steps_lr=steps_lr,
        n_lrs=int(lrs_here.size),
        n_rounds=int(n_rounds),
        n_trials=n_trials,
        n_used=n_used,
        n_diverged=n_div,
        n_censored=n_cens,
        n_failed=n_failed,
        n_excluded_lrs=n_excluded,
        note="; ".join(notes),
    )
    return row, col


# ---- one stage ---------------------------------------------------------------------------------


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


def _analyze_stage(
    stage_df: pd.DataFrame, target: float, batch_sizes: np.ndarray, st: AnalysisSettings
) -> StageAnalysis:
    lrs_all = np.sort(stage_df["lr"].unique())
    rows, cols = [], []
    for b in batch_sizes:
        sub = stage_df[stage_df["batch_size"] == b]
        row, col = _batch_optimum(sub, int(b), lrs_all, st, _stage_seed(st.seed, target, int(b)))
        rows.append(row)
        cols.append(col)
    rows_t = tuple(rows)

    def stack(key):
        a = np.stack([c[key] for c in cols], axis=1) if cols else np.zeros((lrs_all.size, 0))
        a.setflags(write=False)
        return a

    grid = DecreaseGrid(
        batch_sizes=np.asarray(batch_sizes, dtype=np.int64),
        lrs=lrs_all,
        mean=stack("mean"),
        n_used=stack("n_used"),
        n_diverged=stack("n_diverged"),
        n_censored=stack("n_censored"),
        n_trials=stack("n_trials"),
        candidate=stack("candidate"),
    )
    for a in (grid.batch_sizes, grid.lrs):
        a.setflags(write=False)
    n_trials = sum(r.n_trials for r in rows)
    n_used = sum(r.n_used for r in rows)
    n_div = sum(r.n_diverged for r in rows)
    n_cens = sum(r.n_censored for r in rows)
    n_failed = sum(r.n_failed for r in rows)
    msgs: list[str] = []
    n_reached = int((stage_df["reached"] & (stage_df["status"] != "failed")).sum())
    if n_reached == 0:
        msgs.append(
            f"no trial reached target loss {target:g} ({n_trials} trials: {n_cens} censored, {n_div} diverged, "
            f"{n_failed} failed): nothing to estimate at this stage; "
            "raise the budget (max_steps) or pick a higher target"
        )
    for r in rows:
        if r.note and (n_reached > 0 or "failed" in r.note):
            msgs.append(f"B = {r.batch_size}: {r.note}")

    # Eq 22
    b_noise_fit = None
    s_pts = [(r.batch_size, r.steps) for r in rows if math.isfinite(r.steps)]
    if n_reached > 0:
        if len(s_pts) >= 3 and len({p[0] for p in s_pts}) >= 2:
            b_noise_fit = fit_b_noise(
                [p[0] for p in s_pts], [p[1] for p in s_pts], method=st.b_noise_method, confidence=st.confidence
            )
            if not b_noise_fit.success:
                msgs.append(f"Eq 22 fit failed: {b_noise_fit.message}")
            elif b_noise_fit.message != "ok":
                msgs.append(f"Eq 22 fit: {b_noise_fit.message}")
        else:
            msgs.append(f"only {len(s_pts)} batch size(s) have S(B): the Eq 22 fit needs at least 3")
    b_noise = b_noise_fit.b_noise if b_noise_fit is not None and b_noise_fit.success else math.nan

    # Eq 23 / 24 and the law comparison
    b, lr = _lr_points(rows_t, st.lr_estimate)
    eps_fits: list[EpsMaxFit] = []
    comparison = comparison_free = None
    surge = None
    n_pts, n_b = b.size, np.unique(b).size
    if n_reached > 0:
        if math.isfinite(b_noise) and n_pts >= 2 and n_b >= 2:
            for _, law, alpha in EPS_LAWS:
                eps_fits.append(fit_eps_max(b, lr, b_noise, law=law, alpha=alpha, confidence=st.confidence))
        elif n_pts < 2:
            msgs.append(f"only {n_pts} batch size(s) have an optimal learning rate: no eps_max fit")
        if n_pts >= 3 and n_b >= 2 and math.isfinite(b_noise):
            comparison = compare_laws(b, lr, b_noise=b_noise)
        if n_pts >= 4 and n_b >= 2:
            comparison_free = compare_laws(b, lr)
        if comparison is None:
            comparison = comparison_free
            if comparison is not None:
                msgs.append("laws compared with B_noise free (no Eq 22 B_noise)")
            elif n_pts >= 2:
                msgs.append(f"{n_pts} batch sizes with an optimal learning rate are too few to compare the laws")
        if n_pts >= 3 and n_b >= 3:
            try:
                surge = fit_surge(b, lr, confidence=st.confidence)
            except (OverflowError, FloatingPointError) as exc:  # an unbounded peak can make the interval overflow
                msgs.append(f"the Adam law fitted alone (B_noise free) did not give a usable answer: {exc}")
    falls = _fall_evidence(rows_t, b_noise, st.confidence)
    return StageAnalysis(
        target_loss=float(target),
        rows=rows_t,
        grid=grid,
        b_noise_fit=b_noise_fit,
        eps_max_fits=tuple(eps_fits),
        law_comparison=comparison,
        law_comparison_free=comparison_free,
        surge_fit=surge,
        falls=falls,
        n_trials=n_trials,
        n_used=n_used,
        n_diverged=n_div,
        n_censored=n_cens,
        n_failed=n_failed,
        messages=tuple(msgs),
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


# ---- entry point -------------------------------------------------------------------------------


def analyze(
    frame: pd.DataFrame,
    *,
    stages=None,
    config: str | int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    max_diverged_fraction: float = 0.5,
    steps_statistic: str = "mean",
    lr_estimate: str = "grid",
    refine_halfwidth: int = 1,
    b_noise_method: str = "linear",
) -> SweepAnalysis:
    """Analyse one optimizer configuration of a trial frame (one row per trial and stage).

    Per stage and batch size: the optimal lr (argmax over lrs of the mean loss decrease over rounds,
    ties to the smallest lr), its bootstrap interval over rounds, a refined lr (vertex of a quadratic in
    log lr through the best grid point and ``refine_halfwidth`` candidates each side), and S(B), E(B).
    Per stage: B_noise from Eq 22 (``fit_b_noise``), eps_max from Eq 23 and Eq 24 with alpha 1 and 0.5
    at that B_noise (``fit_eps_max``), the law comparison (``compare_laws`` at that B_noise, and with it
    free), the Adam law fitted alone (``fit_surge``) and whether the optimal lr falls past B_noise.
    Across stages: B_noise against the target loss.

    ``frame`` may be raw (store columns) or already passed through :func:`tidy_frame`. ``stages`` picks
    target losses (all by default); ``config`` picks one configuration when the frame has several.
    ``lr_estimate`` says which optimal lr the fits use: ``"grid"`` (the paper's) or ``"refined"`` (the
    quadratic vertex where there is one, else the grid value). See the module docstring for the rules on
    failed, diverged and censored trials.
    """
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 0:
        raise SurgeError(f"n_boot must be an integer >= 0, got {n_boot!r}")
    if (
        not isinstance(refine_halfwidth, (int, np.integer))
        or isinstance(refine_halfwidth, bool)
        or refine_halfwidth < 1
    ):
        raise SurgeError(f"refine_halfwidth must be an integer >= 1, got {refine_halfwidth!r}")
    confidence = check_scalar(confidence, "confidence", positive=True)
    if not confidence < 1:
        raise SurgeError(f"confidence must be in (0, 1), got {confidence}")
    mdf = check_scalar(max_diverged_fraction, "max_diverged_fraction", nonnegative=True)
    if mdf > 1:
        raise SurgeError(f"max_diverged_fraction must be in [0, 1], got {mdf}")
    settings = AnalysisSettings(
        n_boot=int(n_boot),
        seed=int(seed),
        confidence=confidence,
        max_diverged_fraction=mdf,
        steps_statistic=check_choice(steps_statistic, "steps_statistic", ("mean", "median")),
        lr_estimate=check_choice(lr_estimate, "lr_estimate", ("grid", "refined")),
        refine_halfwidth=int(refine_halfwidth),
        b_noise_method=check_choice(b_noise_method, "b_noise_method", ("linear", "nonlinear")),
    )
    df = select_config(tidy_frame(frame), config)
    label = str(df["config"].iloc[0])
    all_targets = np.sort(df["target_loss"].unique())[::-1]
    if stages is None:
        chosen = all_targets
    else:
        req = np.atleast_1d(np.asarray(stages, dtype=float))
        if req.size == 0:
            raise SurgeError("stages must name at least one target loss")
        chosen = []
        for t in req:
            hit = all_targets[np.isclose(all_targets, t, rtol=1e-9, atol=1e-12)]
            if hit.size == 0:
                raise SurgeError(
                    f"no stage with target loss {t:g}; the trials have targets "
                    + ", ".join(f"{x:g}" for x in all_targets)
                )
            if hit[0] not in chosen:
                chosen.append(hit[0])
        chosen = np.sort(np.asarray(chosen))[::-1]
    batch_sizes = np.sort(df["batch_size"].unique())
    messages: list[str] = []
    trial_cols = ["batch_size", "lr", "round"]
    n_trials = int(df.drop_duplicates(trial_cols).shape[0])
    n_failed = int(df[df["status"] == "failed"].drop_duplicates(trial_cols).shape[0])
    dups = int(df.duplicated(trial_cols + ["target_loss"]).sum())
    if dups:
        messages.append(
            f"{dups} rows repeat a (batch size, lr, round, target) already seen; their decreases are averaged"
        )
    if n_failed:
        errs = df[df["status"] == "failed"]["error"].dropna().astype(str)
        top = errs.value_counts().head(1)
        example = f" (most common error: {top.index[0]!r}, {int(top.iloc[0])} rows)" if len(top) else ""
        messages.append(f"{n_failed} trial(s) failed and are left out{example}")
    stage_results = tuple(
        _analyze_stage(df[np.isclose(df["target_loss"], t, rtol=1e-12, atol=0)], float(t), batch_sizes, settings)
        for t in chosen
    )
    first = df.iloc[0]
    betas = None
    if math.isfinite(first["beta1"]) and math.isfinite(first["beta2"]):
        betas = (float(first["beta1"]), float(first["beta2"]))
    n_extra = df["extra_steps"].dropna().unique()
    return SweepAnalysis(
        config=label,
        workload=str(first["workload"]),
        optimizer=str(first["optimizer"]),
        betas=betas,
        batch_unit=str(first["batch_unit"]),
        extra_steps=float(n_extra[0]) if n_extra.size == 1 else math.nan,
        stages=stage_results,
        trend=_trend(stage_results),
        n_trials=n_trials,
        n_failed=n_failed,
        settings=settings,
        messages=tuple(messages),
    )
