"""``surge simulate figure1|training``: the sign-gradient model on synthetic quadratics whose truth is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich import box
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from surge._validation import check_output_dir, check_output_file
from surge.cli._args import parse_number_list
from surge.cli._output import console, emit_json, err_console, fmt, fmt_ci, to_jsonable
from surge.errors import SurgeError
from surge.theory.problems import PROBLEM_NAMES

app = typer.Typer(
    help="Simulate sign descent / Adam and SGD on quadratics with Gaussian per-sample gradients: "
    "the paper's Figure 1 (one-step Monte Carlo) and its training protocol.",
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Print one JSON object instead of tables.")


@app.command("figure1")
def figure1(
    out: Path = typer.Option(..., "--out", help="PNG file to write the figure to."),
    problem: str = typer.Option(
        "surge",
        "--problem",
        help=f"{', '.join(PROBLEM_NAMES)}, or a .npz file with arrays mu, sigma, hessian.",
    ),
    samples: int = typer.Option(100_000, "--samples", help="Monte-Carlo samples per batch size."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    batch_size: list[str] | None = typer.Option(
        None, "--batch-size", "-b", help="Batch sizes (comma-separated or repeated); default 1, 2, 4, ..., 65536."
    ),
    as_json: bool = JSON,
) -> None:
    """Optimal learning rate vs batch size: Monte Carlo against Eq 9, Theorems 3-4 and McCandlish's SGD law."""
    from surge.plots.figure1 import plot_figure1
    from surge.simulate.montecarlo import DEFAULT_FIGURE1_BATCH_SIZES, figure1_data
    from surge.theory.problems import make_problem

    _check_suffix(out, ".png", "--out")
    check_output_file(out)
    batch = DEFAULT_FIGURE1_BATCH_SIZES if batch_size is None else parse_number_list(batch_size, "--batch-size")
    res = figure1_data(make_problem(problem), batch_sizes=batch, samples=samples, seed=seed)
    from surge.plots._safe import draw_safely

    _, why = draw_safely(lambda: plot_figure1(res, out), f"the figure {out.name}")
    if why:
        err_console.print(f"[yellow]warning:[/yellow] {why}", highlight=False, soft_wrap=True)
    if as_json:
        emit_json({**res.to_dict(), "out": str(out)})
        return
    table = Table(
        title=f"optimal learning rate, problem '{res.problem}' (n = {res.n}, {res.sign.samples:,} samples per B)",
        box=box.SIMPLE_HEAD,
    )
    # SGD law: McCandlish's eps_max / (1 + B_noise / B), exact for this model
    for col in ("B", "sign MC", "s.e.", "Eq 9", "z", "Thm 3", "SGD MC", "SGD law"):
        table.add_column(col, justify="right")
    z = res.sign.z_scores
    for i, b in enumerate(res.batch_size):
        table.add_row(
            fmt(b, 6),
            fmt(res.sign.mc_optimal_lr[i], 3),
            fmt(res.sign.mc_stderr[i], 2),
            fmt(res.sign.exact_optimal_lr[i], 3),
            "nan" if not np.isfinite(z[i]) else f"{z[i]:.2f}",
            fmt(res.theorem3_lr[i], 3),
            fmt(res.sgd.mc_optimal_lr[i], 3),
            fmt(res.sgd.exact_optimal_lr[i], 3),
        )
    console.print(table)
    console.print(
        f"sign descent: B_noise (Eq 14) = {fmt(res.b_noise)}, eps_max (Eq 16) = {fmt(res.eps_max)}, "
        f"plateau (Eq 17) = {fmt(res.large_batch_lr)}, validity batch size = {fmt(res.validity_batch_size)}"
    )
    console.print(
        f"peak: exact {fmt(res.exact_peak_batch_size)}, Monte Carlo {fmt(res.mc_peak_batch_size)}; "
        f"max |z| = {fmt(float(np.nanmax(np.abs(z))), 3)}"
    )
    console.print(f"SGD: B_noise = {fmt(res.sgd_b_noise)}, eps_max = {fmt(res.sgd_eps_max)}")
    console.print(f"wrote {out}")


