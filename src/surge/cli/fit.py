"""``surge fit b-noise|lr|compare``: the paper's estimators on a CSV file."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from surge.cli._args import read_columns
from surge.cli._output import console, emit_json, fmt, fmt_ci
from surge.errors import EstimationError
from surge.fit import compare_laws, fit_b_noise, fit_eps_max

app = typer.Typer(
    help="Fit B_noise (Eq 22), eps_max (Eq 23/24) or compare laws, from a CSV file.", no_args_is_help=True
)

FILE = typer.Argument(..., help="CSV file with a header line.", show_default=False)
JSON = typer.Option(False, "--json", help="Print one JSON object instead of a table.")


def _note(message: str) -> None:
    if message != "ok":
        console.print(f"[yellow]note:[/yellow] {message}")


@app.command("b-noise")
def b_noise(
    file: Path = FILE,
    method: str = typer.Option("linear", "--method", help="linear (Eq 22, 1/S on 1/E) or nonlinear (log S fit)."),
    confidence: float = typer.Option(0.95, "--confidence", help="Coverage of the intervals."),
    as_json: bool = JSON,
) -> None:
    """B_noise, S_min and E_min from the steps to a target loss at each batch size (columns batch_size,steps)."""
    cols = read_columns(file, ("batch_size", "steps"))
    res = fit_b_noise(cols["batch_size"], cols["steps"], method=method, confidence=confidence)
    if not res.success:  # a failed fit has no estimate to print: one line, exit 1
        raise EstimationError(f"B_noise could not be estimated from {file.name}: {res.message}")
    if as_json:
        emit_json(dataclasses.asdict(res))
        return
    table = Table(title=f"B_noise from {file.name} ({res.method} fit, {res.n_points} points)")
    for col in ("quantity", "estimate", f"{res.confidence:.0%} interval"):
        table.add_column(col, justify="right")
    if math.isinf(res.b_noise):  # no loss of data efficiency: a bound, not an estimate
        table.add_row("B_noise", f"> {fmt(res.b_noise_lower_bound)}", "-")
        table.add_row("S_min", "-", "-")
        table.add_row("E_min", f"<= {fmt(res.e_min)}" if math.isfinite(res.e_min) else "-", "-")
        console.print(table)
        _note(res.message)
        return
    table.add_row("B_noise", fmt(res.b_noise), fmt_ci(res.b_noise_ci))
    table.add_row("S_min", fmt(res.s_min), fmt_ci(res.s_min_ci))
    table.add_row("E_min", fmt(res.e_min), fmt_ci(res.e_min_ci))
    console.print(table)
    console.print(f"R^2 = {fmt(res.r_squared)}, RMS residual = {fmt(res.rms_residual)}")
    _note(res.message)


@app.command("lr")
def lr(
    file: Path = FILE,
    b_noise: float = typer.Option(..., "--b-noise", help="B_noise to fit eps_max at."),
    law: str = typer.Option("adam", "--law", help="adam (Eq 23) or sgd (Eq 24)."),
    alpha: float = typer.Option(1.0, "--alpha", help="SGD exponent of (1 + B_noise/B)."),
    method: str = typer.Option(
        "mean", "--method", help="mean (the paper's Eq 23/24) or lsq (least squares in log lr)."
    ),
    confidence: float = typer.Option(0.95, "--confidence", help="Coverage of the interval."),
    as_json: bool = JSON,
) -> None:
    """eps_max from the optimal learning rate at each batch size (columns batch_size,lr)."""
    cols = read_columns(file, ("batch_size", "lr"))
    res = fit_eps_max(
        cols["batch_size"], cols["lr"], b_noise, law=law, alpha=alpha, method=method, confidence=confidence
    )
    if as_json:
        emit_json(dataclasses.asdict(res))
        return
    name = "adam (Eq 23)" if res.law == "adam" else f"sgd, alpha={fmt(res.alpha)} (Eq 24)"
    console.print(
        f"eps_max = [bold]{fmt(res.eps_max)}[/bold]  {res.confidence:.0%} interval {fmt_ci(res.eps_max_ci)}  "
        f"({name}, {res.method}, B_noise={fmt(res.b_noise)}, {res.n_points} points, "
        f"RMS log residual {fmt(res.rms_log_residual, 3)})"
    )


@app.command("compare")
def compare(
    file: Path = FILE,
    b_noise: Optional[float] = typer.Option(None, "--b-noise", help="Fix B_noise instead of fitting it."),
    as_json: bool = JSON,
) -> None:
    """Which law fits the optimal learning rates best: Adam (Eq 2) or SGD (alpha = 1, 0.5, free)? (columns batch_size,lr)"""
    cols = read_columns(file, ("batch_size", "lr"))
    res = compare_laws(cols["batch_size"], cols["lr"], b_noise=b_noise)
    if as_json:
        laws = [
            {
                "name": f.name,
                **f.params,
                **{k: v for k, v in dataclasses.asdict(f).items() if k not in ("name", "params")},
            }
            for f in res.laws
        ]
        emit_json(
            {
                "laws": laws,
                "best": res.best.name,
                "criterion": res.criterion,
                "n_points": res.n_points,
                "b_noise_given": res.b_noise_given,
            }
        )
        return
    table = Table(title=f"law comparison on {file.name} ({res.n_points} points, best by {res.criterion.upper()})")
    for col in ("law", "eps_max", "B_noise", "alpha", "k", "RMS log resid", "AICc", "BIC", "status"):
        table.add_column(col, justify="right")
    for f in res.laws:
        mark = "[bold green]" if f is res.best else ""
        end = "[/bold green]" if mark else ""
        table.add_row(
            f"{mark}{f.name}{end}",
            fmt(f.params["eps_max"]),
            fmt(f.params["b_noise"]),
            fmt(f.params.get("alpha")),
            str(f.n_params),
            fmt(f.rms_log_residual, 3),
            fmt(f.aicc, 4),
            fmt(f.bic, 4),
            f.status,
        )
    console.print(table)
    console.print(f"best: [bold]{res.best.name}[/bold]" + (f" ({res.best.status})" if res.best.status != "ok" else ""))
    for f in res.laws:
        if f.status != "ok":
            console.print(f"[yellow]{f.name}:[/yellow] {f.message}")
