"""The selection-bias diagnostic of the scratch protocol: is the N-step decrease after the first crossing
of a target what the loss does there on its own?

The paper reads the optimum from the decrease over the N steps after a trial *first* reaches the target.
First crossings select trials at a moment of fast descent (a lucky run of batches, Adam's momentum at its
peak), so that decrease can be larger than the loss's local trend, and by a different factor at different
batch sizes (fewer, noisier steps at small B): a bias that depends on B in the very quantity the optimum
is read from. The diagnostic compares, per trial that reached both the previous target and this one, the
decrease over the N steps after the crossing with the local trend of its loss over the same number of
steps, ``N (L_prev - L_this) / (S_this - S_prev)`` (the probe losses and steps at the two crossings), and
reports the median ratio per batch size. A ratio near 1 at every batch size: no bias to worry about;
ratios far from 1, or unequal across batch sizes: measure at checkpoints (the branch protocol).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SelectionBias:
    """One batch size at one stage: decrease after the first crossing / local loss trend.

    Attributes:
        batch_size: B, in the sweep's ``batch_unit``.
        ratio: the median over trials of (N-step decrease after S) / (N x local slope between crossings);
            near 1: no selection bias.
        ratio_iqr: the 25th and 75th percentiles of the trials' ratios.
        n_trials: trials that reached both targets with usable numbers.
    """

    batch_size: int
    ratio: float  # median over trials of (N-step decrease after S) / (N x local slope between crossings)
    ratio_iqr: tuple[float, float]  # the 25th and 75th percentiles of the trials' ratios
    n_trials: int  # trials that reached both targets with usable numbers


def selection_bias(prev: pd.DataFrame, this: pd.DataFrame, extra_steps: float) -> tuple[SelectionBias, ...]:
    """Per batch size, the selection-bias ratio at ``this`` stage against the ``prev`` (higher) target.

    Both are tidy frames of one stage (columns batch_size, lr, round, reached, steps, loss_at_target,
    loss_decrease). Empty when the numbers are missing (branch trials record no S; a first stage has
    no previous crossing).

    Trials are matched on (batch size, lr, round); a trial counts when it reached both targets with finite
    probe losses and decrease, more steps at this target than at ``prev``, and a positive local trend.

    Args:
        prev: the tidy frame (:func:`surge.analysis.tidy_frame`) of the previous (higher) target's stage.
        this: the tidy frame of this stage.
        extra_steps: N, the steps after the target over which the decrease was measured; not finite or
            <= 0 gives an empty result.

    Returns:
        tuple[SelectionBias, ...]: one per batch size with at least one usable trial, ascending; empty when
        there is none.
    """
    if not (math.isfinite(extra_steps) and extra_steps > 0):
        return ()
    keys = ["batch_size", "lr", "round"]
    cols = keys + ["reached", "steps", "loss_at_target"]
    m = this[cols + ["loss_decrease"]].merge(prev[cols], on=keys, suffixes=("", "_prev"))
    ok = (
        m["reached"]
        & m["reached_prev"]
        & np.isfinite(m["loss_decrease"])
        & np.isfinite(m["loss_at_target"])
        & np.isfinite(m["loss_at_target_prev"])
        & (m["steps"] > m["steps_prev"])
    )
    m = m[ok]
    if m.empty:
        return ()
    trend = extra_steps * (m["loss_at_target_prev"] - m["loss_at_target"]) / (m["steps"] - m["steps_prev"])
    m = m.assign(ratio=m["loss_decrease"] / trend)
    m = m[np.isfinite(m["ratio"]) & (trend > 0)]
    out = []
    for b, sub in m.groupby("batch_size"):
        r = sub["ratio"].to_numpy()
        out.append(
            SelectionBias(
                int(b), float(np.median(r)), (float(np.quantile(r, 0.25)), float(np.quantile(r, 0.75))), int(r.size)
            )
        )
    return tuple(out)


def selection_message(rows: tuple[SelectionBias, ...]) -> str:
    """One sentence on the ratios (empty when there are none).

    The ratios count as different across batch sizes when the largest is more than 1.5 times the smallest
    (or the smallest is <= 0).

    Args:
        rows: the ratios of one stage, from :func:`selection_bias`.

    Returns:
        str: the sentence for the stage's messages, or ``""`` when ``rows`` is empty.
    """
    if not rows:
        return ""
    parts = ", ".join(f"{r.ratio:.2g}x at B = {r.batch_size}" for r in rows)
    spread = max(r.ratio for r in rows) / min(r.ratio for r in rows) if min(r.ratio for r in rows) > 0 else math.inf
    verdict = (
        "it differs across batch sizes (the optimum read from it is biased in B; consider the branch protocol)"
        if spread > 1.5
        else "about equal across batch sizes"
    )
    return (
        f"selection bias: the decrease over the N steps after the first crossing, as a multiple of the local "
        f"loss trend, is {parts}; {verdict}"
    )