@app.command("training", context_settings={"allow_extra_args": True})
def training(
    ctx: typer.Context,
    out: Path = typer.Option(
        ...,
        "--out",
        help="Directory for trials.csv, result.json, training.png and the "
        "analysis report (report.md, report.html, analysis.json, stage figures).",
    ),
    target_loss: list[str] | None = typer.Option(
        None,
        "--target-loss",
        "--targets",
        help="Target losses (stages): --target-loss 0.5 0.3 0.18 (or comma-separated); default 0.5 0.3 0.18.",
    ),
    optimizer: str = typer.Option("sign", "--optimizer", help="sign, adam or sgd."),
    beta1: float = typer.Option(0.9, "--beta1", help="Adam's beta1 (0 with --beta2 0 is sign descent)."),
    beta2: float = typer.Option(0.999, "--beta2", help="Adam's beta2."),
    batch_size: list[str] | None = typer.Option(
        None, "--batch-size", "-b", help="Batch sizes (whole numbers); default 12 from 1 to 4096."
    ),
    lrs: list[str] | None = typer.Option(
        None, "--lr", help="Learning rates; default 10 per optimizer, chosen for the problem."
    ),
    rounds: int = typer.Option(16, "--rounds", "--seeds", help="Rounds: trajectories per (batch size, learning rate)."),
    extra_steps: int = typer.Option(
        50, "--extra-steps", "--n-after", help="N: steps after a target over which the loss decrease is measured."
    ),
    max_steps: int = typer.Option(4_000, "--max-steps", help="Step budget per trajectory."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples of the rounds in the analysis."),
    as_json: bool = JSON,
) -> None:
    """The paper's protocol on a noisy quadratic, analysed like a sweep: optimal LR per batch size and B_noise
    (Eq 22) per target loss, with the analysis report. `surge analyze --store OUT/trials.csv` gives the same."""
    from surge.plots.figure1 import plot_training
    from surge.report import write_report
    from surge.simulate.training import DEFAULT_BATCH_SIZES, DEFAULT_TARGETS, simulate_training

    extra = list(ctx.args)
    if extra and target_loss is None:
        raise SurgeError(f"unexpected argument(s) {' '.join(extra)}; target losses go after --target-loss")
    target_values = DEFAULT_TARGETS if target_loss is None else parse_number_list(target_loss + extra, "--target-loss")
    batch = DEFAULT_BATCH_SIZES if batch_size is None else parse_number_list(batch_size, "--batch-size")
    lr_values = None if lrs is None else parse_number_list(lrs, "--lr")
    check_output_dir(out)

    bar: Progress | None = None  # started on the first report, after the arguments have been checked

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = Progress(
                TextColumn("simulating"),
                BarColumn(),
                TextColumn("step {task.completed:.0f}/{task.total:.0f}"),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
            )
            bar.start()
            bar.add_task("train", total=total)
        bar.update(bar.task_ids[0], completed=done)

    try:
        res = simulate_training(
            optimizer=optimizer,
            batch_sizes=batch,
            lrs=lr_values,
            target_loss=target_values,
            rounds=rounds,
            extra_steps=extra_steps,
            max_steps=max_steps,
            betas=(beta1, beta2),
            seed=seed,
            n_boot=n_boot,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.stop()
    out.mkdir(parents=True, exist_ok=True)
    # the results first, the figures after: a figure that cannot be drawn loses nothing
    trials = out / "trials.csv"
    res.frame().to_csv(trials, index=False)
    result_file = out / "result.json"
    figure = out / "training.png"
    files = {"figure": str(figure), "result": str(result_file), "trials": str(trials)}
    payload = {**res.to_dict(), "files": files}
    result_file.write_text(json.dumps(to_jsonable(payload), indent=1) + "\n")
    from surge.plots._safe import draw_safely

    drawn, why = draw_safely(lambda: plot_training(res, figure), f"{figure.name}")
    if why:
        err_console.print(f"[yellow]warning:[/yellow] {why}", highlight=False, soft_wrap=True)
        files.pop("figure")
    report = write_report(res.analysis, out)
    for note in report.figure_errors:
        err_console.print(f"[yellow]warning:[/yellow] {note}", highlight=False, soft_wrap=True)
    files.update(
        {"report_markdown": str(report.markdown), "report_html": str(report.html), "analysis": str(report.json)}
    )
    payload = {**res.to_dict(), "files": files}
    result_file.write_text(json.dumps(to_jsonable(payload), indent=1) + "\n")
    if as_json:
        emit_json(payload)
        return
    total = res.lr.size * res.rounds
    for st, th in zip(res.stages, res.theory):
        table = Table(
            title=f"target loss {st.target_loss:g}: B_noise (Eq 22) = {fmt(st.b_noise)} {fmt_ci(st.b_noise_ci)}"
        )
        for col in ("batch size", "optimal lr", "steps S", "examples E", "diverged / censored (of lr x rounds)"):
            table.add_column(col, justify="right")
        for row in st.rows:
            table.add_row(
                fmt(row.batch_size, 6),
                fmt(row.optimal_lr),
                fmt(row.steps),
                fmt(row.examples),
                f"{row.n_diverged} / {row.n_censored} (of {total})",
            )
        console.print(table)
        console.print(
            f"one-step theory at the states reached: B_noise (Eq 14) = {fmt(th.local_b_noise)}, "
            f"exact Eq 9 peak at B = {fmt(th.local_peak_batch_size)}"
        )
        for msg in st.messages:
            console.print(f"[yellow]note:[/yellow] {msg}")
    fig_txt = f"{figure}, " if "figure" in files else ""
    console.print(
        f"wrote {trials}, {result_file}, {fig_txt}{report.html} (and report.md, analysis.json, stage figures in {out})"
    )


def _check_suffix(path: Path, suffix: str, name: str) -> None:
    if path.suffix.lower() != suffix:
        raise SurgeError(f"{name} must be a {suffix} file, got {str(path)!r}")
