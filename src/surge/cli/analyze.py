"""``surge analyze``: a sweep store (or its CSV / Parquet export) -> optimal lrs, B_noise, eps_max, laws, figures,
a report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from surge.cli._output import console, emit_json, fmt, fmt_ci


def analyze(
    store: Optional[Path] = typer.Option(
        None, "--store", help="Sweep store (SQLite), or a .csv / .parquet export of it.", show_default=False
    ),
    table: Optional[Path] = typer.Option(
        None,
        "--table",
        help="Instead of --store: a table with one row per run (.csv, .tsv, .parquet: a W&B, Ray Tune or Optuna "
        "export, or written by hand); name its columns with --lr-column, --batch-size-column, --loss-column.",
        show_default=False,
    ),
    lr_column: Optional[str] = typer.Option(None, "--lr-column", help="--table: the learning-rate column."),
    batch_size_column: Optional[str] = typer.Option(
        None, "--batch-size-column", help="--table: the batch-size column."
    ),
    loss_column: Optional[str] = typer.Option(
        None, "--loss-column", help="--table: the final or evaluation loss column (lower is better)."
    ),
    seed_column: Optional[str] = typer.Option(
        None, "--seed-column", help="--table: the seed column (runs of one seed form a round; intervals over seeds)."
    ),
    extra_steps: Optional[float] = typer.Option(
        None, "--extra-steps", help="Analyse the trials measured with this N (when the store holds several)."
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
        help="Optimal lr the fits and the verdict use: 'grid' (the paper's), 'refined' (quadratic in log lr "
        "around the best grid point) or 'fitted' (a fit over all learning rates, for branch sweeps).",
    ),
    steps_rule: str = typer.Option(
        "fewest",
        "--steps-rule",
        help="Which S(B) feeds Eq 22: 'fewest' (the fewest steps over learning rates) or 'optimal' (the steps "
        "at the optimal learning rate, the paper's wording); the other rule's fit is reported beside it.",
    ),
    normalize: bool = typer.Option(
        False,
        "--normalize",
        help="Heatmap colours per batch size relative to its best decrease (the paper shows raw decreases).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Optimal lr per batch size, B_noise (Eq 22), eps_max (Eq 23/24), the law comparison, figures and a report."""
    from surge._validation import check_output_dir
    from surge.analysis import analyze as run_analysis
    from surge.analysis import load_store
    from surge.analysis.table import load_table
    from surge.errors import SurgeError
    from surge.report import summary_dict, write_report

    if (store is None) == (table is None):
        raise SurgeError("give exactly one of --store (a sweep store or its export) and --table (one row per run)")
    table_opts = {"--lr-column": lr_column, "--batch-size-column": batch_size_column, "--loss-column": loss_column}
    if table is not None:
        missing = [k for k, v in table_opts.items() if v is None]
        if missing:
            raise SurgeError(f"--table needs {', '.join(missing)} (the names of its columns)")
    else:
        given = [k for k, v in {**table_opts, "--seed-column": seed_column}.items() if v is not None]
        if given:
            raise SurgeError(f"{', '.join(given)} go with --table, not --store")
    check_output_dir(out)
    if table is not None:
        frame = load_table(
            table,
            lr_column=lr_column,
            batch_size_column=batch_size_column,
            loss_column=loss_column,
            seed_column=seed_column,
        )
    else:
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
        steps_rule=steps_rule,
        extra_steps=extra_steps,
    )
    files = write_report(result, out, normalize=normalize)
    from surge.cli._output import err_console

    for note in files.figure_errors:
        err_console.print(f"[yellow]warning:[/yellow] {note}", highlight=False, soft_wrap=True)
    if as_json:
        emit_json(summary_dict(result, files))
        return
    conf = f"{result.settings.confidence:.0%}"
    table = Table(title=f"{result.config}: {result.n_trials} trials ({result.n_failed} failed)")
    for col in ("target", f"B_noise [{conf}]", "eps_max adam", "best law", "falls past B_noise", "div / cens"):
        table.add_column(col, justify="right")
    for st in result.stages:
        bn = f"{fmt(st.b_noise)} {fmt_ci(st.b_noise_ci, 3)}"
        fit = st.b_noise_fit
        if fit is not None and fit.success and fit.b_noise == float("inf"):
            bn = f"> {fmt(fit.b_noise_lower_bound)}"
        elif st.b_noise != st.b_noise and st.surge_fit is not None and st.surge_fit.success:
            bn = f"{fmt(st.surge_fit.b_noise)} {fmt_ci(st.surge_fit.b_noise_ci, 3)} (Adam law fit)"
        table.add_row(
            fmt(st.target_loss),
            bn,
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
