"""The analysis report: Markdown and one self-contained HTML page (figures embedded as base64 PNG).

Per stage it states B_noise (Eq 22) with its interval, eps_max (Eq 23 / 24), the law comparison, whether
the optimal learning rate falls past B_noise (with the intervals that decide it), and the counts of
diverged, censored and failed trials, with a sentence for everything that could not be estimated.

Typical use (what ``surge analyze`` does)::

    from surge.analysis import analyze, load_store
    from surge.report import write_report
    files = write_report(analyze(load_store("sweep.db")), "analysis/")

The content is a document model (:mod:`surge.report.document`) drawn by two renderers
(:mod:`surge.report.render`); the JSON is the analysis's own (:func:`surge.analysis.serialize.analysis_to_dict`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from surge.analysis import SweepAnalysis
from surge.analysis.serialize import analysis_to_dict, stage_to_dict
from surge.report.document import report_blocks
from surge.report.render import render_html, render_markdown

summary_dict = analysis_to_dict  # the ``--json`` object (the analysis's JSON, with the report's files)
stage_dict = stage_to_dict

__all__ = [
    "ReportFiles",
    "render_html",
    "render_markdown",
    "report_blocks",
    "stage_dict",
    "summary_dict",
    "write_report",
]


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote.

    Attributes:
        markdown: the path of ``report.md``.
        html: the path of ``report.html`` (self-contained).
        json: the path of ``analysis.json``.
        figures: figure key -> its files [png, pdf]; keys ``"stage_<t>"`` (one per stage) and
            ``"b_noise_vs_target"``; a figure that could not be drawn is absent.
        figure_errors: one sentence per figure that could not be drawn (left out).
    """

    markdown: Path
    html: Path
    json: Path
    figures: dict[str, list[Path]]  # "stage_<t>" and "b_noise_vs_target" -> [png, pdf]
    figure_errors: tuple[str, ...] = ()  # one sentence per figure that could not be drawn (left out)

    def stage_files(self, target_loss: float) -> list[Path]:
        """The figure files of one stage.

        Args:
            target_loss: the stage's target loss (its figure's key is
                :func:`surge.plots.sweep_figures.stage_stem` of it).

        Returns:
            list[Path]: the stage figure's [png, pdf]; empty when it was not drawn.
        """
        from surge.plots.sweep_figures import stage_stem

        return list(self.figures.get(stage_stem(target_loss), []))

    def all(self) -> list[Path]:
        """Every file written.

        Returns:
            list[Path]: ``report.md``, ``report.html``, ``analysis.json``, then every figure file.
        """
        return [self.markdown, self.html, self.json] + [p for ps in self.figures.values() for p in ps]


def write_report(analysis: SweepAnalysis, out_dir: str | Path, *, normalize: bool = False) -> ReportFiles:
    """Write the figures (PNG + PDF), ``report.md``, ``report.html`` (self-contained) and ``analysis.json``.

    ``normalize`` is passed to the heatmaps (each batch size's column divided by its best decrease).

    A figure that cannot be drawn is left out and named in :attr:`ReportFiles.figure_errors`; existing
    files of the same names are overwritten.

    Args:
        analysis: the analysis to report.
        out_dir: the output folder, created (with its parents) when missing.
        normalize: divide each batch size's column of the heatmaps by its best decrease; default False.

    Returns:
        ReportFiles: the paths written and the figures that could not be drawn.

    Raises:
        OSError: the folder or a file cannot be created or written.
    """
    from surge.plots.sweep_figures import save_sweep_figures

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    figures = save_sweep_figures(analysis, out, normalize=normalize, errors=errors)
    md = out / "report.md"
    md.write_text(render_markdown(analysis, figures, base=out), encoding="utf-8")
    page = out / "report.html"
    page.write_text(render_html(analysis, figures), encoding="utf-8")
    js = out / "analysis.json"
    files = ReportFiles(markdown=md, html=page, json=js, figures=figures, figure_errors=tuple(errors))
    js.write_text(json.dumps(analysis_to_dict(analysis, files), indent=1) + "\n", encoding="utf-8")
    return files
