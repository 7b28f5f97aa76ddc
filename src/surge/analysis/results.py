"""The analysis's result types: frozen dataclasses, one per level (batch size, stage, sweep)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from surge.analysis.bnoise import JackknifeBNoise
from surge.errors import SurgeError
from surge.fit import BNoiseFit, EpsMaxFit, LawComparison, SurgeFit
from surge.theory.laws import ADAM_LAW, Law, SGDLaw

Interval = tuple[float, float]
_NAN_CI: Interval = (math.nan, math.nan)
# the laws drawn and fitted at the Eq 22 B_noise, in the order the paper names them
EPS_LAWS: tuple[Law, ...] = (ADAM_LAW, SGDLaw(1.0), SGDLaw(0.5))


def _lr_points(rows, lr_estimate: str) -> tuple[np.ndarray, np.ndarray]:
    b, lr = [], []
    for r in rows:
        v = r.optimal_lr
        if lr_estimate == "refined" and math.isfinite(r.refined_lr):
            v = r.refined_lr
        if lr_estimate == "fitted":
            v = r.fitted_lr
        if math.isfinite(v):
            b.append(r.batch_size)
            lr.append(v)
    return np.asarray(b, dtype=float), np.asarray(lr, dtype=float)


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
    fit_model: str = "auto"  # the fitted optimum's model (surge.analysis.fitted.FIT_MODELS)
    steps_rule: str = "fewest"  # which S(B) feeds Eq 22: "fewest" over lrs, or at the "optimal" lr


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
    # the fitted optimum (surge.analysis.fitted): a smooth fit of the mean decrease over all learning rates
    fitted_lr: float = math.nan  # its maximum; NaN when the fit has none inside the learning rates used
    fitted_lr_ci: Interval = _NAN_CI  # bootstrap (over rounds) percentile interval
    fitted_width: float = math.nan  # fitted_lr_ci[1] / fitted_lr_ci[0]
    fit_model: str = ""  # "second-order" (N = 1) or "log-quadratic"
    flat_optimum: bool = False  # best grid lr and runner-up differ by less than one standard error
    fit_note: str = ""  # the fit's message


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
    b_noise_fit_other: BNoiseFit | None = None  # Eq 22 with the other S(B) rule (settings.steps_rule)
    b_noise_jackknife: JackknifeBNoise | None = None  # bias-corrected B_noise and interval over rounds
    selection_bias: tuple = ()  # surge.analysis.selection.SelectionBias per batch size (scratch trials)

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
        got = {f.name: f.eps_max for f in self.eps_max_fits}
        return {name: got.get(name, math.nan) for name in (law.name for law in EPS_LAWS)}

    @property
    def eps_max_ci(self) -> dict[str, Interval]:
        got = {f.name: f.eps_max_ci for f in self.eps_max_fits}
        return {name: got.get(name, _NAN_CI) for name in (law.name for law in EPS_LAWS)}

    @property
    def best_law(self) -> str | None:
        return self.law_comparison.best.name if self.law_comparison is not None else None

    def eps_max_fit(self, name: str) -> EpsMaxFit | None:
        for f in self.eps_max_fits:
            if f.name == name:
                return f
        return None

    def fit_points(self, lr_estimate: str = "grid") -> tuple[np.ndarray, np.ndarray]:
        """The (batch size, optimal lr) points the fits use."""
        return _lr_points(self.rows, lr_estimate)

    def to_dict(self) -> dict:
        """The stage as JSON-ready values (:func:`surge.analysis.serialize.stage_to_dict`)."""
        from surge.analysis.serialize import stage_to_dict

        return stage_to_dict(self)


@dataclass(frozen=True)
class BNoiseTrend:
    """B_noise against the target loss: it should grow as the target falls (training progresses)."""

    target_loss: tuple[float, ...]  # descending: training progresses along the tuple
    b_noise: tuple[float, ...]  # NaN where the stage's fit failed
    b_noise_ci: tuple[Interval, ...]
    spearman_rho: float  # rank correlation of B_noise with the target (negative when B_noise grows)
    grows: bool | None  # True: "grows", False: "does not grow", None: "inconclusive" / "untestable"
    message: str
    verdict: str = "untestable"  # "grows", "does not grow", "inconclusive" (the intervals overlap) or "untestable"


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

    def to_dict(self) -> dict:
        """The analysis as JSON-ready values: the ``surge analyze --json`` object without the report's files."""
        from surge.analysis.serialize import analysis_to_dict

        return analysis_to_dict(self)

    def stage(self, target_loss: float) -> StageAnalysis:
        for s in self.stages:
            if math.isclose(s.target_loss, float(target_loss), rel_tol=1e-9, abs_tol=1e-12):
                return s
        raise SurgeError(
            f"no stage with target loss {target_loss!r}; the stages are "
            + ", ".join(f"{s.target_loss:g}" for s in self.stages)
        )
