"""``surge measure``: train one run of a workload and measure B_noise, B_simple and the optimal-lr curve along it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from surge.cli._args import parse_number_list
from surge.cli._output import console, emit_json, err_console, fmt
from surge.errors import SurgeError


def _betas(text: str) -> tuple[float, float]:
    values = parse_number_list([text], "--betas")
    if len(values) != 2:
        raise SurgeError(f"--betas must be two numbers B1,B2 (e.g. 0.9,0.999 or 0,0), got {text!r}")
    return values[0], values[1]


def measure(
    workload: str = typer.Option(..., "--workload", help="Built-in workload or package.module:attribute."),
    optimizer: str = typer.Option("adam", "--optimizer", help="adam (betas 0,0 = sign descent) or sgd."),
    betas: str = typer.Option("0.9,0.999", "--betas", help="Adam's betas B1,B2."),
    lr: float = typer.Option(..., "--lr", help="Learning rate."),
    batch_size: int = typer.Option(..., "--batch-size", help="Examples (sequences) per step."),
    steps: int = typer.Option(..., "--steps", help="Optimizer steps."),
    every: int = typer.Option(20, "--every", help="Measure every K steps (from step 0)."),
    out: Path = typer.Option(..., "--out", help="Folder for measure.json, series.csv and measure.png."),
    measure_examples: Optional[int] = typer.Option(
        None, "--measure-examples", help="Examples per measurement (default max(batch size, 256))."
    ),
    curve_points: int = typer.Option(
        3, "--curve-points", help="Measurements (evenly spaced) with the curves over batch size."
    ),
    curve_batch_size: Optional[list[str]] = typer.Option(
        None,
        "--curve-batch-size",
        help="Batch sizes of the curves (default 1, 2, 4, ... up to half the measured examples).",
    ),
    curve_at_loss: Optional[list[str]] = typer.Option(
        None,
        "--curve-at-loss",
        help="Also compute the curves at the first measurement at or below each of these probe losses.",
    ),
    window: int = typer.Option(3, "--window", help="Measurements pooled into the smoothed series."),
    n_draws: int = typer.Option(32, "--draws", help="Resampled batches per batch size in the direct curve."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights, batches and estimators."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Data folder of the workload."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the measure.json content)."),
) -> None:
    """Train one run and measure gradient noise along it: B_simple, B_noise (Eq 14), eps_max, the validity batch
    size, and the optimal-lr curve over batch size (Eq 9 and Lemma 1) at chosen points; writes measure.json,
    series.csv and measure.png in --out."""
    from surge.monitor.run import MeasureConfig, check_config, check_out_dir, check_workload, measure_run, write_measure

    cfg = check_config(
        MeasureConfig(
            workload=workload,
            optimizer=optimizer,
            betas=_betas(betas),
            lr=lr,
            batch_size=batch_size,
            steps=steps,
            every=every,
            measure_examples=measure_examples,
            curve_points=curve_points,
            curve_batch_sizes=None
            if curve_batch_size is None
            else tuple(parse_number_list(curve_batch_size, "--curve-batch-size")),
            curve_losses=() if curve_at_loss is None else tuple(parse_number_list(curve_at_loss, "--curve-at-loss")),
            window=window,
            n_draws=n_draws,
            seed=seed,
            data_dir=data_dir,
        )
    )
    check_out_dir(out)
    check_workload(cfg)
    progress = Progress(
        TextColumn("[bold]measure"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )
    with progress:
        task = progress.add_task("measure", total=cfg.steps, note="")

        def on_step(done: int, total: int, row: dict | None) -> None:
            note = None
            if row is not None:
                note = f"loss {fmt(row['loss'])}  B_noise {fmt(row['smooth_b_noise'])}  B_simple {fmt(row['smooth_b_simple'])}"
            progress.update(task, completed=done, **({"note": note} if note else {}))

        res = measure_run(cfg, progress=on_step)
    doc = write_measure(res, out)
    if as_json:
        emit_json(doc)
        return
    table = Table(
        title=f"{cfg.workload}: {cfg.optimizer} betas {list(cfg.betas)}, lr {fmt(cfg.lr)}, batch {cfg.batch_size} "
        f"({doc['batch_unit']}); pooled over {cfg.window} measurement(s)"
    )
    for col in (
        "step",
        "probe loss",
        "B_noise (Eq 14) [95 %]",
        "B_simple [95 %]",
        "eps_max",
        "validity B",
        "direct peak",
    ):
        table.add_column(col, justify="right")
    for r in doc["series"]:
        table.add_row(
            str(r["step"]),
            fmt(r["loss"]),
            f"{fmt(r['smooth_b_noise'])} [{fmt(r['smooth_b_noise_lo'])}, {fmt(r['smooth_b_noise_hi'])}]",
            f"{fmt(r['smooth_b_simple'])} [{fmt(r['smooth_b_simple_lo'])}, {fmt(r['smooth_b_simple_hi'])}]",
            fmt(r["smooth_eps_max"]),
            fmt(r["validity_batch_size"]),
            fmt(r["direct_peak_batch_size"]),
        )
    console.print(table)
    console.print(
        f"wrote {doc['files']['measure_json']}, {doc['files']['series_csv']}, {doc['files']['figure']}; "
        f"{doc['wall_seconds']:.1f} s, of which measuring {doc['monitor_seconds']:.1f} s"
    )
