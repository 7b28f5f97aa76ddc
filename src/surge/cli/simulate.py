"""``surge simulate figure1|training``: the sign-gradient model on synthetic quadratics whose truth is known."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import typer
from rich import box
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from surge.cli._args import parse_number_list
from surge.cli._output import console, emit_json, err_console, fmt, fmt_ci, to_jsonable
from surge.errors import SurgeError

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
        "surge", "--problem", help="surge, diagonal, sign-blind, equal-snr, or a .npz file with arrays mu, sigma, hessian."
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
    from surge.theory.montecarlo import DEFAULT_FIGURE1_BATCH_SIZES, figure1_data
    from surge.theory.problems import make_problem

    _check_suffix(out, ".png", "--out")
    batch = DEFAULT_FIGURE1_BATCH_SIZES if batch_size is None else parse_number_list(batch_size, "--batch-size")
    res = figure1_data(make_problem(problem), batch_sizes=batch, samples=samples, seed=seed)
    plot_figure1(res, out)
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
            fmt(b, 6), fmt(res.sign.mc_optimal_lr[i], 3), fmt(res.sign.mc_stderr[i], 2), fmt(res.sign.exact_optimal_lr[i], 3),
            "nan" if not np.isfinite(z[i]) else f"{z[i]:.2f}", fmt(res.theorem3_lr[i], 3), fmt(res.sgd.mc_optimal_lr[i], 3),
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
    out: Path = typer.Option(..., "--out", help="Directory for training.png, result.json and trials.csv."),
    targets: list[str] | None = typer.Option(
        None, "--targets", help="Target losses: --targets 0.5 0.3 0.18 (or comma-separated); default 0.5 0.3 0.18."
    ),
    optimizer: str = typer.Option("sign", "--optimizer", help="sign, adam or sgd."),
    beta1: float = typer.Option(0.9, "--beta1", help="Adam's beta1 (0 with --beta2 0 is sign descent)."),
    beta2: float = typer.Option(0.999, "--beta2", help="Adam's beta2."),
    batch_size: list[str] | None = typer.Option(None, "--batch-size", "-b", help="Batch sizes; default 12 from 1 to 4096."),
    lrs: list[str] | None = typer.Option(None, "--lr", help="Learning rates; default 10 per optimizer, chosen for the problem."),
    seeds: int = typer.Option(16, "--seeds", help="Trajectories (rounds) per (batch size, learning rate)."),
    n_after: int = typer.Option(50, "--n-after", help="Steps after a target over which the loss decrease is measured."),
    max_steps: int = typer.Option(4_000, "--max-steps", help="Step budget per trajectory."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    as_json: bool = JSON,
) -> None:
    """The paper's protocol on a noisy quadratic: optimal LR per batch size and B_noise (Eq 22) per target loss."""
    from surge.plots.figure1 import plot_training
    from surge.theory.training import DEFAULT_BATCH_SIZES, DEFAULT_TARGETS, simulate_training

    extra = list(ctx.args)
    if extra and targets is None:
        raise SurgeError(f"unexpected argument(s) {' '.join(extra)}; target losses go after --targets")
    target_values = DEFAULT_TARGETS if targets is None else parse_number_list(targets + extra, "--targets")
    batch = DEFAULT_BATCH_SIZES if batch_size is None else parse_number_list(batch_size, "--batch-size")
    lr_values = None if lrs is None else parse_number_list(lrs, "--lr")
    if out.exists() and not out.is_dir():
        raise SurgeError(f"--out must be a directory; {str(out)!r} is a file")

    bar: Progress | None = None  # started on the first report, after the arguments have been checked

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = Progress(
                TextColumn("simulating"), BarColumn(), TextColumn("step {task.completed:.0f}/{task.total:.0f}"),
                TimeElapsedColumn(), console=err_console, transient=True, disable=as_json,
            )
            bar.start()
            bar.add_task("train", total=total)
        bar.update(bar.task_ids[0], completed=done)

    try:
        res = simulate_training(
            optimizer=optimizer, batch_sizes=batch, lrs=lr_values, targets=target_values, seeds=seeds,
            n_after=n_after, max_steps=max_steps, betas=(beta1, beta2), seed=seed, progress=progress,
        )
    finally:
        if bar is not None:
            bar.stop()
    out.mkdir(parents=True, exist_ok=True)
    figure = out / "training.png"
    plot_training(res, figure)
    payload = {**res.to_dict(), "files": {"figure": str(figure), "result": str(out / "result.json"), "trials": str(out / "trials.csv")}}
    (out / "result.json").write_text(json.dumps(to_jsonable(payload), indent=1) + "\n")
    _write_trials(res, out / "trials.csv")
    if as_json:
        emit_json(payload)
        return
    for st in res.stages:
        table = Table(title=f"target loss {st.target_loss:g}: B_noise (Eq 22) = {fmt(st.b_noise)} {fmt_ci(st.b_noise_ci)}")
        for col in ("batch size", "optimal lr", "steps S", "examples E", "censored (of lr x seeds)"):
            table.add_column(col, justify="right")
        total = res.lr.size * res.seeds
        for i, b in enumerate(st.batch_size):
            table.add_row(fmt(b, 6), fmt(st.optimal_lr[i]), fmt(st.steps[i]), fmt(st.examples[i]), f"{total - int(st.reached[i].sum())}/{total}")
        console.print(table)
        if st.fit is not None and st.fit.message != "ok":
            console.print(f"[yellow]note:[/yellow] {st.fit.message}")
    console.print(f"wrote {figure}, {out / 'result.json'}, {out / 'trials.csv'}")


def _write_trials(res, path: Path) -> None:
    """One row per (target, batch size, lr, seed): steps, examples and the decrease (empty when censored)."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["target_loss", "batch_size", "lr", "seed", "steps", "examples", "decrease", "diverged"])
        nt, nb, nl, ns = res.steps.shape
        for j in range(nt):
            for i in range(nb):
                for k in range(nl):
                    for s in range(ns):
                        steps = int(res.steps[j, i, k, s])
                        dec = res.decrease[j, i, k, s]
                        w.writerow([
                            res.targets[j], res.batch_size[i], res.lr[k], s,
                            steps if steps >= 0 else "", res.batch_size[i] * steps if steps >= 0 else "",
                            repr(float(dec)) if np.isfinite(dec) else "", int(res.diverged[i, k, s]),
                        ])


def _check_suffix(path: Path, suffix: str, name: str) -> None:
    if path.suffix.lower() != suffix:
        raise SurgeError(f"{name} must be a {suffix} file, got {str(path)!r}")
