"""The analysis report: Markdown and one self-contained HTML page (figures embedded as base64 PNG).

Per stage it states B_noise (Eq 22) with its interval, eps_max (Eq 23 / 24), the law comparison, whether
the optimal learning rate falls past B_noise (with the intervals that decide it), and the counts of
diverged, censored and failed trials, with a sentence for everything that could not be estimated.

Typical use (what ``surge analyze`` does)::

    from surge.analysis import analyze, load_store
    from surge.report import write_report
    files = write_report(analyze(load_store("sweep.db")), "analysis/")

:func:`summary_dict` gives the same content as one JSON-ready dict (the ``--json`` output).
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from surge._json import to_jsonable
from surge.analysis import EPS_LAWS, StageAnalysis, SweepAnalysis

_EPS_TITLES = {
    "adam": "Adam (Eq 23)",
    "sgd(alpha=1)": "SGD, alpha = 1 (Eq 24)",
    "sgd(alpha=0.5)": "SGD, alpha = 0.5 (Eq 24)",
}
_VERDICT = {
    "yes": "yes",
    "no": "no",
    "inconclusive": "inconclusive",
    "untestable": "cannot tell",
}


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote."""

    markdown: Path
    html: Path
    json: Path
    figures: dict[str, list[Path]]  # "stage_<t>" and "b_noise_vs_target" -> [png, pdf]

    def stage_files(self, target_loss: float) -> list[Path]:
        from surge.plots.sweep_figures import stage_stem

        return list(self.figures.get(stage_stem(target_loss), []))

    def all(self) -> list[Path]:
        return [self.markdown, self.html, self.json] + [p for ps in self.figures.values() for p in ps]


# ---- numbers for people ------------------------------------------------------------------------


