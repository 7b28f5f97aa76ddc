"""One batch size at one stage: the optimal learning rate (grid argmax of the mean loss decrease over
rounds, its bootstrap interval, a refined vertex) and S(B), E(B). The rules are in :mod:`surge.analysis.analyze`."""

from __future__ import annotations

import math
import struct

import numpy as np
import pandas as pd

from surge.analysis.fitted import fit_optimum
from surge.analysis.results import _NAN_CI, AnalysisSettings, BatchOptimum, Interval

TIE_RTOL = 1e-9  # mean loss decreases within this relative distance of the best are ties


def _percentile_ci(values: np.ndarray, confidence: float, *, grid: bool) -> Interval:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return _NAN_CI
    lo_q, hi_q = 0.5 - confidence / 2, 0.5 + confidence / 2
    if grid:  # endpoints on the grid
        return float(np.quantile(v, lo_q, method="lower")), float(np.quantile(v, hi_q, method="higher"))
    return float(np.quantile(v, lo_q)), float(np.quantile(v, hi_q))


def _argmax_smallest(means: np.ndarray) -> np.ndarray:
    """Per row, the first (smallest-lr) column within TIE_RTOL of the row's max; -1 for an all-NaN row."""
    m = np.atleast_2d(means)
    finite = np.isfinite(m)
    best = np.where(finite, m, -np.inf).max(axis=1)
    scale = np.maximum(np.abs(best), np.nanmax(np.where(finite, np.abs(m), 0.0), axis=1))
    tol = TIE_RTOL * np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    tied = finite & (m >= (best - tol)[:, None])
    idx = np.where(tied.any(axis=1), tied.argmax(axis=1), -1)
    return idx


