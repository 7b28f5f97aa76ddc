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
    """How :func:`analyze` was asked to work (stored with the result, printed in the report).

    Attributes:
        n_boot: bootstrap resamples of the rounds (0: no bootstrap interval).
        seed: seed of the bootstrap.
        confidence: coverage of every interval, in (0, 1).
        max_diverged_fraction: in [0, 1]; a learning rate with a larger share of diverged trials is no
            candidate for the optimum.
        steps_statistic: ``"mean"`` (cells where every trial reached the target) or ``"median"`` (censored
            trials count as infinitely many steps).
        lr_estimate: which optimal lr the fits use: ``"grid"`` (the paper's), ``"refined"`` or ``"fitted"``.
        refine_halfwidth: grid neighbours on each side used by the quadratic refinement, >= 1.
        b_noise_method: the :func:`surge.fit.fit_b_noise` method: ``"linear"`` (Eq 22) or ``"nonlinear"``.
        fit_model: the fitted optimum's model (:data:`surge.analysis.fitted.FIT_MODELS`).
        steps_rule: which S(B) feeds Eq 22: ``"fewest"`` over lrs, or at the ``"optimal"`` lr.
    """

    n_boot: int  # bootstrap resamples of the rounds
    seed: int  # seed of the bootstrap
    confidence: float  # coverage of every interval
    max_diverged_fraction: float  # a learning rate with a larger share of diverged trials is no candidate
    steps_statistic: str  # "mean" (cells where every trial reached) or "median" (censored count as infinite)
    lr_estimate: str  # which optimal lr the fits use: "grid" (the paper's), "refined" or "fitted"
    refine_halfwidth: int  # grid neighbours on each side used by the quadratic refinement
    b_noise_method: str  # fit_b_noise method: "linear" (Eq 22) or "nonlinear"
    fit_model: str = "auto"  # the fitted optimum's model (surge.analysis.fitted.FIT_MODELS)
    steps_rule: str = "fewest"  # which S(B) feeds Eq 22: "fewest" over lrs, or at the "optimal" lr


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class DecreaseGrid:
    """The mean loss decrease on the (learning rate x batch size) grid of one stage, for the heatmap.

    Every array is read-only; nB batch sizes, nL learning rates.

    Attributes:
        batch_sizes: int array (nB,), ascending, in the sweep's ``batch_unit``.
        lrs: float array (nL,), ascending: the union of the learning rates tried at this stage.
        mean: float array (nL, nB), the mean loss decrease (nats) over rounds of the usable trials; NaN
            where there is none.
        n_used: int array (nL, nB), the trials that entered the mean.
        n_diverged: int array (nL, nB), the trials that diverged (or whose decrease blew up).
        n_censored: int array (nL, nB), the trials that did not reach the target.
        n_trials: int array (nL, nB), all trials, failed included.
        candidate: bool array (nL, nB): may be the optimum (has data, not too often diverged or censored).
    """

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
    """One batch size at one stage: its optimal learning rate and the steps / examples to the target.

    Attributes:
        batch_size: B, in the sweep's ``batch_unit``.
        optimal_lr: the grid lr with the largest mean loss decrease over rounds; NaN when no candidate.
        optimal_lr_ci: the bootstrap (over rounds) percentile interval of the argmax, with ends on grid
            points; NaNs with a single round or ``n_boot=0``.
        refined_lr: the vertex of a quadratic in log lr fitted around the best grid point; NaN at a grid edge
            or where the mean decrease is not concave there.
        refined_lr_ci: the bootstrap interval of the vertex.
        best_decrease: the mean loss decrease (nats) at ``optimal_lr``.
        tied_lrs: every lr tied with the best (ties go to the smallest, the safer choice).
        at_grid_edge: the best lr is the smallest or largest candidate: the grid does not bracket the optimum.
        steps: S(B): the smallest, over lrs, mean (or median) steps to reach the target; NaN when no lr
            qualifies.
        examples: E(B): the examples (batch-size units) at the same lr.
        steps_lr: the lr that gave S(B).
        n_lrs: learning rates tried at this batch size.
        n_rounds: rounds with at least one trial here.
        n_trials: trials here (all statuses).
        n_used: trials whose loss decrease entered the means.
        n_diverged: trials that diverged before reaching this target, or whose decrease blew up (NaN / inf).
        n_censored: trials that did not reach this target (budget spent first).
        n_failed: trials that raised.
        n_excluded_lrs: learning rates with data but too often diverged (or censored) to be candidates.
        note: empty, or why a number is missing / what to keep in mind (sentences joined by ``"; "``).
        fitted_lr: the fitted optimum (:mod:`surge.analysis.fitted`), a smooth fit of the mean decrease over
            all learning rates; NaN when the fit gives none.
        fitted_lr_ci: its bootstrap (over rounds) percentile interval.
        fitted_width: ``fitted_lr_ci[1] / fitted_lr_ci[0]``, the interval's width as a factor.
        fit_model: ``"second-order"`` (N = 1) or ``"log-quadratic"``; ``""`` when no fit was made.
        flat_optimum: the best grid lr and the runner-up differ by less than one standard error.
        fit_note: the fit's message.
    """

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
    fitted_lr: float = math.nan  # its maximum; NaN when the fit gives none (it may lie outside the lrs used)
    fitted_lr_ci: Interval = _NAN_CI  # bootstrap (over rounds) percentile interval
    fitted_width: float = math.nan  # fitted_lr_ci[1] / fitted_lr_ci[0]
    fit_model: str = ""  # "second-order" (N = 1) or "log-quadratic"
    flat_optimum: bool = False  # best grid lr and runner-up differ by less than one standard error
    fit_note: str = ""  # the fit's message


