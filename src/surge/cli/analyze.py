"""``surge analyze``: a sweep store (or its CSV / Parquet export) -> optimal lrs, B_noise, eps_max, laws, figures,
a report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from surge.cli._output import console, emit_json, fmt, fmt_ci


def analyze(
    store: Path = typer.Option(
        ..., "--store", help="Sweep store (SQLite), or a .csv / .parquet export of it.", show_default=False
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Directory for the figures (PNG, PDF), report.md, report.html, analysis.json.",
        show_default=False,
    ),
    stage: Optional[list[float]] = typer.Option(
        None, "--stage", help="Target loss to analyse (repeat for several); all stages by default."
    ),
    config: Optional[str] = typer.Option(
        None, "--config", help="Configuration label or index, when the store holds several optimizer configurations."
    ),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples of the rounds."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    confidence: float = typer.Option(0.95, "--confidence", help="Coverage of the intervals."),
    max_diverged: float = typer.Option(
        0.5,
        "--max-diverged",
        help="A learning rate with a larger fraction of diverged trials is not a candidate for the optimum.",
    ),
    steps_statistic: str = typer.Option(
        "mean",
        "--steps",
        help="S(B): 'mean' (over learning rates where every "
        "trial reached the target) or 'median' (censored count as infinite).",
    ),
    lr_estimate: str = typer.Option(
        "grid",
        "--lr-estimate",
        help="Optimal lr the fits use: 'grid' (the paper's) or 'refined' (quadratic in log lr).",
    ),
    normalize: bool = typer.Option(
        False,
        "--normalize",
        help="Heatmap colours per batch size relative to its best decrease (the paper shows raw decreases).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Optimal lr per batch size, B_noise (Eq 22), eps_max (Eq 23/24), the law comparison, figures and a report."""
    from surge.analysis import analyze as run_analysis
    from surge.analysis import load_store
    from surge.report import summary_dict, write_report

    frame = load_store(store)
    result = run_analysis(
        frame,
        stages=stage,
        config=config,
        n_boot=n_boot,
        seed=seed,
        confidence=confidence,
        max_diverged_fraction=max_diverged,
        steps_statistic=steps_statistic,
        lr_estimate=lr_estimate,
    )
    files = write_report(result, out, normalize=normalize)
    if as_json:
        emit_json(summary_dict(result, files))
        return
    conf = f"{result.settings.confidence:.0%}"
    table = Table(title=f"{result.config}: {result.n_trials} trials ({result.n_failed} failed)")
    for col in ("target", f"B_noise [{conf}]", "eps_max adam", "best law", "falls past B_noise", "div / cens"):
        table.add_column(col, justify="right")
    for st in result.stages:
        table.add_row(
            fmt(st.target_loss),
            f"{fmt(st.b_noise)} {fmt_ci(st.b_noise_ci, 3)}",
            fmt(st.eps_max["adam"], 3),
            st.best_law or "-",
            st.falls.verdict,
            f"{st.n_diverged} / {st.n_censored}",
        )
    console.print(table)
    console.print(result.trend.message)
    for st in result.stages:
        for m in st.messages:
            console.print(f"[yellow]target {st.target_loss:g}:[/yellow] {m}", highlight=False)
    for m in result.messages:
        console.print(f"[yellow]note:[/yellow] {m}", highlight=False)
    console.print(
        f"report: {files.html}  (and {files.markdown.name}, {files.json.name}, "
        f"{sum(len(v) for v in files.figures.values())} figure files in {Path(out)})",
        highlight=False,
    )
