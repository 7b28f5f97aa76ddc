"""The paper's Figures 2-4 from a sweep analysis, and B_noise against the target loss.

Each stage figure has the paper's two panels. Left: a heatmap over (batch size, learning rate) of the
mean loss decrease over the N steps after the target, the optimal learning rate per batch size (with its
bootstrap interval), the fitted Adam curve (Eq 2 with Eq 23's eps_max), the SGD curves with alpha = 1 and
0.5 (Eq 24) and a vertical line at B_noise. Right: the Eq 22 fit, 1/S against 1/E with the fitted line and
B_noise written on it.

Drawing functions take a :class:`surge.analysis.SweepAnalysis` and return a matplotlib ``Figure``; they
compute nothing but the curves of fitted laws. :func:`save_figure` writes PNG and PDF.

Why one module of ~480 lines: the heatmap, the Eq 22 panel and the B_noise figure share the axis helpers, the
batch unit and the stage lookup at its top; each drawing function is short.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib
import matplotlib.patheffects as pe
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import ScalarFormatter

from surge._units import BATCH_UNITS
from surge.analysis import EPS_LAWS, StageAnalysis, SweepAnalysis

# one style per curve, distinguishable in colour, line style and (in print) by a dark outline
STYLE = {
    "adam": dict(color="#e31a1c", lw=2.4, ls="-", label="Adam law (Eq 2 / 23)"),
    "sgd(alpha=1)": dict(color="#ffffff", lw=2.0, ls="--", label="SGD law, alpha = 1 (Eq 24)"),
    "sgd(alpha=0.5)": dict(color="#ff9f1c", lw=2.0, ls="-.", label="SGD law, alpha = 0.5 (Eq 24)"),
    "b_noise": dict(color="#e31a1c", lw=1.8, ls=(0, (4, 3)), label="B_noise (Eq 22)"),
}
_OUTLINE = [pe.Stroke(linewidth=3.6, foreground="black", alpha=0.75), pe.Normal()]
MISSING_COLOR = "#d0d0d0"


def _is_geometric(values: np.ndarray) -> bool:
    """True when the grid is closer to evenly spaced in log than in linear (then the axis is log)."""
    v = np.unique(np.asarray(values, dtype=float))
    if v.size < 3 or v[0] <= 0:
        return v.size == 2 and v[0] > 0 and v[1] / v[0] >= 4
    d_lin = np.diff(v)
    d_log = np.diff(np.log(v))
    return float(np.std(d_log) / np.mean(d_log)) < float(np.std(d_lin) / np.mean(d_lin))


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    x = np.log(v) if log else v
    if x.size == 1:
        half = 0.5 if log else max(abs(x[0]) * 0.25, 0.5)
        e = np.array([x[0] - half, x[0] + half])
    else:
        mid = (x[1:] + x[:-1]) / 2
        e = np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])
    if log:
        return np.exp(e)
    if v.min() > 0 and e[0] <= 0:
        e[0] = v[0] / 2  # keep a positive axis
    return e


def _unit(analysis: SweepAnalysis) -> str:
    """What a batch size counts, for axis labels: the store's batch unit ("examples" when unknown)."""
    return analysis.batch_unit if analysis.batch_unit in BATCH_UNITS else "examples"


def _message(ax, text: str) -> None:
    """A panel that has nothing to draw says why, in a few wrapped lines."""
    wrapped = "\n".join(textwrap.fill(line, width=48) for line in text.split("\n"))
    ax.text(0.5, 0.5, wrapped, ha="center", va="center", transform=ax.transAxes, fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])


def _stage(analysis: SweepAnalysis, stage) -> StageAnalysis:
    return stage if isinstance(stage, StageAnalysis) else analysis.stage(float(stage))


