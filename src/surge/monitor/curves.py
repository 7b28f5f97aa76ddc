"""The optimal learning rate over batch size from measured gradient statistics: the model-based curve
(the exact Eq 9 with the measured r, G and H) and the direct one (Lemma 1, Eq 6, from resampled batches,
no Gaussian or independence assumption). NumPy/SciPy only; used by :func:`surge.monitor.estimate_noise`."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import special, stats

from surge._validation import check_array, check_int, check_scalar
from surge.errors import SurgeError, SurgeTypeError


def _hvp_many(hvp: Callable, vectors: np.ndarray, n: int) -> np.ndarray:
    """H applied to each row of ``vectors`` (k, n); one call if ``hvp.batched`` is true, else row by row."""
    if vectors.shape[0] == 0:
        return np.zeros((0, n))
    if getattr(hvp, "batched", False):
        out = _hvp_out(hvp(vectors), (vectors.shape[0], n))
    else:
        out = np.stack([_hvp_out(hvp(v), (n,)) for v in vectors])
    return out


def _hvp_out(value, shape) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SurgeTypeError(f"hvp must return an array of real numbers, got {type(value).__name__}") from None
    if arr.shape != shape:
        raise SurgeError(f"hvp must return an array of shape {shape} (like its input), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise SurgeError("hvp returned non-finite values (NaN or inf): the Hessian-vector product diverged")
    return arr


def _model_curve(bs, r, mean, diag_h, trace_h, hvp, n) -> np.ndarray:
    """Exact Eq 9 with the measured r, G and H: sum_i E_i mu_i / (D + sum_{i != j} E_i E_j H_ij), with
    E_i = erf(sqrt(B/2) r_i)."""
    e = special.erf(np.sqrt(bs / 2.0)[:, None] * r[None, :])  # (k, n)
    he = _hvp_many(hvp, e, n)
    den = trace_h + np.einsum("ki,ki->k", e, he) - (e * e) @ diag_h
    num = e @ mean
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _direct_curve(g, b, bs, hvp, n_draws, adam, conf, rng):
    """Lemma 1 (Eq 6) from resampled nested batches: eps(B) = mean(G_out^T V) / mean(V^T H V).

    For each draw the rows are permuted; the batch of B = k b examples is the first k rows, V its sign
    (or Adam's next update), and G is estimated from the rows left out (unbiased and independent of V).
    The interval is Fieller's for a ratio of means over the draws.
    """
    m, n = g.shape
    ks = bs / b
    ok = (np.abs(ks - np.round(ks)) < 1e-9) & (np.round(ks) >= 1) & (np.round(ks) <= m // 2)
    lr = np.full(bs.size, math.nan)
    ci = np.full((bs.size, 2), math.nan)
    msg = ""
    if not ok.all():
        bad = bs[~ok].tolist()
        msg = (
            f"direct curve: batch sizes {bad} are not multiples of micro_batch_size={b} between {b} and half the "
            f"examples ({(m // 2) * b}); NaN there"
        )
    if not ok.any():
        return lr, ci, 0, msg
    idx = np.flatnonzero(ok)
    kk = np.round(ks[idx]).astype(int)
    kmax = int(kk.max())
    total = g.sum(0)
    num = np.zeros((n_draws, idx.size))
    den = np.zeros((n_draws, idx.size))
    used = 0
    # blocks of draws so that the (draws, batch sizes, n) work array stays small
    block = max(1, min(n_draws, (1 << 21) // max(idx.size * n, 1)))
    for start in range(0, n_draws, block):
        nd = min(block, n_draws - start)
        prefix = np.empty((nd, idx.size, n))
        for d in range(nd):
            rows = rng.choice(m, size=kmax, replace=False)
            prefix[d] = np.cumsum(g[rows], axis=0)[kk - 1]  # (j, n) sums of the first k rows
        batch_mean = prefix / kk[None, :, None]
        g_out = (total - prefix) / (m - kk)[None, :, None]
        v = _update(batch_mean, adam).reshape(nd * idx.size, n)
        hv = _hvp_many(hvp, v, n).reshape(nd, idx.size, n)
        v = v.reshape(nd, idx.size, n)
        used += nd * idx.size
        num[start : start + nd] = np.einsum("dji,dji->dj", g_out, v)
        den[start : start + nd] = np.einsum("dji,dji->dj", v, hv)
    t = float(stats.t.ppf(0.5 + conf / 2.0, n_draws - 1))
    for col, j in enumerate(idx):
        a, c = num[:, col], den[:, col]
        ma, mc = a.mean(), c.mean()
        if not mc > 0:
            continue
        lr[j] = ma / mc
        va, vc = a.var(ddof=1) / n_draws, c.var(ddof=1) / n_draws
        cac = np.cov(a, c)[0, 1] / n_draws
        ci[j] = _fieller_ratio(ma, mc, va, vc, cac, t)
    return lr, ci, used, msg


def _fieller_ratio(a, c, va, vc, cac, t) -> tuple[float, float]:
    """Fieller interval for a / c (c the positive denominator)."""
    qa = c * c - t * t * vc
    if qa <= 0:
        return (-math.inf, math.inf)
    qb = a * c - t * t * cac
    qc = a * a - t * t * va
    disc = max(qb * qb - qa * qc, 0.0)
    return ((qb - math.sqrt(disc)) / qa, (qb + math.sqrt(disc)) / qa)


def _check_adam_state(state, n: int):
    if state is None:
        return None
    if not isinstance(state, dict) or not {"m", "v", "step"} <= set(state):
        raise SurgeError(f"adam_state must be a dict with keys m, v, step (and optional betas, eps), got {state!r:.80}")
    m = check_array(_np(state["m"]), "adam_state m").ravel()
    v = check_array(_np(state["v"]), "adam_state v", nonnegative=True).ravel()  # a second moment
    if m.shape != (n,) or v.shape != (n,):
        raise SurgeError(f"adam_state m and v must have shape ({n},) like a gradient, got {m.shape} and {v.shape}")
    betas = tuple(float(x) for x in state.get("betas", (0.9, 0.999)))
    if len(betas) != 2 or not all(0 <= x < 1 for x in betas):
        raise SurgeError(f"adam_state betas must be two numbers in [0, 1), got {betas}")
    step = check_int(state["step"], "adam_state step", minimum=0)
    eps = check_scalar(state.get("eps", 1e-8), "adam_state eps", nonnegative=True)
    return {"m": m, "v": v, "step": step, "betas": betas, "eps": eps}


def _np(x):
    return x.detach().cpu().double().numpy() if hasattr(x, "detach") else x


def _update(batch_mean: np.ndarray, adam) -> np.ndarray:
    """The update V for batch-mean gradients (rows): sign (Eq 29) or Adam's next step (Eq 25-27)."""
    if adam is None:
        return np.sign(batch_mean)
    b1, b2 = adam["betas"]
    t = adam["step"] + 1
    m = b1 * adam["m"] + (1 - b1) * batch_mean
    v = b2 * adam["v"] + (1 - b2) * batch_mean**2
    return (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + adam["eps"])
