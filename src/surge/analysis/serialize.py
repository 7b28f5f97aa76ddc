"""The analysis as JSON: one shape for ``surge analyze --json``, ``analysis.json`` and every command that
embeds an analysis (``surge demo``, ``surge simulate training``). NaN and infinities become null."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from surge._json import to_jsonable
from surge.analysis.results import StageAnalysis, SweepAnalysis


def stage_to_dict(st: StageAnalysis, files: list[Path] | None = None) -> dict[str, Any]:
    """One stage as a JSON-ready dict (NaN -> None); ``files`` are its figure paths when a report drew them.

    Args:
        st: the stage's analysis.
        files: the stage's figure files (PNG, PDF) when a report drew them; None (default): none.

    Returns:
        dict[str, Any]: the stage's B_noise (Eq 22) and its fits, eps_max per law (Eq 23 / 24), per batch size
        the optimal, refined and fitted learning rates with intervals, S(B) and E(B), the law comparison,
        the verdict on the fall past B_noise, the counts, messages and ``files`` (strings); values passed
        through :func:`surge._json.to_jsonable` (NaN and inf become None).
    """
    fit = st.b_noise_fit
    laws = []
    if st.law_comparison is not None:
        for lf in st.law_comparison.laws:
            laws.append(
                {
                    "name": lf.name,
                    **lf.params,
                    "n_params": lf.n_params,
                    "rms_log_residual": lf.rms_log_residual,
                    "aic": lf.aic,
                    "aicc": lf.aicc,
                    "status": lf.status,
                    "message": lf.message,
                    "bic": lf.bic,
                    "success": lf.success,
                }
            )
    rows = st.rows
    d = {
        "target_loss": st.target_loss,
        "b_noise": st.b_noise,
        "b_noise_ci": list(st.b_noise_ci),
        "s_min": fit.s_min if fit is not None and fit.success else None,
        "e_min": fit.e_min if fit is not None and fit.success else None,
        "b_noise_fit": fit,
        "b_noise_fit_other": st.b_noise_fit_other,
        "b_noise_jackknife": st.b_noise_jackknife,
        "selection_bias": list(st.selection_bias),
        "eps_max": st.eps_max,
        "eps_max_ci": {k: list(v) for k, v in st.eps_max_ci.items()},
        "batch_size": [r.batch_size for r in rows],
        "optimal_lr": [r.optimal_lr for r in rows],
        "optimal_lr_ci": [list(r.optimal_lr_ci) for r in rows],
        "refined_lr": [r.refined_lr for r in rows],
        "refined_lr_ci": [list(r.refined_lr_ci) for r in rows],
        "fitted_lr": [r.fitted_lr for r in rows],
        "fitted_lr_ci": [list(r.fitted_lr_ci) for r in rows],
        "fitted_width": [r.fitted_width for r in rows],
        "fit_model": [r.fit_model for r in rows],
        "flat_optimum": [r.flat_optimum for r in rows],
        "fit_notes": [r.fit_note for r in rows],
        "best_decrease": [r.best_decrease for r in rows],
        "at_grid_edge": [r.at_grid_edge for r in rows],
        "steps": [r.steps for r in rows],
        "examples": [r.examples for r in rows],
        "n_rounds": [r.n_rounds for r in rows],
        "n_used": [r.n_used for r in rows],
        "n_diverged": [r.n_diverged for r in rows],
        "n_censored": [r.n_censored for r in rows],
        "n_failed": [r.n_failed for r in rows],
        "notes": [r.note for r in rows],
        "best_law": st.best_law,
        "laws": laws,
        "laws_b_noise": st.law_comparison.b_noise_given if st.law_comparison is not None else None,
        "best_law_free_b_noise": st.law_comparison_free.best.name if st.law_comparison_free is not None else None,
        "falls_past_b_noise": st.falls.verdict,
        "falls": st.falls,
        "counts": {
            "trials": st.n_trials,
            "used": st.n_used,
            "diverged": st.n_diverged,
            "censored": st.n_censored,
            "failed": st.n_failed,
        },
        "messages": list(st.messages),
        "files": [str(p) for p in (files or [])],
    }
    return to_jsonable(d)


def analysis_to_dict(analysis: SweepAnalysis, files=None) -> dict[str, Any]:
    """The whole analysis as one JSON-ready dict: the ``surge analyze --json`` object and ``analysis.json``.

    ``files`` (a :class:`surge.report.ReportFiles`) fills the ``files`` keys when a report was written.

    Args:
        analysis: the analysis of one configuration.
        files: the report's files (:class:`surge.report.ReportFiles`), or None (default) when no report was
            written: then every ``files`` key is empty.

    Returns:
        dict[str, Any]: the configuration, settings, one :func:`stage_to_dict` per stage, the B_noise trend,
        the messages and the files (``markdown``, ``html``, ``json``, ``b_noise_figure``); NaN and inf as
        None.
    """
    a = analysis
    stages = [stage_to_dict(st, files.stage_files(st.target_loss) if files is not None else None) for st in a.stages]
    out = {
        "config": a.config,
        "workload": a.workload,
        "optimizer": a.optimizer,
        "betas": list(a.betas) if a.betas is not None else None,
        "batch_unit": a.batch_unit,
        "extra_steps": a.extra_steps,
        "n_trials": a.n_trials,
        "n_failed": a.n_failed,
        "settings": a.settings,
        "stages": stages,
        "b_noise_trend": a.trend,
        "messages": list(a.messages),
        "files": {},
    }
    if files is not None:
        out["files"] = {
            "markdown": files.markdown,
            "html": files.html,
            "json": files.json,
            "b_noise_figure": files.figures.get("b_noise_vs_target", []),
        }
    return to_jsonable(out)