def draw_heatmap(ax, analysis: SweepAnalysis, stage, *, normalize: bool = False, show_legend: bool = True):
    """The left panel: the grid-search heatmap with optimal lrs, the fitted laws and B_noise.

    ``normalize=True`` divides each batch size's column by its best mean decrease (the paper shows raw
    decreases, the default), which makes the optimum visible at small batch sizes whose decreases are small.
    A stage without any loss decrease gets a panel saying why instead.

    Args:
        ax: the matplotlib ``Axes`` to draw on.
        analysis: the :class:`surge.analysis.SweepAnalysis` the stage belongs to.
        stage: the stage: a :class:`surge.analysis.StageAnalysis`, or the target loss of one of the
            analysis's stages (a number, matched to a relative tolerance of 1e-9).
        normalize: divide each batch size's column by its best mean decrease; default False (raw
            decreases, in the loss's unit (nats for cross-entropy), as in the paper).
        show_legend: draw the legend below the panel; default True.

    Returns:
        The heatmap's mappable, a ``matplotlib.collections.QuadMesh`` (for a colorbar), or None when there
            is nothing to draw.

    Raises:
        SurgeError: ``stage`` is a target loss that is not one of the analysis's stages.
    """
    st = _stage(analysis, stage)
    g = st.grid
    unit = _unit(analysis)
    if g.lrs.size == 0 or not np.isfinite(g.mean).any():
        why = st.messages[0] if st.messages else "no trial gave a loss decrease at this stage"
        _message(ax, f"target loss {st.target_loss:g}:\n{why}")
        return None
    log_b, log_lr = _is_geometric(g.batch_sizes), _is_geometric(g.lrs)
    xb, yb = _edges(g.batch_sizes, log_b), _edges(g.lrs, log_lr)
    z = np.array(g.mean, dtype=float)
    if normalize:
        best = np.nanmax(np.where(np.isfinite(z), z, np.nan), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = z / np.where(best > 0, best, np.nan)[None, :]
    finite = z[np.isfinite(z)]
    vmax = float(finite.max())
    vmin = float(np.percentile(finite, 5)) if finite.size > 4 else float(finite.min())
    vmin = max(vmin, -0.5 * abs(vmax))  # a blown-up loss (large negative decrease) must not wash out the colours
    if vmin >= vmax:
        vmin = vmax - (abs(vmax) or 1.0)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad=(0, 0, 0, 0))  # untried cells: the background
    mesh = ax.pcolormesh(xb, yb, np.ma.masked_invalid(z), cmap=cmap, vmin=vmin, vmax=vmax, shading="flat")
    unusable = ~np.isfinite(g.mean) & (g.n_trials > 0)  # tried, but no trial gave a decrease
    if unusable.any():
        ax.pcolormesh(
            xb, yb, np.ma.masked_where(~unusable, np.ones_like(z)), cmap=ListedColormap([MISSING_COLOR]), shading="flat"
        )
    ax.set_xscale("log" if log_b else "linear")
    ax.set_yscale("log" if log_lr else "linear")
    ax.set_xlim(xb[0], xb[-1])
    ax.set_ylim(yb[0], yb[-1])
    handles = []
    # cells where the trials diverged
    div = (g.n_diverged > 0) & ~g.candidate & (g.n_trials > 0)
    if div.any():
        li, bi = np.nonzero(div)
        ax.scatter(
            g.batch_sizes[bi],
            g.lrs[li],
            marker="x",
            s=22,
            color="black",
            linewidths=1.2,
            zorder=3,
            path_effects=[pe.Stroke(linewidth=2.6, foreground="white"), pe.Normal()],
        )
        handles.append(Line2D([], [], marker="x", ls="", color="black", label="diverged (not a candidate)"))
    if unusable.any():
        handles.append(
            Patch(facecolor=MISSING_COLOR, edgecolor="none", label="no usable trial (diverged / not reached)")
        )
    if (g.n_trials == 0).any():
        handles.append(Patch(facecolor="white", edgecolor="#888888", label="not tried"))
    # fitted curves over the batch-size range
    bmin, bmax = float(xb[0]), float(xb[-1])
    bb = np.geomspace(bmin, bmax, 300) if log_b else np.linspace(bmin, bmax, 300)
    for law in EPS_LAWS:
        fit = st.eps_max_fit(law.name)
        if fit is None or not math.isfinite(fit.eps_max) or fit.eps_max <= 0:
            continue
        y = law.lr(bb, fit.eps_max, fit.b_noise)
        s = STYLE[law.name]
        (line,) = ax.plot(
            bb,
            y,
            color=s["color"],
            lw=s["lw"],
            ls=s["ls"],
            zorder=4,
            path_effects=_OUTLINE,
            label=f"{s['label']}, eps_max = {fit.eps_max:.3g}",
        )
        handles.append(line)
    if math.isfinite(st.b_noise) and bmin <= st.b_noise <= bmax:
        s = STYLE["b_noise"]
        line = ax.axvline(
            st.b_noise,
            color=s["color"],
            lw=s["lw"],
            ls=s["ls"],
            zorder=4,
            path_effects=_OUTLINE,
            label=f"{s['label']} = {st.b_noise:.4g} {unit}",
        )
        handles.append(line)
    elif math.isfinite(st.b_noise):
        handles.append(Line2D([], [], ls="", label=f"B_noise = {st.b_noise:.4g} (outside the grid)"))
    # optimal lr per batch size, with its bootstrap interval
    rows = [r for r in st.rows if math.isfinite(r.optimal_lr)]
    if rows:
        b = np.array([r.batch_size for r in rows], dtype=float)
        lr = np.array([r.optimal_lr for r in rows])
        lo = np.array([r.optimal_lr_ci[0] if math.isfinite(r.optimal_lr_ci[0]) else r.optimal_lr for r in rows])
        hi = np.array([r.optimal_lr_ci[1] if math.isfinite(r.optimal_lr_ci[1]) else r.optimal_lr for r in rows])
        ax.errorbar(b, lr, yerr=[lr - lo, hi - lr], fmt="none", ecolor="black", elinewidth=2.6, capsize=0, zorder=5)
        ax.errorbar(b, lr, yerr=[lr - lo, hi - lr], fmt="none", ecolor="white", elinewidth=1.2, capsize=3, zorder=5)
        pts = ax.scatter(
            b,
            lr,
            marker="*",
            s=170,
            color="white",
            edgecolors="black",
            linewidths=1.0,
            zorder=6,
            label=f"optimal lr per batch size ({analysis.settings.confidence:.0%} bootstrap interval)",
        )
        handles.insert(0, pts)
    ax.set_xlabel(f"batch size B [{unit}]")
    ax.set_ylabel("learning rate")
    ax.set_title(f"grid search: loss decrease after reaching {st.target_loss:g}")
    if show_legend and handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)
    return mesh