def _vertex(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Vertex of the least-squares quadratic through (x, y[:, k]) for each column k, clipped to [x.min, x.max];
    NaN where the quadratic is not concave."""
    coef = np.polynomial.polynomial.polyfit(x, y, 2)  # (3, K): c0, c1, c2
    c1, c2 = coef[1], coef[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(c2 < 0, -c1 / (2 * c2), np.nan)
    return np.clip(v, x.min(), x.max())


def _stage_seed(seed: int, target: float, batch_size: int) -> np.random.Generator:
    bits = struct.unpack("<Q", struct.pack("<d", float(target)))[0]
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(batch_size), bits & 0xFFFFFFFF, bits >> 32])


def _batch_optimum(
    sub: pd.DataFrame, b: int, lrs_all: np.ndarray, st: AnalysisSettings, rng, *, steps_measured: bool = True
) -> tuple[BatchOptimum, dict]:
    """Optimal lr and S/E at one batch size; also returns the per-lr columns of the heatmap.

    ``steps_measured=False`` (branch trials, which record no S) leaves out the note on a missing S(B)."""
    n_l = lrs_all.size
    col = {k: np.zeros(n_l, dtype=int) for k in ("n_used", "n_diverged", "n_censored", "n_trials")}
    col["mean"] = np.full(n_l, np.nan)
    col["candidate"] = np.zeros(n_l, dtype=bool)
    failed = sub["status"] == "failed"
    ld_ok = sub["reached"] & np.isfinite(sub["loss_decrease"]) & ~failed
    # no usable decrease: diverged before the target, or the N steps after it blew up (reached, NaN decrease)
    diverged = ~ld_ok & ~failed & ((sub["status"] == "diverged") | sub["reached"])
    censored = ~ld_ok & ~failed & ~diverged
    lr_index = np.searchsorted(lrs_all, sub["lr"].to_numpy())
    for name, mask in (("n_used", ld_ok), ("n_diverged", diverged), ("n_censored", censored)):
        np.add.at(col[name], lr_index[mask.to_numpy()], 1)
    np.add.at(col["n_trials"], lr_index, 1)
    n_nonfailed = col["n_trials"] - np.bincount(lr_index[failed.to_numpy()], minlength=n_l)
    tried = col["n_trials"] > 0
    lrs_here = lrs_all[tried]

    rounds = np.sort(sub["round"].unique())
    n_rounds = rounds.size
    # rounds x lr matrix of the loss decrease (NaN = no usable trial); duplicates averaged
    used = sub[ld_ok]
    V = np.full((n_rounds, n_l), np.nan)
    if len(used):
        g = used.groupby(["round", "lr"])["loss_decrease"].mean()
        ri = np.searchsorted(rounds, g.index.get_level_values(0).to_numpy())
        li = np.searchsorted(lrs_all, g.index.get_level_values(1).to_numpy())
        V[ri, li] = g.to_numpy()
    with np.errstate(invalid="ignore"):
        frac_div = np.where(n_nonfailed > 0, col["n_diverged"] / np.maximum(n_nonfailed, 1), 0.0)
        # censored trials count like diverged ones: a learning rate most of whose trials did not reach the
        # target (or blew up) is not a candidate, however well its few survivors did
        frac_bad = np.where(n_nonfailed > 0, (col["n_diverged"] + col["n_censored"]) / np.maximum(n_nonfailed, 1), 0.0)
    candidate = (
        (col["n_used"] > 0)
        & (frac_div <= st.max_diverged_fraction + 1e-12)
        & (frac_bad <= max(st.max_diverged_fraction, 0.5) + 1e-12)
    )
    col["candidate"] = candidate
    with np.errstate(invalid="ignore"), np.errstate(divide="ignore"):
        mean = np.nansum(V, axis=0) / np.sum(np.isfinite(V), axis=0)
    col["mean"] = np.where(col["n_used"] > 0, mean, np.nan)
    cand_mean = np.where(candidate, col["mean"], np.nan)

    notes = []
    n_trials = int(col["n_trials"].sum())
    n_failed = int(n_trials - n_nonfailed.sum())
    n_div, n_cens, n_used = int(col["n_diverged"].sum()), int(col["n_censored"].sum()), int(col["n_used"].sum())
    n_excluded = int(((col["n_used"] > 0) & ~candidate).sum())
    optimal = refined = best_dec = math.nan
    opt_ci = ref_ci = _NAN_CI
    tied: tuple[float, ...] = ()
    edge = False
    if not np.isfinite(cand_mean).any():
        if n_trials == n_failed:
            notes.append(f"all {n_trials} trials failed")
        elif n_div == n_trials - n_failed:
            notes.append(f"all {n_div} trials diverged: no optimal learning rate")
        elif n_used == 0:
            notes.append(f"no trial reached the target ({n_cens} censored, {n_div} diverged): no optimal learning rate")
        else:
            notes.append(
                f"every learning rate with a measured decrease diverged in more than {st.max_diverged_fraction:.0%} "
                "of its trials: no optimal learning rate"
            )
    else:
        k = int(_argmax_smallest(cand_mean[None, :])[0])
        optimal = float(lrs_all[k])
        best_dec = float(cand_mean[k])
        scale = max(abs(best_dec), float(np.nanmax(np.abs(cand_mean))))
        tie_mask = np.isfinite(cand_mean) & (cand_mean >= best_dec - TIE_RTOL * (scale if scale > 0 else 1.0))
        tied = tuple(float(x) for x in lrs_all[tie_mask])
        if len(tied) > 1:
            notes.append(f"{len(tied)} learning rates tie for the best mean decrease; the smallest is taken")
        # bootstrap over rounds
        cand_idx = np.flatnonzero(candidate)
        if n_rounds >= 2 and st.n_boot > 0:
            W = rng.multinomial(n_rounds, np.full(n_rounds, 1.0 / n_rounds), size=st.n_boot).astype(float)
            Vc = V[:, cand_idx]
            fin = np.isfinite(Vc)
            with np.errstate(invalid="ignore", divide="ignore"):
                boot_means = (W @ np.where(fin, Vc, 0.0)) / (W @ fin.astype(float))
            bi = _argmax_smallest(boot_means)
            boot_lr = np.where(bi >= 0, lrs_all[cand_idx][np.maximum(bi, 0)], np.nan)
            opt_ci = _percentile_ci(boot_lr, st.confidence, grid=True)
        else:
            boot_means = None
            notes.append("a single round: no bootstrap interval")
        refined, ref_ci, edge, note = _refine(
            k, candidate, cand_mean, cand_idx, boot_means, lrs_all, col["n_trials"], st
        )
        if note:
            notes.append(note)
    if n_excluded:
        n_cens_only = int(((col["n_used"] > 0) & ~candidate & (frac_div <= st.max_diverged_fraction + 1e-12)).sum())
        if n_excluded > n_cens_only:
            notes.append(
                f"{n_excluded - n_cens_only} learning rate(s) diverged in more than {st.max_diverged_fraction:.0%} of "
                "their trials and are not candidates"
            )
        if n_cens_only:
            notes.append(
                f"{n_cens_only} learning rate(s) did not reach the target (censored or diverged) in more than "
                f"{max(st.max_diverged_fraction, 0.5):.0%} of their trials and are not candidates"
            )

    fitted = None
    if np.isfinite(cand_mean).any():
        n_extra = sub["extra_steps"].dropna().unique() if "extra_steps" in sub else np.array([])
        fitted = fit_optimum(
            lrs_all,
            V,
            extra_steps=int(n_extra[0]) if n_extra.size == 1 else 0,
            model=st.fit_model,
            candidate=candidate,
            n_boot=st.n_boot,
            confidence=st.confidence,
            rng=rng,
        )
    steps, examples, steps_lr, why = _steps_point(sub, lr_index, failed, n_nonfailed, lrs_all, st)
    if why and n_trials > n_failed and steps_measured:
        notes.append(why)
    row = BatchOptimum(
        batch_size=int(b),
        optimal_lr=optimal,
        optimal_lr_ci=opt_ci,
        refined_lr=refined,
        refined_lr_ci=ref_ci,
        best_decrease=best_dec,
        tied_lrs=tied,
        at_grid_edge=edge,
        steps=steps,
        examples=examples,
        steps_lr=steps_lr,
        n_lrs=int(lrs_here.size),
        n_rounds=int(n_rounds),
        n_trials=n_trials,
        n_used=n_used,
        n_diverged=n_div,
        n_censored=n_cens,
        n_failed=n_failed,
        n_excluded_lrs=n_excluded,
        note="; ".join(notes),
        **(
            {}
            if fitted is None
            else dict(
                fitted_lr=fitted.lr,
                fitted_lr_ci=fitted.lr_ci,
                fitted_width=fitted.width,
                fit_model=fitted.model,
                flat_optimum=fitted.flat,
                fit_note=fitted.message,
            )
        ),
    )
    return row, col


def _refine(k, candidate, cand_mean, cand_idx, boot_means, lrs_all, n_trials, st: AnalysisSettings):
    """The vertex of a quadratic in log lr around the best grid point k (contiguous candidates only) and its
    bootstrap interval; at a grid edge no vertex. Returns (refined, interval, at_edge, note)."""
    n_l = lrs_all.size
    refined, ref_ci, edge, note = math.nan, _NAN_CI, False, ""
    lo = hi = k
    while lo - 1 >= 0 and k - (lo - 1) <= st.refine_halfwidth and candidate[lo - 1]:
        lo -= 1
    while hi + 1 < n_l and (hi + 1) - k <= st.refine_halfwidth and candidate[hi + 1]:
        hi += 1
    if lo == k or hi == k:
        side = "smallest" if lo == k else "largest"
        why = ""
        if side == "largest" and k + 1 < n_l and n_trials[k + 1] > 0 and not candidate[k + 1]:
            why = " (the next larger learning rate diverged or has no usable trial)"
        note = (
            f"the best learning rate is the {side} candidate{why}: the grid does not bracket the optimum, "
            "so it is a bound, and no refined estimate is made"
        )
        return refined, ref_ci, True, note
    x = np.log(lrs_all[lo : hi + 1])
    v = _vertex(x, cand_mean[lo : hi + 1][:, None])[0]
    refined = float(np.exp(v)) if np.isfinite(v) else math.nan
    if boot_means is not None:
        pos = np.searchsorted(cand_idx, np.arange(lo, hi + 1))
        yb = boot_means[:, pos].T  # (window, n_boot)
        okb = np.isfinite(yb).all(axis=0)
        if okb.any():
            ref_ci = _percentile_ci(np.exp(_vertex(x, yb[:, okb])), st.confidence, grid=False)
    if not math.isfinite(refined):
        note = "the mean decrease is not concave around the best learning rate: no refined estimate"
    return refined, ref_ci, edge, note


def _steps_point(sub, lr_index, failed, n_nonfailed, lrs_all, st: AnalysisSettings):
    """S(B), E(B): the smallest mean steps over learning rates (see the rules in the module docstring).
    Returns (steps, examples, the lr that gave them, why there is none or "")."""
    steps = examples = steps_lr = math.nan
    why = ""
    reached = (sub["reached"] & np.isfinite(sub["steps"]) & ~failed).to_numpy()
    keep = ~failed.to_numpy()
    s_all, e_all = sub["steps"].to_numpy(dtype=float), sub["examples"].to_numpy(dtype=float)
    rows = []
    for li in np.flatnonzero(n_nonfailed > 0):
        in_cell = (lr_index == li) & keep
        r = reached[in_cell]
        if st.steps_statistic == "mean":
            if not r.all():
                continue
            s_val, e_val = float(s_all[in_cell].mean()), float(e_all[in_cell].mean())
        else:
            s_val = float(np.median(np.where(r, s_all[in_cell], np.inf)))
            e_val = float(np.median(np.where(r, e_all[in_cell], np.inf)))
            if not math.isfinite(s_val):
                continue
        rows.append((s_val, e_val, float(lrs_all[li])))
    if rows:
        steps, examples, steps_lr = min(rows)
    else:
        need = "every trial reached" if st.steps_statistic == "mean" else "at least half the trials reached"
        why = f"no learning rate at which {need} the target: no S(B) for the Eq 22 fit"
    return steps, examples, steps_lr, why