@dataclass(frozen=True)
class FallEvidence:
    """Does the optimal learning rate fall for batch sizes past B_noise (the surge)?

    Attributes:
        verdict: ``"yes"``, ``"no"``, ``"inconclusive"`` (the intervals overlap, or there are none) or
            ``"untestable"`` (no B_noise, no batch size past it, or the optima at the top of the lr grid).
        falls: True for ``"yes"``, False for ``"no"``, None otherwise.
        peak_batch_size: the batch size with the largest optimal lr (NaN when untestable early).
        peak_lr: the optimal lr there.
        peak_lr_ci: its bootstrap interval.
        far_batch_size: the largest batch size past both B_noise and the peak; NaN when none.
        far_lr: the optimal lr there.
        far_lr_ci: its bootstrap interval.
        slope: the least-squares slope of log(optimal lr) on log(B) over B > B_noise (the Adam law tends to
            -1/2); NaN with fewer than 2 such batch sizes.
        slope_ci: its t-interval (needs at least 3 batch sizes past B_noise; NaNs otherwise).
        n_above: batch sizes past B_noise with an optimal lr.
        message: the evidence in one sentence.
    """

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
    """Everything about one stage (target loss).

    Attributes:
        target_loss: the stage's target loss.
        rows: one :class:`BatchOptimum` per batch size, ascending.
        grid: the mean loss decrease on the (lr x batch size) grid.
        b_noise_fit: Eq 22 on the (B, S(B)) points (:class:`surge.fit.BNoiseFit`); None when too few.
        eps_max_fits: Eq 23 (adam) and Eq 24 (sgd, alpha 1 and 0.5) at the Eq 22 B_noise; empty without one.
        law_comparison: the laws fitted at the Eq 22 B_noise (with B_noise free if there is none); None when
            too few points.
        law_comparison_free: the laws fitted with B_noise free; None with fewer than 4 points.
        surge_fit: the Adam law (Eq 2) fitted to the optimal lrs alone (B_noise from the peak); None with
            fewer than 3 batch sizes or when the fit overflowed.
        falls: the verdict on the fall of the optimal lr past B_noise.
        n_trials: trials at this stage (all statuses).
        n_used: trials whose loss decrease entered the means.
        n_diverged: trials counted as diverged at this stage.
        n_censored: trials that did not reach the target.
        n_failed: trials that raised.
        messages: what went wrong or is worth knowing, one sentence each.
        b_noise_fit_other: Eq 22 with the other S(B) rule than ``settings.steps_rule``; None when too few.
        b_noise_jackknife: the bias-corrected B_noise and its interval over rounds; None without one.
        selection_bias: :class:`surge.analysis.selection.SelectionBias` per batch size (scratch trials);
            empty when not measured.
    """

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
        """The Eq 22 B_noise (batch-size units); inf when above every batch size, NaN without a fit."""
        f = self.b_noise_fit
        return f.b_noise if f is not None and f.success else math.nan

    @property
    def b_noise_ci(self) -> Interval:
        """The Eq 22 B_noise's interval; NaNs without a successful fit."""
        f = self.b_noise_fit
        return f.b_noise_ci if f is not None and f.success else _NAN_CI

    @property
    def eps_max(self) -> dict[str, float]:
        """eps_max per law name ("adam", "sgd(alpha=1)", "sgd(alpha=0.5)"); NaN where not fitted."""
        got = {f.name: f.eps_max for f in self.eps_max_fits}
        return {name: got.get(name, math.nan) for name in (law.name for law in EPS_LAWS)}

    @property
    def eps_max_ci(self) -> dict[str, Interval]:
        """The interval of eps_max per law name (as :attr:`eps_max`); NaNs where not fitted."""
        got = {f.name: f.eps_max_ci for f in self.eps_max_fits}
        return {name: got.get(name, _NAN_CI) for name in (law.name for law in EPS_LAWS)}

    @property
    def best_law(self) -> str | None:
        """The name of the law the comparison ranks first (lowest AICc); None without a comparison."""
        return self.law_comparison.best.name if self.law_comparison is not None else None

    def eps_max_fit(self, name: str) -> EpsMaxFit | None:
        """The eps_max fit (Eq 23 / 24) of one law.

        Args:
            name: the law's name: ``"adam"``, ``"sgd(alpha=1)"`` or ``"sgd(alpha=0.5)"``.

        Returns:
            EpsMaxFit | None: the fit of that law; None when there is none (no Eq 22 B_noise, too few
            points, or an unknown name).
        """
        for f in self.eps_max_fits:
            if f.name == name:
                return f
        return None

    def fit_points(self, lr_estimate: str = "grid") -> tuple[np.ndarray, np.ndarray]:
        """The (batch size, optimal lr) points the fits use.

        Args:
            lr_estimate: which optimal lr: ``"grid"`` (default), ``"refined"`` (the vertex where there is
                one, else the grid value) or ``"fitted"``; any other value reads as ``"grid"`` (not checked).

        Returns:
            tuple[np.ndarray, np.ndarray]: float arrays (n,) of batch sizes and optimal learning rates, for
            the batch sizes whose estimate is finite, ascending in B.
        """
        return _lr_points(self.rows, lr_estimate)

    def to_dict(self) -> dict:
        """The stage as JSON-ready values (:func:`surge.analysis.serialize.stage_to_dict`).

        Returns:
            dict[str, Any]: the stage's numbers, NaN and inf as None, with an empty ``files`` list.
        """
        from surge.analysis.serialize import stage_to_dict

        return stage_to_dict(self)


