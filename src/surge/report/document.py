"""The report's content as a small document model: headings, paragraphs, bullet lists, tables and
figures in reading order, built from an analysis; the renderers (:mod:`surge.report.render`) draw it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

from surge._format import fmt, fmt_ci
from surge.analysis import EPS_LAWS, StageAnalysis, SweepAnalysis


@dataclass(frozen=True)
class Heading:
    """A heading.

    Attributes:
        level: 1 for the title, 2 for a section, and so on.
        text: the heading's text (plain).
    """

    level: int  # 1 = the title
    text: str


@dataclass(frozen=True)
class Paragraph:
    """A paragraph.

    Attributes:
        text: the paragraph's text; ``**bold**`` is the only markup.
    """

    text: str  # **bold** is the only markup


@dataclass(frozen=True)
class Bullets:
    """A bullet list.

    Attributes:
        items: one string per bullet (``**bold**`` allowed).
    """

    items: list[str]


@dataclass(frozen=True)
class Table:
    """A table of text cells.

    Attributes:
        header: the column titles.
        rows: one list of cells per row, as long as ``header``.
    """

    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure:
    """A saved figure, placed by key.

    Attributes:
        key: which saved figure: ``"stage_<t>"`` or ``"b_noise_vs_target"`` (a key of the renderers'
            ``figures``).
        caption: the figure's caption.
    """

    key: str  # "stage_<t>" or "b_noise_vs_target": which saved figure
    caption: str


Block = Union[Heading, Paragraph, Bullets, Table, Figure]

_EPS_TITLES = {
    "adam": "Adam (Eq 23)",
    "sgd(alpha=1)": "SGD, alpha = 1 (Eq 24)",
    "sgd(alpha=0.5)": "SGD, alpha = 0.5 (Eq 24)",
}
_VERDICT = {
    "yes": "yes",
    "no": "no",
    "inconclusive": "inconclusive",
    "untestable": "untestable",
}


# ---- numbers for people ------------------------------------------------------------------------


def _f(x, digits: int = 4) -> str:
    return fmt(x, digits, nan="n/a")


def _ci(ci, digits: int = 4) -> str:
    return fmt_ci(ci, digits, missing="n/a")


def _pct(c: float) -> str:
    return f"{c:.0%}"


# ---- the blocks ----------------------------------------------------------------------------------


def _stage_blocks(a: SweepAnalysis, st: StageAnalysis) -> list[Block]:
    conf = _pct(a.settings.confidence)
    unit = a.batch_unit
    out: list[Block] = [Heading(2, f"Stage: target loss {st.target_loss:g}")]
    from surge.plots.sweep_figures import stage_stem

    out.append(
        Figure(
            stage_stem(st.target_loss),
            f"Left: mean loss decrease over the (batch size, learning rate) grid at target {st.target_loss:g}, "
            "optimal lr per batch size (stars, with bootstrap intervals), fitted Adam and SGD laws and B_noise. "
            "Right: the Eq 22 fit of 1/S against 1/E.",
        )
    )
    reached_none = st.n_used == 0 and not any(math.isfinite(r.steps) for r in st.rows)
    if reached_none:
        out.append(Paragraph(f"**Nothing to estimate at this stage.** {st.messages[0] if st.messages else ''}"))
    fit = st.b_noise_fit
    if fit is not None and fit.success and math.isinf(fit.b_noise):
        out.append(Paragraph(f"**B_noise (Eq 22)** > {_f(fit.b_noise_lower_bound)} {unit}: {fit.message}."))
    elif fit is not None and fit.success:
        out.append(
            Paragraph(
                f"**B_noise (Eq 22)** = {_f(fit.b_noise)} {unit}, {conf} interval {_ci(fit.b_noise_ci)}; "
                f"S_min = {_f(fit.s_min)} steps, E_min = {_f(fit.e_min)} {unit}; R² = {_f(fit.r_squared)} "
                f"on {fit.n_points} batch sizes ({fit.method} fit).",
            )
        )
    elif fit is not None:
        out.append(Paragraph(f"**B_noise (Eq 22)**: the fit failed: {fit.message}."))
    elif not reached_none:
        out.append(Paragraph("**B_noise (Eq 22)**: not estimated: fewer than 2 batch sizes have S(B)."))
    if st.eps_max_fits:
        parts = [
            f"{_EPS_TITLES[name]} {_f(st.eps_max[name])} {_ci(st.eps_max_ci[name])}"
            for name in (law.name for law in EPS_LAWS)
        ]
        out.append(
            Paragraph(
                f"**eps_max** at that B_noise ({conf} intervals; mean over batch sizes of the inverted law): "
                + "; ".join(parts)
                + ".",
            )
        )
    elif not reached_none:
        out.append(
            Paragraph("**eps_max**: not estimated (needs B_noise and at least 2 batch sizes with an optimal lr).")
        )
    comp = st.law_comparison
    if comp is not None:
        how = f"B_noise fixed at {_f(comp.b_noise_given)} (Eq 22)" if comp.b_noise_given is not None else "B_noise free"
        out.append(
            Paragraph(
                f"**Law comparison** (least squares in log lr, {how}, lowest AICc wins): best is **{comp.best.name}**.",
            )
        )
        best_aic = comp.best.aicc
        rows = []
        for lf in comp.laws:
            rows.append(
                [
                    ("**" + lf.name + "**") if lf is comp.best else lf.name,
                    _f(lf.params.get("eps_max")),
                    _f(lf.params.get("b_noise")),
                    _f(lf.params.get("alpha")),
                    str(lf.n_params),
                    _f(lf.rms_log_residual, 3),
                    _f(lf.aicc, 4),
                    _f(lf.aicc - best_aic, 3),
                    lf.status,
                ]
            )
        out.append(
            Table(["law", "eps_max", "B_noise", "alpha", "k", "RMS log residual", "AICc", "ΔAICc", "status"], rows)
        )
        free = st.law_comparison_free
        if free is not None and comp.b_noise_given is not None:
            out.append(
                Paragraph(
                    f"With B_noise free for every law the best is **{free.best.name}** "
                    f"(its B_noise {_f(free.best.params.get('b_noise'))}).",
                )
            )
    if st.surge_fit is not None and st.surge_fit.success:
        sf = st.surge_fit
        out.append(
            Paragraph(
                f"The Adam law fitted to the optimal learning rates alone puts the peak at "
                f"B = {_f(sf.b_noise)} {conf} {_ci(sf.b_noise_ci)}, eps_max = {_f(sf.eps_max)} {_ci(sf.eps_max_ci)}.",
            )
        )
    fl = st.falls
    out.append(
        Paragraph(f"**Does the optimal learning rate fall past B_noise?** {_VERDICT[fl.verdict]}: {fl.message}.")
    )
    out.append(
        Paragraph(
            f"**Trials at this stage**: {st.n_trials} in all; {st.n_used} gave a loss decrease; "
            f"{st.n_diverged} diverged (before the target, or in the N steps after it); {st.n_censored} censored "
            f"(did not reach the target within the budget); {st.n_failed} failed. None of these is averaged in.",
        )
    )
    fitted = any(math.isfinite(r.fitted_lr) for r in st.rows)
    header = [
        "B",
        "optimal lr",
        f"{conf} interval",
        *([f"fitted lr [{conf}]", "width"] if fitted else []),
        "refined lr",
        "best decrease",
        "S(B)",
        "E(B)",
        "rounds",
        "used",
        "diverged",
        "censored",
        "failed",
        "note",
    ]
    rows = []
    for r in st.rows:
        ties = f" (tie of {len(r.tied_lrs)})" if len(r.tied_lrs) > 1 else ""
        edge = " (grid edge)" if r.at_grid_edge else ""
        rows.append(
            [
                str(r.batch_size),
                _f(r.optimal_lr) + ties + edge,
                _ci(r.optimal_lr_ci, 3),
                *(
                    [
                        _f(r.fitted_lr) + (" (flat)" if r.flat_optimum else "") + " " + _ci(r.fitted_lr_ci, 3),
                        f"{r.fitted_width:.2f}x" if math.isfinite(r.fitted_width) else "open",
                    ]
                    if fitted
                    else []
                ),
                _f(r.refined_lr),
                _f(r.best_decrease),
                _f(r.steps),
                _f(r.examples),
                str(r.n_rounds),
                str(r.n_used),
                str(r.n_diverged),
                str(r.n_censored),
                str(r.n_failed),
                r.note or "",
            ]
        )
    out.append(Table(header, rows))
    if fitted:
        out.append(
            Paragraph(
                "The fitted optimal lr is the maximum of a fit of the mean decrease over all learning rates "
                f"({', '.join(sorted({r.fit_model for r in st.rows if r.fit_model}))}), with a bootstrap "
                "interval over rounds; (flat): the best two grid points differ by less than their standard error."
            )
        )
    jk = st.b_noise_jackknife
    if jk is not None and math.isfinite(jk.b_noise_corrected):
        out.append(
            Paragraph(
                f"**B_noise, jackknife over rounds**: {_f(jk.b_noise_corrected)} {_ci(jk.b_noise_ci)} "
                f"(bias-corrected; the plug-in {_f(jk.b_noise)} is {_f(jk.bias_factor, 3)}x it, "
                f"{jk.n_rounds} rounds{'' if jk.trusted else '; too few rounds to trust this interval'})."
            )
        )
    if st.messages:
        out.append(Paragraph("**Messages**"))
        out.append(Bullets(list(st.messages)))
    return out


def _cannot_test(a: SweepAnalysis) -> str:
    """The report's first line when the sweep cannot test the paper's claim that the optimal lr falls past
    B_noise (every stage "untestable"), in plain words; "" when at least one stage can test it."""
    if not a.stages or any(st.falls.verdict != "untestable" for st in a.stages):
        return ""
    reasons = sorted({st.falls.message for st in a.stages})
    return (
        "**This sweep cannot test the paper's claim** that the optimal learning rate falls for batch sizes past "
        "B_noise: " + "; ".join(reasons) + "."
    )


def report_blocks(analysis: SweepAnalysis) -> list[Block]:
    """The report as a list of blocks (headings, paragraphs, tables, figures) in reading order.

    Args:
        analysis: the analysis to report.

    Returns:
        list[Block]: the title, the summary table, the B_noise trend, how the numbers are made, the
        messages, then each stage's blocks.
    """
    a = analysis
    conf = _pct(a.settings.confidence)
    s = a.settings
    n = f"{a.extra_steps:g}" if math.isfinite(a.extra_steps) else "N"
    blocks: list[Block] = [Heading(1, f"Sweep analysis: {a.config}")]
    cannot = _cannot_test(a)
    if cannot:
        blocks.append(Paragraph(cannot))
    blocks.append(
        Paragraph(
            f"{a.n_trials} trials ({a.n_failed} failed) over {len(a.stages)} stage(s); batch sizes count "
            f"{a.batch_unit}; the loss decrease is measured over the {n} steps after each target. "
            f"Intervals: {conf}, bootstrap over rounds ({s.n_boot} resamples) for learning rates, "
            "t-intervals for the fits.",
        )
    )
    head = [
        "target loss",
        "B_noise",
        f"{conf} interval",
        "eps_max Adam",
        "eps_max SGD α=1",
        "eps_max SGD α=0.5",
        "best law",
        "lr falls past B_noise?",
        "diverged",
        "censored",
        "failed",
    ]
    rows = []
    for st in a.stages:
        em = st.eps_max
        rows.append(
            [
                f"{st.target_loss:g}",
                (
                    f"> {_f(st.b_noise_fit.b_noise_lower_bound)}"
                    if math.isinf(st.b_noise) and st.b_noise_fit is not None
                    else _f(st.b_noise)
                ),
                _ci(st.b_noise_ci),
                _f(em["adam"]),
                _f(em["sgd(alpha=1)"]),
                _f(em["sgd(alpha=0.5)"]),
                st.best_law or "n/a",
                _VERDICT[st.falls.verdict],
                str(st.n_diverged),
                str(st.n_censored),
                str(st.n_failed),
            ]
        )
    blocks.append(Heading(2, "Summary"))
    blocks.append(Table(head, rows))
    blocks.append(Paragraph(f"**B_noise across stages**: {a.trend.message}."))
    blocks.append(Figure("b_noise_vs_target", "B_noise (Eq 22) with its interval against the target loss."))
    blocks.append(Heading(2, "How the numbers are made"))
    blocks.append(
        Bullets(
            [
                "Optimal learning rate per batch size: the grid learning rate with the largest mean loss decrease over "
                "rounds (ties go to the smallest learning rate); its interval is the bootstrap over rounds of that "
                "argmax. "
                f"The refined learning rate is the vertex of a quadratic in log lr through the best point and "
                f"{s.refine_halfwidth} neighbour(s) on each side; the fits use the {s.lr_estimate} estimate.",
                "Failed trials are left out. Diverged trials (including those whose N steps after the target blew "
                "up, a NaN decrease) and censored trials (the target not reached within the budget) are counted and "
                "never averaged in. A learning rate with more than "
                f"{s.max_diverged_fraction:.0%} of its trials diverged is not a candidate for the optimum.",
                "S(B), E(B): the fewest "
                + (
                    "mean steps over learning rates at which every trial reached the target"
                    if s.steps_statistic == "mean"
                    else "median steps over learning rates, censored and diverged trials counting as "
                    "infinitely many steps"
                )
                + "; E at the same learning rate.",
                "B_noise: Eq 22 on "
                + (
                    "those S(B)"
                    if s.steps_rule == "fewest"
                    else "S(B) at each batch size's optimal learning rate (the mean steps there, every trial reached)"
                )
                + ", "
                + (
                    "by least squares of 1/S on 1/E (slope -B_noise, intercept 1/S_min)"
                    if s.b_noise_method == "linear"
                    else "by nonlinear least squares of log S = log S_min + log(1 + B_noise/B)"
                )
                + "; the other S(B) rule's fit is shown beside it, and the leave-one-round-out jackknife gives a "
                "bias-corrected B_noise with its interval. eps_max: Eq 23 "
                "(Adam) and "
                "Eq 24 (SGD, alpha 1 and 0.5), the mean over batch sizes of the inverted law at that B_noise. The law "
                "comparison fits each law by least squares in log lr and ranks them by AICc.",
                "'Does the lr fall past B_noise': yes when the optimal lr at the largest batch size past both B_noise "
                "and the peak has an interval entirely below the peak's; inconclusive when the intervals overlap; "
                "untestable when there is no B_noise, no batch size past it, or the optima it rests on are the "
                "largest learning rate tried (only lower bounds). B_noise grows across stages only when the first "
                "and last stages' intervals are apart.",
            ]
        )
    )
    if a.messages:
        blocks.append(Paragraph("**Messages**"))
        blocks.append(Bullets(list(a.messages)))
    for st in a.stages:
        blocks.extend(_stage_blocks(a, st))
    return blocks