def _f(x, digits: int = 4) -> str:
    if x is None:
        return "-"
    x = float(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def _ci(ci, digits: int = 4) -> str:
    if ci is None or not all(math.isfinite(float(v)) for v in ci):
        return "n/a"
    return f"[{_f(ci[0], digits)}, {_f(ci[1], digits)}]"


def _pct(c: float) -> str:
    return f"{c:.0%}"


# ---- a small document model rendered to Markdown and HTML ---------------------------------------

# blocks: ("h", level, text) ("p", text) ("ul", [items]) ("table", header, rows) ("img", key, caption)


def _stage_blocks(a: SweepAnalysis, st: StageAnalysis) -> list[tuple]:
    conf = _pct(a.settings.confidence)
    unit = a.batch_unit
    out: list[tuple] = [("h", 2, f"Stage: target loss {st.target_loss:g}")]
    from surge.plots.sweep_figures import stage_stem

    out.append(
        (
            "img",
            stage_stem(st.target_loss),
            f"Left: mean loss decrease over the (batch size, learning rate) grid at target {st.target_loss:g}, "
            "optimal lr per batch size (stars, with bootstrap intervals), fitted Adam and SGD laws and B_noise. "
            "Right: the Eq 22 fit of 1/S against 1/E.",
        )
    )
    reached_none = st.n_used == 0 and not any(math.isfinite(r.steps) for r in st.rows)
    if reached_none:
        out.append(("p", f"**Nothing to estimate at this stage.** {st.messages[0] if st.messages else ''}"))
    fit = st.b_noise_fit
    if fit is not None and fit.success:
        out.append(
            (
                "p",
                f"**B_noise (Eq 22)** = {_f(fit.b_noise)} {unit}, {conf} interval {_ci(fit.b_noise_ci)}; "
                f"S_min = {_f(fit.s_min)} steps, E_min = {_f(fit.e_min)} {unit}; R² = {_f(fit.r_squared)} "
                f"on {fit.n_points} batch sizes ({fit.method} fit).",
            )
        )
    elif fit is not None:
        out.append(("p", f"**B_noise (Eq 22)**: the fit failed: {fit.message}."))
    elif not reached_none:
        out.append(("p", "**B_noise (Eq 22)**: not estimated: fewer than 3 batch sizes have S(B)."))
    if st.eps_max_fits:
        parts = [f"{_EPS_TITLES[name]} {_f(st.eps_max[name])} {_ci(st.eps_max_ci[name])}" for name, _, _ in EPS_LAWS]
        out.append(
            (
                "p",
                f"**eps_max** at that B_noise ({conf} intervals; mean over batch sizes of the inverted law): "
                + "; ".join(parts)
                + ".",
            )
        )
    elif not reached_none:
        out.append(("p", "**eps_max**: not estimated (needs B_noise and at least 2 batch sizes with an optimal lr)."))
    comp = st.law_comparison
    if comp is not None:
        how = f"B_noise fixed at {_f(comp.b_noise_given)} (Eq 22)" if comp.b_noise_given is not None else "B_noise free"
        out.append(
            (
                "p",
                f"**Law comparison** (least squares in log lr, {how}, lowest AIC wins): best is **{comp.best.name}**.",
            )
        )
        best_aic = comp.best.aic
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
                    _f(lf.aic, 4),
                    _f(lf.aic - best_aic, 3),
                ]
            )
        out.append(("table", ["law", "eps_max", "B_noise", "alpha", "k", "RMS log residual", "AIC", "ΔAIC"], rows))
        free = st.law_comparison_free
        if free is not None and comp.b_noise_given is not None:
            out.append(
                (
                    "p",
                    f"With B_noise free for every law the best is **{free.best.name}** "
                    f"(its B_noise {_f(free.best.params.get('b_noise'))}).",
                )
            )
    if st.surge_fit is not None and st.surge_fit.success:
        sf = st.surge_fit
        out.append(
            (
                "p",
                f"The Adam law fitted to the optimal learning rates alone puts the peak at "
                f"B = {_f(sf.b_noise)} {conf} {_ci(sf.b_noise_ci)}, eps_max = {_f(sf.eps_max)} {_ci(sf.eps_max_ci)}.",
            )
        )
    fl = st.falls
    out.append(("p", f"**Does the optimal learning rate fall past B_noise?** {_VERDICT[fl.verdict]}: {fl.message}."))
    out.append(
        (
            "p",
            f"**Trials at this stage**: {st.n_trials} in all; {st.n_used} gave a loss decrease; "
            f"{st.n_diverged} diverged (before the target, or in the N steps after it); {st.n_censored} censored "
            f"(did not reach the target within the budget); {st.n_failed} failed. None of these is averaged in.",
        )
    )
    header = [
        "B",
        "optimal lr",
        f"{conf} interval",
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
    out.append(("table", header, rows))
    if st.messages:
        out.append(("p", "**Messages**"))
        out.append(("ul", list(st.messages)))
    return out


def report_blocks(analysis: SweepAnalysis) -> list[tuple]:
    """The report as a list of blocks (headings, paragraphs, tables, figures) in reading order."""
    a = analysis
    conf = _pct(a.settings.confidence)
    s = a.settings
    n = f"{a.extra_steps:g}" if math.isfinite(a.extra_steps) else "N"
    blocks: list[tuple] = [("h", 1, f"Sweep analysis: {a.config}")]
    blocks.append(
        (
            "p",
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
                _f(st.b_noise),
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
    blocks.append(("h", 2, "Summary"))
    blocks.append(("table", head, rows))
    blocks.append(("p", f"**B_noise across stages**: {a.trend.message}."))
    blocks.append(("img", "b_noise_vs_target", "B_noise (Eq 22) with its interval against the target loss."))
    blocks.append(("h", 2, "How the numbers are made"))
    blocks.append(
        (
            "ul",
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
                "B_noise: Eq 22, least squares of 1/S on 1/E (slope -B_noise, intercept 1/S_min). eps_max: Eq 23 "
                "(Adam) and "
                "Eq 24 (SGD, alpha 1 and 0.5), the mean over batch sizes of the inverted law at that B_noise. The law "
                "comparison fits each law by least squares in log lr and ranks them by AIC.",
                "'Does the lr fall past B_noise': yes when the optimal lr at the largest batch size past both B_noise "
                "and the peak has an interval entirely below the peak's; inconclusive when the intervals overlap.",
            ],
        )
    )
    if a.messages:
        blocks.append(("p", "**Messages**"))
        blocks.append(("ul", list(a.messages)))
    for st in a.stages:
        blocks.extend(_stage_blocks(a, st))
    return blocks


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(
    analysis: SweepAnalysis, figures: dict[str, list[Path]] | None = None, *, base: Path | None = None
) -> str:
    """The report as Markdown; figures are linked by path (relative to ``base`` when given)."""
    lines: list[str] = []
    for block in report_blocks(analysis):
        kind = block[0]
        if kind == "h":
            lines += ["#" * block[1] + " " + block[2], ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in block[1]] + [""]
        elif kind == "table":
            header, rows = block[1], block[2]
            lines.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            lines.append("|" + "|".join("---" for _ in header) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            paths = (figures or {}).get(block[1])
            if paths:
                png = Path(paths[0])
                link = png.relative_to(base) if base is not None and png.is_relative_to(base) else png
                pdf = Path(paths[1]).name if len(paths) > 1 else None
                lines += [f"![{block[2]}]({link.as_posix()})", ""]
                lines += [f"*{block[2]}*" + (f" (PDF: `{pdf}`)" if pdf else ""), ""]
    return "\n".join(lines).rstrip() + "\n"


def _md_inline_to_html(text: str) -> str:
    """Escape, then turn **bold** into <strong>."""
    parts = html.escape(str(text)).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1200px;
margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.3em}h2{font-size:1.3em;margin-top:2em;
border-bottom:1px solid #eee;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}th,td{border:1px solid #ccc;padding:.25em .55em;
text-align:right;vertical-align:top}th{background:#f3f3f3}td:last-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
"""


def render_html(analysis: SweepAnalysis, figures: dict[str, list[Path]] | None = None) -> str:
    """The report as one self-contained HTML page: the PNG figures are embedded as base64 data URIs."""
    body: list[str] = []
    for block in report_blocks(analysis):
        kind = block[0]
        if kind == "h":
            body.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
        elif kind == "p":
            body.append(f"<p>{_md_inline_to_html(block[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_md_inline_to_html(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{_md_inline_to_html(c)}</td>" for c in row) + "</tr>" for row in block[2]
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            paths = (figures or {}).get(block[1])
            if paths:
                data = base64.b64encode(Path(paths[0]).read_bytes()).decode("ascii")
                body.append(
                    f'<figure><img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{html.escape(block[2])}</figcaption></figure>"
                )
    title = html.escape(f"surge analysis: {analysis.config}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


# ---- JSON --------------------------------------------------------------------------------------


def stage_dict(st: StageAnalysis, files: list[Path] | None = None) -> dict[str, Any]:
    """One stage as a JSON-ready dict (NaN -> None)."""
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
        "eps_max": st.eps_max,
        "eps_max_ci": {k: list(v) for k, v in st.eps_max_ci.items()},
        "batch_size": [r.batch_size for r in rows],
        "optimal_lr": [r.optimal_lr for r in rows],
        "optimal_lr_ci": [list(r.optimal_lr_ci) for r in rows],
        "refined_lr": [r.refined_lr for r in rows],
        "refined_lr_ci": [list(r.refined_lr_ci) for r in rows],
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


def summary_dict(analysis: SweepAnalysis, files: ReportFiles | None = None) -> dict[str, Any]:
    """The whole analysis as one JSON-ready dict: the ``surge analyze --json`` object."""
    a = analysis
    stages = [stage_dict(st, files.stage_files(st.target_loss) if files is not None else None) for st in a.stages]
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


# ---- writing -----------------------------------------------------------------------------------


def write_report(analysis: SweepAnalysis, out_dir: str | Path, *, normalize: bool = False) -> ReportFiles:
    """Write the figures (PNG + PDF), ``report.md``, ``report.html`` (self-contained) and ``analysis.json``.

    ``normalize`` is passed to the heatmaps (each batch size's column divided by its best decrease).
    """
    from surge.plots.sweep_figures import save_sweep_figures

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = save_sweep_figures(analysis, out, normalize=normalize)
    md = out / "report.md"
    md.write_text(render_markdown(analysis, figures, base=out), encoding="utf-8")
    page = out / "report.html"
    page.write_text(render_html(analysis, figures), encoding="utf-8")
    js = out / "analysis.json"
    files = ReportFiles(markdown=md, html=page, json=js, figures=figures)
    js.write_text(json.dumps(summary_dict(analysis, files), indent=1) + "\n", encoding="utf-8")
    return files
