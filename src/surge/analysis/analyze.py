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
  for the optimum (a learning rate that often diverges is not optimal, however well its survivors did);
  nor is one at which most trials (more than ``max(max_diverged_fraction, 0.5)``) gave no decrease,
  censored and diverged together: censored trials are handled like diverged ones for candidacy.
* S(B) with ``steps_statistic="mean"`` uses only learning rates at which every trial reached the target
  (a mean over the survivors of a censored cell would be too low); with ``"median"``, censored and
  diverged trials count as infinitely many steps, which is exact for the median while fewer than half
  are censored.

Why one module of ~440 lines: the rules above are one contract, and one function applies them per stage; the
parts with a job of their own (optimum, bnoise, fitted, verdict, selection) are already modules beside it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from surge._validation import check_array, check_choice, check_confidence, check_int, check_scalar
from surge.analysis._frame import select_config, tidy_frame
from surge.analysis.bnoise import STEPS_RULES, jackknife_b_noise, steps_points
from surge.analysis.fitted import FIT_MODELS
from surge.analysis.optimum import _batch_optimum, _stage_seed
from surge.analysis.results import (
    EPS_LAWS,
    AnalysisSettings,
    DecreaseGrid,
    EpsMaxFit,
    StageAnalysis,
    SweepAnalysis,
    _lr_points,
)
from surge.analysis.selection import selection_bias, selection_message
from surge.analysis.verdict import _fall_evidence, _trend
from surge.errors import SurgeError
from surge.fit import compare_laws, fit_b_noise, fit_eps_max, fit_surge


