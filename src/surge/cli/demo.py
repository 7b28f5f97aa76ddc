"""``surge demo``: the offline end-to-end run (Figure 1, a small real sweep, its analysis and report)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from surge.cli._output import console, emit_json, err_console, fmt, fmt_ci


def demo(
    out: Path = typer.Option(Path("surge-demo"), "--out", help="Folder for the store, figures and report."),
    quick: bool = typer.Option(False, "--quick", help="A smaller grid (about a minute on 2 CPU cores)."),
    protocol: str = typer.Option(
        "branch",
        "--protocol",
        help="'branch' (from trunk checkpoints, the default) or "
        "'scratch' (the paper's protocol: every trial from initialisation).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (like 'surge analyze' plus 'figure1')."),
) -> None:
    """Run the theory and a small real sweep offline, analyse it, and write figures and a report; reruns resume."""
    from surge.demo import DEMO_PROTOCOLS, run_demo
    from surge.errors import SurgeError
    from surge.report import summary_dict

    if protocol not in DEMO_PROTOCOLS:
        raise SurgeError(f"--protocol must be one of {', '.join(DEMO_PROTOCOLS)}; got {protocol!r}")

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("trials"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        disable=as_json,
        speed_estimate_period=3600.0,
    )
    task = None

    def on_stage(text: str) -> None:
        if not as_json:
            err_console.print(f"[bold cyan]>[/bold cyan] {text}", highlight=False)

    def on_sweep(ev) -> None:
        nonlocal task
        if task is None:
            task = progress.add_task("sweep", total=ev.trials_total)
        running = ev.group_fraction * len(ev.group.trials) if ev.event == "step" and ev.group is not None else 0.0
        progress.update(task, completed=ev.trials_done + ev.trials_failed + running)

    try:
        with progress:
            result = run_demo(out, quick=quick, protocol=protocol, stage=on_stage, sweep_progress=on_sweep)
    except KeyboardInterrupt:
        import shlex

        again = shlex.join(
            [
                "surge",
                "demo",
                *(["--quick"] if quick else []),
                *(["--protocol", protocol] if protocol != "branch" else []),
                "--out",
                str(out),
            ]
        )
        err_console.print(
            f"interrupted: the trials finished so far are saved in {Path(out) / 'sweep.sqlite'}; resume with: {again}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None

    summary = summary_dict(result.analysis, result.files)
    if as_json:
        emit_json(
            {
                **summary,
                "figure1": {**result.figure1.to_dict(), "out": str(result.figure1_png)},
                "sweep": {
                    "store": result.sweep.store,
                    "protocol": protocol,
                    "total": result.sweep.total,
                    "skipped": result.sweep.skipped,
                    "ran": result.sweep.ran,
                    "wall_seconds": result.sweep.wall_seconds,
                },
            }
        )
        return
    fig1 = result.figure1
    console.print(
        f"Theory (Figure 1, {fig1.problem} problem): exact B_noise {fmt(fig1.b_noise)}, exact peak "
        f"{fmt(fig1.exact_peak_batch_size)}, Monte-Carlo peak {fmt(fig1.mc_peak_batch_size)}; the sign-descent "
        "optimum rises, peaks and falls to the Eq 17 plateau, the SGD optimum only rises."
    )
    res = result.sweep
    console.print(f"Sweep: {res.total} trials ({res.skipped} resumed from the store, {res.ran} trained now).")
    if protocol == "branch":
        lr_table = Table(
            title="Optimal learning rate at each checkpoint (fitted over all lrs, 95% bootstrap over rounds)"
        )
        lr_table.add_column("target loss", justify="right")
        lr_table.add_column("B", justify="right")
        lr_table.add_column("fitted lr [95%]", justify="right")
        lr_table.add_column("width", justify="right")
        lr_table.add_column("grid argmax [95%]", justify="right")
        lr_table.add_column("note")
        for st in result.analysis.stages:
            for r in st.rows:
                lr_table.add_row(
                    fmt(st.target_loss),
                    str(r.batch_size),
                    f"{fmt(r.fitted_lr, 3)} {fmt_ci(r.fitted_lr_ci, 3)}",
                    f"{r.fitted_width:.2f}x" if r.fitted_width == r.fitted_width else "-",
                    f"{fmt(r.optimal_lr, 3)} {fmt_ci(r.optimal_lr_ci, 3)}",
                    "flat optimum" if r.flat_optimum else "",
                )
        console.print(lr_table)
    table = Table(title=f"What the sweep found ({result.analysis.config})")
    for col in ("target loss", "B_noise [95%]", "eps_max (adam)", "best law", "lr falls past B_noise"):
        table.add_column(col, justify="right")
    for st in result.analysis.stages:
        table.add_row(
            fmt(st.target_loss),
            f"{fmt(st.b_noise)} {fmt_ci(st.b_noise_ci, 3)}",
            fmt(st.eps_max["adam"], 3),
            st.best_law or "-",
            st.falls.verdict,
        )
    console.print(table)
    console.print(result.analysis.trend.message, highlight=False)
    console.print(
        f"Files: {result.files.html} (report), {result.figure1_png}, and the rest in {Path(out)}/", highlight=False
    )