def draw_b_noise_fit(ax, analysis: SweepAnalysis, stage) -> None:
    """The right panel: the Eq 22 fit, 1/S against 1/E, with the fitted line and B_noise on it.

    A stage with no batch size that has S(B) and E(B) gets a panel saying so; a failed or missing fit is
    written on the panel.

    Args:
        ax: the matplotlib ``Axes`` to draw on.
        analysis: the :class:`surge.analysis.SweepAnalysis` the stage belongs to.
        stage: the stage: a :class:`surge.analysis.StageAnalysis`, or the target loss of one of the
            analysis's stages (a number, matched to a relative tolerance of 1e-9).

    Raises:
        SurgeError: ``stage`` is a target loss that is not one of the analysis's stages.
    """
    st = _stage(analysis, stage)
    unit = _unit(analysis)
    pts = [r for r in st.rows if math.isfinite(r.steps) and math.isfinite(r.examples)]
    if not pts:
        _message(ax, f"target loss {st.target_loss:g}:\nno batch size has S(B) and E(B)")
        return
    x = np.array([1.0 / r.examples for r in pts])
    y = np.array([1.0 / r.steps for r in pts])
    ax.scatter(
        x,
        y,
        s=40,
        color="#1f4e9c",
        edgecolors="black",
        linewidths=0.6,
        zorder=3,
        label="per batch size: fewest mean steps over lrs",
    )
    for r, xi, yi in zip(pts, x, y):
        ax.annotate(
            f"B={r.batch_size}", (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=7, color="#333333"
        )
    fit = st.b_noise_fit
    xmax = float(x.max()) * 1.08
    ax.set_xlim(0, xmax)
    if fit is not None and fit.success:
        xx = np.linspace(0, xmax, 100)
        yy = 1.0 / fit.s_min - fit.b_noise * xx
        ax.plot(xx, yy, color="#e31a1c", lw=2, label="Eq 22: 1/S = -B_noise/E + 1/S_min")
        ci = fit.b_noise_ci
        text = (
            f"B_noise = {fit.b_noise:.4g} {unit}\n"
            f"{fit.confidence:.0%} interval [{ci[0]:.4g}, {ci[1]:.4g}]\n"
            f"S_min = {fit.s_min:.4g} steps, E_min = {fit.e_min:.4g} {unit}\n"
            f"R^2 = {fit.r_squared:.4f}, {fit.n_points} points"
        )
    elif fit is not None:
        text = f"Eq 22 fit failed:\n{fit.message}"
    else:
        text = "Eq 22 fit not made:\nfewer than 3 batch sizes have S(B)"
    ax.text(
        0.03,
        0.04,
        text,
        transform=ax.transAxes,
        ha="left",
        va="bottom",
        fontsize=9,
        bbox=dict(boxstyle="round", facecolor="white", edgecolor="#999999", alpha=0.9),
    )
    ax.set_ylim(bottom=0)
    ax.ticklabel_format(axis="both", style="sci", scilimits=(-3, 3))
    ax.set_xlabel(f"1/E  [1/{unit}]  (E: {unit} to reach the target)")
    ax.set_ylabel("1/S  [1/steps]  (S: steps to reach the target)")
    ax.set_title(f"B_noise from steps and {unit} (Eq 22)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)


def stage_figure(analysis: SweepAnalysis, stage, *, normalize: bool = False) -> Figure:
    """The paper's two-panel figure for one stage (Figures 2-4): the heatmap and the Eq 22 fit.

    Args:
        analysis: the :class:`surge.analysis.SweepAnalysis` the stage belongs to.
        stage: the stage: a :class:`surge.analysis.StageAnalysis`, or the target loss of one of the
            analysis's stages (a number, matched to a relative tolerance of 1e-9).
        normalize: passed to :func:`draw_heatmap`; default False (raw mean loss decreases).

    Returns:
        The two-panel ``matplotlib.figure.Figure``, with a colorbar when the heatmap was drawn.

    Raises:
        SurgeError: ``stage`` is a target loss that is not one of the analysis's stages.
    """
    st = _stage(analysis, stage)
    fig = Figure(figsize=(14, 6.2), layout="constrained")
    ax_l, ax_r = fig.subplots(1, 2, gridspec_kw=dict(width_ratios=[1.25, 1.0]))
    mesh = draw_heatmap(ax_l, analysis, st, normalize=normalize)
    if mesh is not None:
        n = analysis.extra_steps
        over = f" over the next {n:g} steps" if math.isfinite(n) else " after the target"
        what = "loss decrease / best at this B" if normalize else "training-loss decrease"
        cb = fig.colorbar(mesh, ax=ax_l, pad=0.01, extend="min")
        cb.set_label(f"{what}{over}\n(mean over rounds)")
    draw_b_noise_fit(ax_r, analysis, st)
    fig.suptitle(f"{analysis.config}: target loss {st.target_loss:g}", fontsize=12)
    return fig


def b_noise_figure(analysis: SweepAnalysis) -> Figure:
    """B_noise (with its interval) against the target loss, training progressing to the right.

    The y axis is logarithmic when B_noise spans more than a decade and no interval reaches 0; stages
    without an estimate are dotted vertical lines. Without any estimate the panel says why.

    Args:
        analysis: the :class:`surge.analysis.SweepAnalysis` whose ``trend`` is drawn.

    Returns:
        The one-panel ``matplotlib.figure.Figure``; B_noise in the analysis's batch unit.
    """
    fig = Figure(figsize=(6.5, 4.6), layout="constrained")
    ax = fig.subplots()
    tr = analysis.trend
    unit = _unit(analysis)
    t = np.array(tr.target_loss, dtype=float)
    bn = np.array(tr.b_noise, dtype=float)
    ok = np.isfinite(bn)
    if not ok.any():
        _message(ax, "no stage has a B_noise estimate\n" + tr.message)
        return fig
    lo = np.array([c[0] for c in tr.b_noise_ci], dtype=float)
    hi = np.array([c[1] for c in tr.b_noise_ci], dtype=float)
    reaches_zero = bool((np.isfinite(lo) & (lo <= 0))[ok].any())  # an interval down to 0 needs a linear axis
    lo = np.where(np.isfinite(lo), np.maximum(lo, 0.0), bn)
    hi = np.where(np.isfinite(hi), hi, bn)
    ax.errorbar(
        t[ok],
        bn[ok],
        yerr=[bn[ok] - lo[ok], hi[ok] - bn[ok]],
        fmt="o-",
        color="#e31a1c",
        ecolor="black",
        capsize=4,
        lw=1.5,
        ms=6,
        label=f"B_noise (Eq 22) with {analysis.settings.confidence:.0%} interval",
    )
    for ti in t[~ok]:
        ax.axvline(ti, color="#999999", ls=":", lw=1)
    if (~ok).any():
        ax.plot([], [], color="#999999", ls=":", label="stage without an estimate")
    span = np.nanmax(hi[ok]) / max(np.nanmin(lo[ok]), 1e-300)
    if span > 10 and not reaches_zero:  # log only when B_noise spans more than a decade
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())  # 20, 50, 100 rather than 2x10^1
    else:
        ax.set_ylim(0, 1.25 * float(np.nanmax(hi[ok])))
    if t.size > 1:
        pad = 0.05 * (t.max() - t.min())
        ax.set_xlim(t.max() + pad, t.min() - pad)  # decreasing target: training progresses to the right
    else:
        ax.invert_xaxis()
    ax.set_xlabel("target training loss (training progresses →)")
    ax.set_ylabel(f"B_noise [{unit}]")
    ax.set_title("B_noise as training progresses")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    ax.text(
        0.98,
        0.03,
        tr.message
        if len(tr.message) < 70
        else ("grows as the target falls" if tr.grows else "does not grow" if tr.grows is False else tr.verdict),
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=8,
        color="#333333",
    )
    return fig


def save_figure(fig: Figure, stem: str | Path, *, dpi: int = 150) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf``, creating the folder of ``stem`` when needed.

    Args:
        fig: the matplotlib ``Figure`` to write.
        stem: path without the suffix; ``.png`` and ``.pdf`` are appended to its name.
        dpi: resolution of the PNG, in dots per inch; default 150.

    Returns:
        list of the two ``Path`` objects written: ``[stem.png, stem.pdf]``.

    Raises:
        OSError: the folder cannot be created or a file cannot be written.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        p = stem.with_name(stem.name + "." + ext)
        fig.savefig(p, dpi=dpi)
        paths.append(p)
    return paths


def stage_stem(target_loss: float) -> str:
    """The file stem of a stage's figure: ``stage_<target>`` with the target written safely.

    Args:
        target_loss: the stage's target loss, in the loss's unit (nats for cross-entropy).

    Returns:
        str: ``"stage_"`` and the target in ``%g`` form with ``.`` written ``p``, ``-`` written ``m`` and
            ``+`` dropped, e.g. ``stage_0p5`` for 0.5 and ``stage_1em05`` for 1e-05.
    """
    return "stage_" + f"{target_loss:g}".replace(".", "p").replace("-", "m").replace("+", "")


def save_sweep_figures(
    analysis: SweepAnalysis, out_dir: str | Path, *, normalize: bool = False, errors: list[str] | None = None
) -> dict[str, list[Path]]:
    """Every figure of an analysis into ``out_dir``: one per stage and the B_noise trend.

    A figure that cannot be drawn or written is left out (``surge.plots._safe.draw_safely``); ``errors``,
    when given, gets a sentence for each.

    Args:
        analysis: the :class:`surge.analysis.SweepAnalysis` to draw.
        out_dir: the folder to write into; created when needed.
        normalize: passed to :func:`stage_figure`; default False (raw mean loss decreases).
        errors: a list that receives one sentence per figure left out, or None (default) to drop them.

    Returns:
        dict ``{"stage_<t>": [png, pdf], ..., "b_noise_vs_target": [png, pdf]}`` of the ``Path`` objects
            written, with the stems of :func:`stage_stem`; figures left out are absent.
    """
    from surge.plots._safe import draw_safely

    out = Path(out_dir)
    files: dict[str, list[Path]] = {}
    notes = errors if errors is not None else []
    for st in analysis.stages:
        stem = stage_stem(st.target_loss)
        got, why = draw_safely(
            lambda st=st, stem=stem: save_figure(stage_figure(analysis, st, normalize=normalize), out / stem),
            f"the figure of stage {st.target_loss:g}",
        )
        if got is not None:
            files[stem] = got
        if why:
            notes.append(why)
    got, why = draw_safely(
        lambda: save_figure(b_noise_figure(analysis), out / "b_noise_vs_target"), "the B_noise figure"
    )
    if got is not None:
        files["b_noise_vs_target"] = got
    if why:
        notes.append(why)
    return files