@dataclass(frozen=True)
class BNoiseTrend:
    """B_noise against the target loss: it should grow as the target falls (training progresses).

    Attributes:
        target_loss: the stages' target losses, descending: training progresses along the tuple.
        b_noise: the Eq 22 B_noise per stage; NaN where the stage's fit failed.
        b_noise_ci: its interval per stage.
        spearman_rho: the rank correlation of B_noise with the target over the stages with an estimate
            (negative when B_noise grows; with 2 stages the sign of the change); NaN with fewer than 2.
        grows: True for ``"grows"``, False for ``"does not grow"``, None for ``"inconclusive"`` /
            ``"untestable"``.
        message: the evidence in one sentence.
        verdict: ``"grows"``, ``"does not grow"``, ``"inconclusive"`` (the intervals overlap) or
            ``"untestable"`` (fewer than 2 stages with a B_noise estimate).
    """

    target_loss: tuple[float, ...]  # descending: training progresses along the tuple
    b_noise: tuple[float, ...]  # NaN where the stage's fit failed
    b_noise_ci: tuple[Interval, ...]
    spearman_rho: float  # rank correlation of B_noise with the target (negative when B_noise grows)
    grows: bool | None  # True: "grows", False: "does not grow", None: "inconclusive" / "untestable"
    message: str
    verdict: str = "untestable"  # "grows", "does not grow", "inconclusive" (the intervals overlap) or "untestable"


@dataclass(frozen=True)
class SweepAnalysis:
    """The analysis of one optimizer configuration over its stages.

    Attributes:
        config: the label of the configuration (workload | optimizer(betas) | unit).
        workload: the workload's name.
        optimizer: the optimizer's name.
        betas: (beta1, beta2), or None when the trials do not record them.
        batch_unit: what a batch size counts: ``"examples"``, ``"tokens"`` or ``"sequences"``.
        extra_steps: N, the steps after the target over which the decrease is measured (NaN if unknown or
            mixed).
        stages: one :class:`StageAnalysis` per stage, in descending target loss.
        trend: B_noise against the target loss.
        n_trials: distinct trials of this configuration (with the N analysed).
        n_failed: those that failed.
        settings: how the analysis was asked to work.
        messages: what is worth knowing about the whole analysis, one sentence each.
    """

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
        """The analysis as JSON-ready values: the ``surge analyze --json`` object without the report's files.

        Returns:
            dict[str, Any]: :func:`surge.analysis.serialize.analysis_to_dict` of this analysis (NaN and inf
            as None, empty ``files``).
        """
        from surge.analysis.serialize import analysis_to_dict

        return analysis_to_dict(self)

    def stage(self, target_loss: float) -> StageAnalysis:
        """The analysis of one stage.

        Args:
            target_loss: the stage's target loss, matched within a relative 1e-9 (absolute 1e-12).

        Returns:
            StageAnalysis: the stage with that target.

        Raises:
            SurgeError: no stage has that target loss (the message lists them).
        """
        for s in self.stages:
            if math.isclose(s.target_loss, float(target_loss), rel_tol=1e-9, abs_tol=1e-12):
                return s
        raise SurgeError(
            f"no stage with target loss {target_loss!r}; the stages are "
            + ", ".join(f"{s.target_loss:g}" for s in self.stages)
        )