def _analyze_stage(
    stage_df: pd.DataFrame, target: float, batch_sizes: np.ndarray, st: AnalysisSettings
) -> StageAnalysis:
    lrs_all = np.sort(stage_df["lr"].unique())
    reached_rows = stage_df["reached"] & (stage_df["status"] != "failed")
    # branch trials (surge.engine.branch) reach every target the trunk reached but record no S
    steps_measured = not reached_rows.any() or bool(np.isfinite(stage_df.loc[reached_rows, "steps"]).any())
    rows, cols = [], []
    for b in batch_sizes:
        sub = stage_df[stage_df["batch_size"] == b]
        row, col = _batch_optimum(
            sub, int(b), lrs_all, st, _stage_seed(st.seed, target, int(b)), steps_measured=steps_measured
        )
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
    no_steps = n_reached > 0 and not steps_measured  # branch trials, or a table of final losses
    if no_steps:
        msgs.append(
            "these trials record no steps to a target (branch trials start from a checkpoint of the trunk; a table "
            "of final losses has none): no S(B), so no Eq 22 B_noise"
        )
    for r in rows:
        if r.note and (n_reached > 0 or "failed" in r.note):
            if no_steps and "S(B)" in r.note:
                continue
            msgs.append(f"B = {r.batch_size}: {r.note}")

    # Eq 22, with S(B) by the chosen rule; the other rule's fit beside it; the jackknife interval
    b_noise_fit = None
    opt_lrs = {r.batch_size: r.optimal_lr for r in rows}
    s_fewest = [(r.batch_size, r.steps) for r in rows if math.isfinite(r.steps)]
    s_optimal = sorted(steps_points(stage_df, "optimal", opt_lrs).items()) if steps_measured else []
    s_pts = s_fewest if st.steps_rule == "fewest" else s_optimal
    other_pts = s_optimal if st.steps_rule == "fewest" else s_fewest
    b_noise_other = None
    if len(other_pts) >= 2 and len({p[0] for p in other_pts}) >= 2:
        b_noise_other = fit_b_noise(
            [p[0] for p in other_pts], [p[1] for p in other_pts], method=st.b_noise_method, confidence=st.confidence
        )
    jackknife = None
    if steps_measured and n_reached > 0:
        jackknife = jackknife_b_noise(
            stage_df, st.steps_rule, opt_lrs, method=st.b_noise_method, confidence=st.confidence
        )
        if jackknife is not None and jackknife.message:
            msgs.append(f"B_noise jackknife: {jackknife.message}")
    if n_reached > 0 and not no_steps:
        if len(s_pts) >= 2 and len({p[0] for p in s_pts}) >= 2:
            b_noise_fit = fit_b_noise(
                [p[0] for p in s_pts], [p[1] for p in s_pts], method=st.b_noise_method, confidence=st.confidence
            )
            if not b_noise_fit.success:
                msgs.append(f"Eq 22 fit failed: {b_noise_fit.message}")
            elif b_noise_fit.message != "ok":
                msgs.append(f"Eq 22 fit: {b_noise_fit.message}")
        else:
            msgs.append(f"only {len(s_pts)} batch size(s) have S(B): the Eq 22 fit needs at least 2")
    b_noise = b_noise_fit.b_noise if b_noise_fit is not None and b_noise_fit.success else math.nan
    if math.isinf(b_noise):  # no loss of data efficiency: a lower bound, nothing to fix the laws at
        b_noise = math.inf

    # Eq 23 / 24 and the law comparison
    b, lr = _lr_points(rows_t, st.lr_estimate)
    eps_fits: list[EpsMaxFit] = []
    comparison = comparison_free = None
    surge = None
    n_pts, n_b = b.size, np.unique(b).size
    if n_reached > 0:
        if math.isfinite(b_noise) and n_pts >= 2 and n_b >= 2:
            for law in EPS_LAWS:
                eps_fits.append(fit_eps_max(b, lr, b_noise, law=law, confidence=st.confidence))
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
    if st.lr_estimate == "fitted":  # the verdict reads the fitted optimum and its interval
        fall_rows = tuple(dataclasses.replace(r, optimal_lr=r.fitted_lr, optimal_lr_ci=r.fitted_lr_ci) for r in rows_t)
    else:
        fall_rows = rows_t
    tried = grid.n_trials > 0  # (nL, nB)
    top_of_grid = frozenset(
        r.batch_size
        for j, r in enumerate(fall_rows)
        if math.isfinite(r.optimal_lr) and tried[:, j].any() and r.optimal_lr >= lrs_all[tried[:, j]].max()
    )
    lower_bound = b_noise_fit.b_noise_lower_bound if b_noise_fit is not None and b_noise_fit.success else math.nan
    verdict_b_noise = b_noise
    if math.isnan(b_noise) and surge is not None and surge.success:
        verdict_b_noise = surge.b_noise
        msgs.append(
            f"no Eq 22 B_noise, so the verdict on the fall uses the B_noise of the Adam law fitted to the optimal "
            f"learning rates ({surge.b_noise:.4g} [{surge.b_noise_ci[0]:.3g}, {surge.b_noise_ci[1]:.3g}])"
        )
    falls = _fall_evidence(
        fall_rows, verdict_b_noise, st.confidence, top_of_grid=top_of_grid, b_noise_lower_bound=lower_bound
    )
    return StageAnalysis(
        b_noise_fit_other=b_noise_other,
        b_noise_jackknife=jackknife,
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


# ---- entry point -------------------------------------------------------------------------------


def _one_measurement(df: pd.DataFrame, extra_steps: float | None, messages: list[str]) -> pd.DataFrame:
    """The trials measured one way: loss decreases over different N (extra steps) are never pooled.

    With several N in the frame, ``extra_steps`` picks one; by default the N with the most trials (ties to
    the larger N). ``messages`` gets a sentence saying which set was analysed and which were left out.
    """
    key = df["extra_steps"].fillna(-1.0)  # -1 stands for "N not recorded"
    counts = key.value_counts()
    name = lambda k: f"N = {k:g}" if k >= 0 else "N not recorded"  # noqa: E731
    if extra_steps is not None:
        want = check_scalar(extra_steps, "extra_steps", positive=True)
        hit = [k for k in counts.index if k >= 0 and math.isclose(k, want, rel_tol=1e-9)]
        if not hit:
            raise SurgeError(
                f"extra_steps {want:g} is not in the trials; they were measured with "
                + ", ".join(f"{name(k)} ({n} rows)" for k, n in counts.items())
            )
        chosen = hit[0]
    elif len(counts) == 1:
        return df
    else:
        chosen = max(counts.index, key=lambda k: (counts[k], k))
    if len(counts) > 1:
        others = ", ".join(f"{name(k)} ({counts[k]} rows)" for k in counts.index if k != chosen)
        messages.append(
            f"the trials were measured with different N (extra steps after each target); decreases over different "
            f"N are never pooled: this analysis uses {name(chosen)} ({counts[chosen]} rows) and leaves out {others}"
            + ("" if extra_steps is not None else "; pick another with --extra-steps")
        )
    return df[key == chosen]


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
    extra_steps: float | None = None,
    fit_model: str = "auto",
    steps_rule: str = "fewest",
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
    quadratic vertex where there is one, else the grid value) or ``"fitted"`` (the fitted optimum of
    :mod:`surge.analysis.fitted`, model ``fit_model``; the verdict on the fall past B_noise then reads it
    too). Every batch size reports the fitted optimum beside the grid argmax. ``steps_rule`` says which
    S(B) feeds Eq 22: ``"fewest"`` (fewest mean steps over learning rates) or ``"optimal"`` (the mean steps
    at the optimal learning rate, the paper's wording); the other rule's fit is reported beside it, and a
    leave-one-round-out jackknife gives a bias-corrected B_noise and interval (:mod:`surge.analysis.bnoise`).
    See the module docstring for the rules on failed, diverged and censored trials.

    Args:
        frame: the trials, one row per trial and stage: raw (a sweep store's ``trials_frame()``, a CSV /
            Parquet export, :func:`surge.analysis.synthetic_frame`, :func:`surge.analysis.table.table_frame`)
            or tidy (:func:`tidy_frame`).
        stages: target losses (nats, or the workload's loss unit) to analyse, a number or a sequence, each
            matched to a stage of the frame within a relative 1e-9; None (default): every stage. Stages are
            analysed in descending target loss.
        config: the configuration to analyse, as its label or its index in :func:`surge.analysis.configs`;
            None (default) when the frame holds one configuration.
        n_boot: bootstrap resamples of the rounds for the intervals of the optimal lr, an integer >= 0
            (0: no bootstrap interval); default 1000.
        seed: seed of the bootstrap (the resamples are seeded per stage and batch size from it).
        confidence: coverage of every interval, in (0, 1); default 0.95.
        max_diverged_fraction: in [0, 1]; a learning rate with a larger share of diverged (non-failed)
            trials is not a candidate for the optimum, nor one where more than ``max(max_diverged_fraction,
            0.5)`` diverged or were censored. Default 0.5.
        steps_statistic: how a (batch size, lr) cell's steps to the target are summarised for S(B):
            ``"mean"`` (default; only cells where every trial reached the target) or ``"median"``
            (censored and diverged trials count as infinitely many steps).
        lr_estimate: the optimal lr the fits use: ``"grid"`` (default), ``"refined"`` or ``"fitted"``.
        refine_halfwidth: grid candidates on each side of the best grid point used by the refinement, an
            integer >= 1; default 1.
        b_noise_method: the Eq 22 fit of :func:`surge.fit.fit_b_noise`: ``"linear"`` (default; 1/S on 1/E)
            or ``"nonlinear"`` (log S = log S_min + log(1 + B_noise / B)).
        extra_steps: N, the steps after the target over which the loss decrease was measured, > 0: picks
            the trials measured with this N when the frame holds several (decreases over different N are
            never pooled). None (default): the only N, or else the N with the most rows (ties to the larger).
        fit_model: the model of the fitted optimum (:data:`surge.analysis.fitted.FIT_MODELS`): ``"auto"``
            (default), ``"second-order"`` or ``"log-quadratic"``.
        steps_rule: which S(B) feeds Eq 22: ``"fewest"`` (default) or ``"optimal"``.

    Returns:
        SweepAnalysis: the configuration's label and settings, one :class:`StageAnalysis` per stage in
        descending target loss, the B_noise trend across stages and the messages.

    Raises:
        SurgeTypeError: ``frame`` is not a DataFrame; ``confidence`` or ``max_diverged_fraction`` is not a
            real number; a choice argument is not a string.
        SurgeError: ``n_boot`` not an integer >= 0; ``refine_halfwidth`` not an integer >= 1;
            ``confidence`` not in (0, 1); ``max_diverged_fraction`` not in [0, 1]; ``steps_statistic``,
            ``lr_estimate``, ``b_noise_method``, ``fit_model`` or ``steps_rule`` not one of its values;
            a frame that fails :func:`tidy_frame`; ``config`` missing, out of range or unknown
            (:func:`surge.analysis.select_config`); ``extra_steps`` not > 0 or not in the trials; ``stages``
            empty or naming a target loss the trials do not have.
    """
    n_boot = check_int(n_boot, "n_boot", minimum=0)
    refine_halfwidth = check_int(refine_halfwidth, "refine_halfwidth", minimum=1)
    confidence = check_confidence(confidence)
    mdf = check_scalar(max_diverged_fraction, "max_diverged_fraction", nonnegative=True)
    if mdf > 1:
        raise SurgeError(f"max_diverged_fraction must be in [0, 1], got {mdf}")
    settings = AnalysisSettings(
        n_boot=int(n_boot),
        seed=check_int(seed, "seed", minimum=0),
        confidence=confidence,
        max_diverged_fraction=mdf,
        steps_statistic=check_choice(steps_statistic, "steps_statistic", ("mean", "median")),
        lr_estimate=check_choice(lr_estimate, "lr_estimate", ("grid", "refined", "fitted")),
        refine_halfwidth=int(refine_halfwidth),
        b_noise_method=check_choice(b_noise_method, "b_noise_method", ("linear", "nonlinear")),
        fit_model=check_choice(fit_model, "fit_model", FIT_MODELS),
        steps_rule=check_choice(steps_rule, "steps_rule", STEPS_RULES),
    )
    df = select_config(tidy_frame(frame), config)
    messages: list[str] = []
    df = _one_measurement(df, extra_steps, messages)
    label = str(df["config"].iloc[0])
    all_targets = np.sort(df["target_loss"].unique())[::-1]
    if stages is None:
        chosen = all_targets
    else:
        req = np.atleast_1d(check_array(stages, "stages", min_size=0)).ravel()
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
    # the selection-bias diagnostic (scratch trials): each stage against the next higher target of the frame
    n_extra_all = df["extra_steps"].dropna().unique()
    if n_extra_all.size == 1:
        with_bias = []
        for st_res in stage_results:
            higher = all_targets[all_targets > st_res.target_loss]
            rows_sb: tuple = ()
            if higher.size:
                prev_t = higher.min()
                rows_sb = selection_bias(
                    df[np.isclose(df["target_loss"], prev_t, rtol=1e-12, atol=0)],
                    df[np.isclose(df["target_loss"], st_res.target_loss, rtol=1e-12, atol=0)],
                    float(n_extra_all[0]),
                )
            msg = selection_message(rows_sb)
            with_bias.append(
                dataclasses.replace(st_res, selection_bias=rows_sb, messages=st_res.messages + ((msg,) if msg else ()))
            )
        stage_results = tuple(with_bias)
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
