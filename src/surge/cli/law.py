"""``surge law adam|sgd``: a closed-form law's learning rate at given batch sizes."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from surge.cli._args import parse_number_list
from surge.cli._output import console, emit_json, fmt
from surge.theory.laws import adam_optimal_lr, sgd_optimal_lr

app = typer.Typer(
    help="Evaluate the Adam law (Eq 2) or the SGD law (Eq 1 / 24) at given batch sizes.", no_args_is_help=True
)

EPS_MAX = typer.Option(..., "--eps-max", help="Peak (Adam) or large-batch (SGD) learning rate eps_max.")
B_NOISE = typer.Option(..., "--b-noise", help="B_noise: the batch size of the peak (Adam) / the knee (SGD).")
BATCH = typer.Option(..., "--batch-size", "-b", help="Batch sizes: comma-separated, or repeat the option.")
JSON = typer.Option(False, "--json", help="Print one JSON object instead of a table.")


def _show(law: str, eps_max: float, b_noise: float, alpha: Optional[float], batch: list[float], lrs, as_json: bool):
    if as_json:
        emit_json({"law": law, "eps_max": eps_max, "b_noise": b_noise, "alpha": alpha, "batch_size": batch, "lr": lrs})
        return
    title = f"{law} law: eps_max={fmt(eps_max)}, B_noise={fmt(b_noise)}" + (f", alpha={fmt(alpha)}" if alpha else "")
    table = Table(title=title)
    table.add_column("batch size", justify="right")
    table.add_column("learning rate", justify="right")
    table.add_column("regime", justify="left")
    for b, lr in zip(batch, lrs):
        table.add_row(
            fmt(b, 6),
            fmt(lr, 5),
            "below B_noise" if b < b_noise else ("at B_noise" if b == b_noise else "above B_noise"),
        )
    console.print(table)


@app.command("adam")
def adam(
    eps_max: float = EPS_MAX,
    b_noise: float = B_NOISE,
    batch_size: list[str] = BATCH,
    as_json: bool = JSON,
) -> None:
    """The surge law (Eq 2): eps_max / (0.5 (sqrt(B_noise/B) + sqrt(B/B_noise)))."""
    batch = parse_number_list(batch_size, "--batch-size")
    lrs = adam_optimal_lr(batch, eps_max, b_noise).tolist()
    _show("adam", eps_max, b_noise, None, batch, lrs, as_json)


@app.command("sgd")
def sgd(
    eps_max: float = EPS_MAX,
    b_noise: float = B_NOISE,
    batch_size: list[str] = BATCH,
    alpha: float = typer.Option(1.0, "--alpha", help="Exponent of (1 + B_noise/B); 1 is McCandlish's SGD law."),
    as_json: bool = JSON,
) -> None:
    """McCandlish's SGD law (Eq 1), eps_max / (1 + B_noise/B) ** alpha (Eq 24's curve)."""
    batch = parse_number_list(batch_size, "--batch-size")
    lrs = sgd_optimal_lr(batch, eps_max, b_noise, alpha).tolist()
    _show("sgd", eps_max, b_noise, alpha, batch, lrs, as_json)
