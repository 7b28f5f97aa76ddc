"""Figures of an in-run measurement (``surge measure``): B_noise against step and loss, and the optimal-lr curves."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def _col(rows, key):
    return np.array([math.nan if r.get(key) is None else float(r[key]) for r in rows], dtype=float)


def _band(ax, x, lo, hi, color):
    lo = np.where(np.isfinite(lo), lo, np.nan)
    top = np.nanmax(np.concatenate([hi[np.isfinite(hi)], lo[np.isfinite(lo)]])) if np.isfinite(hi).any() else None
    hi = np.where(np.isfinite(hi), hi, np.nan if top is None else top * 10)
    ax.fill_between(x, lo, hi, color=color, alpha=0.18, linewidth=0)


def plot_measure(doc: dict, path: Path) -> Path:
    """Three panels: B_noise (model-based, pooled, with intervals), the direct peak and B_simple against step,
    the same against the probe loss, and the optimal-lr curves over batch size at the chosen measurements.

    Args:
        doc: the ``measure.json`` object (:func:`surge.monitor.run.result_dict`): ``series`` (rows of
            ``SERIES_FIELDS``), optional ``curves`` (each with ``step``, ``loss``, ``batch_sizes``,
            ``direct_lr``, ``direct_lr_lo``, ``direct_lr_hi``, ``model_lr``, ``theorem3_lr``), ``batch_unit``
            and ``config``.
        path: str or Path of the image file to write (format from its suffix, e.g. ``.png``); overwritten.

    Returns:
        Path: ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["series"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    unit = doc.get("batch_unit", "examples")
    for ax, xkey, xlabel in ((axes[0], "step", "step"), (axes[1], "loss", "probe loss")):
        x = _col(rows, xkey)
        for key, label, color in (
            ("smooth_b_noise", "B_noise (Eq 14, pooled)", "C0"),
            ("smooth_b_simple", "B_simple (pooled)", "C2"),
        ):
            y = _col(rows, key)
            ax.plot(x, y, "o-", color=color, label=label, ms=3)
            _band(ax, x, _col(rows, key + "_lo"), _col(rows, key + "_hi"), color)
        d = _col(rows, "direct_peak_batch_size")
        if np.isfinite(d).any():
            ax.plot(x, d, "s", color="C3", label="direct peak (Lemma 1)", ms=6)
        v = _col(rows, "validity_batch_size")
        ax.plot(x, v, ":", color="0.4", label="validity batch size")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"batch size ({unit})")
        if xkey == "loss":
            ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    ax = axes[2]
    for i, c in enumerate(doc.get("curves", [])):
        b = np.asarray(c["batch_sizes"], dtype=float)
        color = f"C{i}"
        lab = f"step {c['step']}, loss {c['loss']:.3g}"
        direct = _col([{"v": v} for v in c["direct_lr"]], "v")
        lo = _col([{"v": v} for v in c["direct_lr_lo"]], "v")
        hi = _col([{"v": v} for v in c["direct_lr_hi"]], "v")
        ax.errorbar(
            b,
            direct,
            yerr=[np.clip(direct - lo, 0, None), np.clip(hi - direct, 0, None)],
            fmt="o-",
            color=color,
            ms=4,
            capsize=2,
            label=f"direct, {lab}",
        )
        ax.plot(b, _col([{"v": v} for v in c["model_lr"]], "v"), "--", color=color, label="model (Eq 9)")
        ax.plot(b, _col([{"v": v} for v in c["theorem3_lr"]], "v"), ":", color=color, label="Theorem 3")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"batch size ({unit})")
    ax.set_ylabel("optimal learning rate (sign update)")
    ax.grid(alpha=0.3)
    if doc.get("curves"):
        ax.legend(fontsize=7)
    cfg = doc.get("config", {})
    fig.suptitle(
        f"{cfg.get('workload')}: {cfg.get('optimizer')} betas {cfg.get('betas')}, lr {cfg.get('lr')}, "
        f"batch {cfg.get('batch_size')}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
