"""``surge recommend``: the learning rate for a new batch size, given a tuned one."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from surge.cli._output import console, emit_json, err_console, fmt, fmt_ci
from surge.errors import SurgeError
from surge.recommend import recommend_lr


def recommend(
    ctx: typer.Context,
    from_batch_size: float = typer.Option(..., "--from-batch-size", help="Batch size the learning rate was tuned at."),
    from_lr: float = typer.Option(..., "--from-lr", help="The tuned (optimal) learning rate at --from-batch-size."),
    to_batch_size: float = typer.Option(..., "--to-batch-size", help="The batch size to move to."),
    b_noise: Optional[float] = typer.Option(
        None,
        "--b-noise",
        help="B_noise of the workload (from 'surge analyze' or 'surge fit b-noise'); without it only the rules of thumb.",
    ),
    measured: Optional[Path] = typer.Option(
        None, "--measured", help="DIR/measure.json from 'surge measure' (instead of --b-noise)."
    ),
    at_loss: Optional[float] = typer.Option(
        None, "--at-loss", help="With --measured: the first measurement at or below this probe loss."
    ),
    at_step: Optional[int] = typer.Option(
        None, "--at-step", help="With --measured: the measurement nearest this step (default: the last)."
    ),
    law: str = typer.Option("adam", "--law", help="adam (Eq 2) or sgd (Eq 1 / 24)."),
    alpha: float = typer.Option(1.0, "--alpha", help="SGD exponent of (1 + B_noise/B)."),
    beta2: Optional[float] = typer.Option(
        None,
        "--beta2",
        help="Adam's beta2 at --from-batch-size: also print beta2 ** (to/from), the same second-moment half-life in examples.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """I tuned lr at batch B0; what learning rate at B1? The chosen law beside the linear and square-root rules."""
    if measured is not None:
        if b_noise is not None:
            raise SurgeError("give either --b-noise or --measured, not both")
        given = [f"--{k.replace('_', '-')}" for k in ("law", "alpha", "beta2") if _given(ctx, k)]
        if given:  # the measured answer is Theorem 3's, for sign-like updates: no law to choose
            verb = "goes" if len(given) == 1 else "go"
            raise SurgeError(f"{' and '.join(given)} {verb} with --b-noise, not with --measured")
        _measured(measured, from_batch_size, from_lr, to_batch_size, at_loss, at_step, as_json)
        return
    if at_loss is not None or at_step is not None:
        raise SurgeError("--at-loss and --at-step go with --measured")
    rec = recommend_lr(from_batch_size, from_lr, to_batch_size, b_noise, law=law, alpha=alpha, beta2=beta2)
    if as_json:
        emit_json(dataclasses.asdict(rec))
        return
    table = Table(
        title=f"from lr {fmt(rec.from_lr)} at batch {fmt(rec.from_batch_size, 6)} to batch {fmt(rec.to_batch_size, 6)}"
    )
    table.add_column("rule")
    table.add_column("learning rate", justify="right")
    if rec.regime != "unknown":
        table.add_row(f"[bold]{rec.law} law[/bold] (B_noise={fmt(rec.b_noise)})", f"[bold]{fmt(rec.lr, 5)}[/bold]")
    table.add_row("linear rule", fmt(rec.linear_lr, 5))
    table.add_row("square-root rule", fmt(rec.sqrt_lr, 5))
    console.print(table)
    if rec.beta2 is not None:
        console.print(
            f"beta2 {fmt(rec.from_beta2, 6)} at batch {fmt(rec.from_batch_size, 6)} -> [bold]{fmt(rec.beta2, 6)}[/bold] "
            f"at batch {fmt(rec.to_batch_size, 6)} (beta2 ** (to/from): the same half-life of the second moment in examples)"
        )
    if rec.regime != "unknown":
        console.print(
            f"batch {fmt(rec.to_batch_size, 6)} is {rec.regime} B_noise; implied eps_max = {fmt(rec.eps_max)}"
        )
    if rec.warning:
        err_console.print(f"[yellow]warning:[/yellow] {rec.warning}")


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the option was given on the command line (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _measured(path: Path, b0: float, lr0: float, b1: float, at_loss, at_step, as_json: bool) -> None:
    """``--measured``: the answer from an in-run measurement (surge.monitor.recommend)."""
    from surge.monitor.recommend import recommend_from_measure
    from surge.monitor.run import load_measure

    rec = recommend_from_measure(load_measure(path), b0, lr0, b1, at_loss=at_loss, at_step=at_step)
    if as_json:
        emit_json(dataclasses.asdict(rec))
        return
    where = f"step {rec.at_step}" + (f", probe loss {fmt(rec.at_loss)}" if rec.at_loss is not None else "")
    table = Table(
        title=f"from lr {fmt(rec.from_lr)} at batch {fmt(rec.from_batch_size, 6)} to batch {fmt(rec.to_batch_size, 6)} "
        f"(measured at {where}; {rec.n_examples} examples)"
    )
    table.add_column("rule")
    table.add_column("learning rate", justify="right")
    table.add_column("95 % interval", justify="right")
    table.add_row(
        f"[bold]measured, Theorem 3[/bold] (B_noise={fmt(rec.b_noise)} {fmt_ci(rec.b_noise_ci)})",
        f"[bold]{fmt(rec.lr, 5)}[/bold]",
        fmt_ci(rec.lr_ci),
    )
    if rec.direct_lr is not None:
        table.add_row(
            f"measured, direct curve (step {rec.curve_step})", fmt(rec.direct_lr, 5), fmt_ci(rec.direct_lr_ci)
        )
    table.add_row("linear rule", fmt(rec.linear_lr, 5), "")
    table.add_row("square-root rule", fmt(rec.sqrt_lr, 5), "")
    console.print(table)
    for w in rec.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {w}")
