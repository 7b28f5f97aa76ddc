"""The paper's Figure 1 from a :class:`~surge.simulate.montecarlo.Figure1Result`, and the stages of a simulated
training run (:class:`~surge.simulate.training.TrainingResult`). Drawing only."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_figure1", "plot_training"]

_SIGN = "#1f77b4"
_SGD = "#d62728"
_THEORY = "#2ca02c"
_PLATEAU = "#9467bd"
_GREY = "#7f7f7f"


def _new_figure(width: float, height: float, ncols: int) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0].tolist()
    return fig, axes


def _save(fig: Figure, path) -> None:
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=130)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _monte_carlo(ax, b, mc, sigmas: float) -> None:
    """The Monte-Carlo optimum (a OneStepResult) with +-sigmas standard errors."""
    ax.errorbar(
        b,
        mc.mc_optimal_lr,
        yerr=sigmas * mc.mc_stderr,
        fmt="o",
        ms=5,
        color="k",
        mfc="white",
        capsize=3,
        label=f"Monte Carlo ($\\pm${sigmas:g} s.e.)",
        zorder=3,
    )


def plot_figure1(result, path=None, *, sigmas: float = 3.0) -> Figure:
    """Optimal learning rate against batch size: sign descent (left) and SGD (right), as in the paper's Figure 1.

    Left: Monte-Carlo optimum with +-``sigmas`` standard-error bars, the exact Eq 9, Theorem 3 (Eq 13),
    the Theorem 4 plateau (Eq 17), B_noise (Eq 14) and, dotted, the validity batch size of Theorem 3.
    Right: the SGD Monte-Carlo optimum with McCandlish's eps_max / (1 + B_noise / B), its B_noise and eps_max.

    Args:
        result: a :class:`~surge.simulate.montecarlo.Figure1Result` (from
            :func:`~surge.simulate.montecarlo.figure1_data`).
        path: file to save the figure to (format from its suffix, e.g. ``.png`` or ``.pdf``; 130 dpi; its
            folder is created), or None (default) to only return it.
        sigmas: half-width of the Monte-Carlo error bars, in standard errors; default 3.

    Returns:
        The two-panel ``matplotlib.figure.Figure`` (Agg canvas, not registered with pyplot).

    Raises:
        OSError: ``path`` is given and its folder cannot be created or the file cannot be written.
    """
    fig, (ax, bx) = _new_figure(12.5, 4.8, 2)
    b = result.batch_size
    cb = result.curve_batch_size

    # ---- sign descent ----
    ax.plot(cb, result.exact_curve, color=_SIGN, lw=2, label="exact optimum (Eq 9)", zorder=2)
    t3 = result.theorem3_curve
    if np.isfinite(t3).any():
        ax.plot(cb, t3, color=_THEORY, lw=1.6, ls="--", label="Theorem 3 (Eq 13)", zorder=2)
    if math.isfinite(result.large_batch_lr):
        ax.axhline(
            result.large_batch_lr,
            color=_PLATEAU,
            lw=1.4,
            ls=":",
            label=f"Theorem 4 plateau (Eq 17) = {_fmt(result.large_batch_lr)}",
        )
    if math.isfinite(result.b_noise) and b.min() / 4 < result.b_noise < b.max() * 4:
        ax.axvline(result.b_noise, color="k", lw=1.2, ls="-.", label=f"$B_{{noise}}$ (Eq 14) = {_fmt(result.b_noise)}")
    if math.isfinite(result.validity_batch_size) and b.min() < result.validity_batch_size < b.max():
        ax.axvline(
            result.validity_batch_size,
            color=_GREY,
            lw=1.0,
            ls=":",
            label=f"validity of Thm 3 = {_fmt(result.validity_batch_size)}",
        )
    _monte_carlo(ax, b, result.sign, sigmas)
    top = np.nanmax(np.concatenate([result.exact_curve, result.sign.mc_optimal_lr]))
    ax.set_ylim(0, 1.25 * top)
    ax.set_xscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("optimal learning rate")
    title = "sign descent (Adam, $\\beta_1=\\beta_2=0$)"
    ax.set_title(title if result.exact_peak_batch_size is not None else title + ": no surge")
    ax.grid(True, which="major", alpha=0.3)
    # without a peak the curve climbs to the upper right, leaving the upper left empty
    ax.legend(
        loc="upper right" if result.exact_peak_batch_size is not None else "upper left", fontsize=8, framealpha=0.9
    )

    # ---- SGD ----
    bx.plot(cb, result.sgd_exact_curve, color=_SGD, lw=2, label="McCandlish: $\\epsilon_{max}/(1+B_{noise}/B)$")
    if math.isfinite(result.sgd_eps_max):
        bx.axhline(
            result.sgd_eps_max,
            color=_GREY,
            lw=1.2,
            ls=":",
            label=f"$\\epsilon_{{max}}=|G|^2/G^THG$ = {_fmt(result.sgd_eps_max)}",
        )
    if math.isfinite(result.sgd_b_noise):
        bx.axvline(
            result.sgd_b_noise,
            color="k",
            lw=1.2,
            ls="-.",
            label=f"$B_{{noise}}=tr(H\\Sigma)/G^THG$ = {_fmt(result.sgd_b_noise)}",
        )
    _monte_carlo(bx, b, result.sgd, sigmas)
    bx.set_ylim(0, 1.15 * max(result.sgd_eps_max, np.nanmax(result.sgd.mc_optimal_lr)))
    bx.set_xscale("log")
    bx.set_xlabel("batch size B")
    bx.set_ylabel("optimal learning rate")
    bx.set_title("SGD")
    bx.grid(True, which="major", alpha=0.3)
    bx.legend(loc="best", fontsize=8, framealpha=0.9)

    fig.suptitle(
        f"Optimal learning rate vs batch size, problem '{result.problem}' "
        f"(n = {result.n}, {result.sign.samples:,} Monte-Carlo samples per batch size)",
        fontsize=11,
    )
    _save(fig, path)
    return fig


def plot_training(result, path=None) -> Figure:
    """A simulated training run: optimal learning rate and steps per batch size at each target loss.

    Left: the optimal learning rate per batch size at each target loss, with the Eq 22 B_noise of each stage
    as a vertical line. Right: steps against examples with the Eq 20 curve of each stage's B_noise fit.

    Args:
        result: a :class:`~surge.simulate.training.TrainingResult` (from
            :func:`~surge.simulate.training.simulate_training`, with its analysis).
        path: file to save the figure to (format from its suffix, e.g. ``.png`` or ``.pdf``; 130 dpi; its
            folder is created), or None (default) to only return it.

    Returns:
        The two-panel ``matplotlib.figure.Figure`` (Agg canvas, not registered with pyplot).

    Raises:
        OSError: ``path`` is given and its folder cannot be created or the file cannot be written.
    """
    fig, (ax, bx) = _new_figure(12.5, 4.8, 2)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    for k, st in enumerate(result.stages):  # surge.analysis.StageAnalysis: the analysis's numbers
        c = colors[k % len(colors)]
        b = np.array([r.batch_size for r in st.rows], dtype=float)
        opt = np.array([r.optimal_lr for r in st.rows])
        steps = np.array([r.steps for r in st.rows])
        examples = np.array([r.examples for r in st.rows])
        ok = np.isfinite(opt)
        ax.plot(b[ok], opt[ok], "o-", color=c, ms=5, lw=1.6, label=f"target loss {st.target_loss:g}")
        if math.isfinite(st.b_noise):
            ax.axvline(st.b_noise, color=c, lw=1.2, ls="--", label=f"  $B_{{noise}}$ (Eq 22) = {_fmt(st.b_noise)}")
        have = np.isfinite(steps) & (steps > 0)
        if have.any():
            bx.plot(examples[have], steps[have], "o", color=c, ms=5, label=f"target loss {st.target_loss:g}")
        fit = st.b_noise_fit
        if fit is not None and fit.success and have.any():
            s_grid = np.geomspace(fit.s_min * 1.0005, max(np.nanmax(steps[have]), fit.s_min * 2) * 1.5, 200)
            e_grid = fit.e_min / (1.0 - fit.s_min / s_grid)  # Eq 20: S_min/S + E_min/E = 1
            bx.plot(e_grid, s_grid, "-", color=c, lw=1.2, alpha=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("optimal learning rate (best on the grid)")
    ax.set_title(f"optimal learning rate per stage ({result.optimizer})")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, framealpha=0.9, loc="best")
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.set_xlabel("examples E = B S to reach the target")
    bx.set_ylabel("steps S to reach the target")
    bx.set_title("steps vs examples, with the Eq 20 fit")
    bx.grid(True, which="major", alpha=0.3)
    bx.legend(fontsize=8, framealpha=0.9, loc="best")
    opt = result.optimizer if result.betas is None else f"{result.optimizer} betas={tuple(result.betas)}"
    fig.suptitle(
        f"Simulated training on '{result.problem}': {opt}, {result.rounds} rounds, decrease over "
        f"{result.extra_steps} steps after each target",
        fontsize=11,
    )
    _save(fig, path)
    return fig
