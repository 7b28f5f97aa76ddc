"""Gradient-noise estimators at one point of training: B_simple, the paper's B_noise, eps_max, Delta L_max,
Theorem 3's validity batch size, and the optimal-lr curve over batch size, from per-example (or
per-micro-batch) gradients and Hessian-vector products. NumPy/SciPy only (no torch).

What is estimated (docs/equations.md; per-example quantities, r_i = mu_i / sigma_i):

- ``b_simple`` = tr(Sigma) / |G|^2, McCandlish et al. (2018, App. A), SGD's noise scale;
- ``b_noise``  = pi D / (2 S), Eq 14 with the H_ij factor, D = tr(H), S = sum_{i != j} r_i r_j H_ij;
- ``eps_max``  = M / (2 sqrt(S D)), Eq 16, M = sum_i mu_i^2 / sigma_i;
- ``delta_l_max`` = M^2 / (2 S), Eq 19;
- ``validity_batch_size`` = pi / (2 q), q a high quantile over coordinates of r_i^2 (Theorem 3 holds for
  B well below pi sigma_i^2 / (2 mu_i^2));
- the model-based curve: ``lr_at(B)`` (Theorem 3 / Eq 40 line 1, from M, D, S) and ``model_lr`` (the
  exact Eq 9 with the measured r and H at ``batch_sizes``);
- the direct curve (Lemma 1, Eq 6): eps_opt(B) = G^T E[V] / E[V^T H V] with V the sign (or Adam update) of
  batches of B examples resampled from the measured gradients, G from the rows left out of each batch.

How (bias and intervals):

- Products of estimated means are bias-corrected: |G|^2 by |g_bar|^2 - sum_i s_i^2 / m (s^2 the row
  variance, m rows), mu_i^2 likewise, and r^T H r by a U-statistic over K disjoint groups of rows,
  sum_{g != h} r_g^T H r_h / (K (K - 1)), which needs one Hessian-vector product per group and is
  unbiased because groups are independent.
- diag(H) and tr(H) by a Hutch++-style estimator (Meyer et al. 2021): a sketch Q = orth(H Omega) takes the
  dominant low-rank part exactly; Rademacher probes (Hutchinson) take the rest.
- Intervals: a delete-one-group jackknife over the K groups for everything that depends on the data,
  plus the probe variance of the Hutchinson part; ratios (B_noise, B_simple) by Fieller's method on the
  reciprocal (S / D, |G|^2 / tr(Sigma)), so an interval reaches infinity when S or |G|^2 is not
  significantly above zero; eps_max and Delta L_max by the delta method on the log. Critical values from
  Student's t with K - 1 degrees of freedom.

Rows of ``grads`` are assumed to be independent draws (examples, or micro-batches of distinct examples);
the paper's Gaussian and independence-across-coordinates assumptions enter only the model-based curve,
B_noise, eps_max and Delta L_max, not B_simple or the direct curve.

Why one module of ~750 lines: the estimator, its unbiased components and the intervals derived from their
joint covariance are one computation; the curves over batch size are in :mod:`surge.monitor.curves`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
from scipy import stats

from surge._validation import as_real_array, check_array, check_confidence, check_int
from surge.errors import SurgeError, SurgeTypeError
from surge.monitor.curves import _check_adam_state, _direct_curve, _hvp_many, _model_curve, _np  # noqa: F401

__all__ = ["NoiseEstimate", "estimate_noise", "pool_estimates", "COMPONENTS"]

Interval = tuple[float, float]
_NAN_CI: Interval = (math.nan, math.nan)

# The unbiased building blocks every derived quantity is a function of (per-example units):
#   trace_h = D = tr(H); coupling = S = sum_{i != j} r_i r_j H_ij; m_sum = M = sum_i mu_i^2 / sigma_i;
#   trace_sigma = tr(Sigma); grad_sq = |G|^2.
COMPONENTS = ("trace_h", "coupling", "m_sum", "trace_sigma", "grad_sq")
_D, _S, _M, _T, _G2 = range(5)

_DERIVED = (
    "b_noise",
    "b_noise_ci",
    "b_simple",
    "b_simple_ci",
    "eps_max",
    "eps_max_ci",
    "delta_l_max",
    "delta_l_max_ci",
)  # what _derive computes from the components, with its intervals
MIN_ROWS = 8  # fewer rows (examples or micro-batches) than this give NaN with a message


@dataclass(frozen=True, eq=False)
class NoiseEstimate:
    """Gradient-noise statistics at one point of training, each with a confidence interval.

    Batch sizes count examples (tokens for a language model whose loss averages over tokens, when the
    rows are per-sequence gradients the unit is sequences). Learning rates are in the units of a sign
    (Adam-style, unit-size per coordinate) update: theta -> theta - lr V with |V_i| <= 1. Every interval
    is a ``(low, high)`` tuple of floats at ``confidence``; ``(nan, nan)`` where it cannot be computed.

    Attributes:
        b_noise: float, Eq 14 pi D / (2 S), in examples; inf when S is estimated <= 0 (no surge seen),
            NaN without ``hvp``.
        b_noise_ci: interval of ``b_noise``; high = inf when S is not significantly > 0.
        b_simple: float, McCandlish's tr(Sigma) / |G|^2 (SGD's noise scale), in examples, from gradients
            only; inf when the unbiased |G|^2 <= 0.
        b_simple_ci: interval of ``b_simple`` (Fieller); high = inf when |G|^2 is not significantly > 0.
        eps_max: float, Eq 16 M / (2 sqrt(S D)): the peak learning rate of a sign update; inf when
            S <= 0, NaN without ``hvp``.
        eps_max_ci: interval of ``eps_max`` (delta method on the log).
        delta_l_max: float, Eq 19 M^2 / (2 S): the largest one-step loss decrease, in loss units (nats).
        delta_l_max_ci: interval of ``delta_l_max``.
        validity_batch_size: float, pi / (2 q), q the ``validity_quantile`` of r_i^2 over coordinates, in
            examples: Theorem 3 holds for B well below it; inf when q <= 0.
        within_validity: ``b_noise < validity_batch_size`` (Theorem 3 applies at its own peak); None
            when ``b_noise`` is not finite.
        n_examples: int, examples that went in (rows x ``micro_batch_size``; summed when pooled).
        n_rows: int, rows of ``grads`` (summed when pooled).
        micro_batch_size: int, examples per row.
        n_params: int, n, the length of a gradient.
        n_groups: int, K, the groups of the U-statistic and the jackknife (0 with too few rows).
        n_hvp: int, Hessian-vector products used.
        confidence: float in (0, 1), nominal coverage of the intervals.
        components: dict name -> float estimate of the building blocks (``COMPONENTS``: trace_h = D,
            coupling = S, m_sum = M, trace_sigma = tr(Sigma), grad_sq = |G|^2), per-example units.
        components_se: dict name -> float standard error of each component.
        covariance: np.ndarray (5, 5), covariance of the components in ``COMPONENTS`` order (data plus
            probe part).
        dof: int, degrees of freedom of the data part (jackknife groups - 1).
        probe_covariance: np.ndarray (5, 5), the probe (Hutchinson) part of ``covariance``.
        probe_dof: int, degrees of freedom of the probe part (probes - 1; 0 without ``hvp``).
        batch_sizes: np.ndarray (k,) of the curves' batch sizes, in examples (empty without curves).
        model_lr: np.ndarray (k,), exact Eq 9 with the estimates at ``batch_sizes`` (sign-update units).
        direct_lr: np.ndarray (k,), Lemma 1 (Eq 6) from resampled batches; NaN where not computable.
        direct_lr_ci: np.ndarray (k, 2), Fieller intervals of ``direct_lr``.
        direct_update: ``"sign"`` (Eq 29) or ``"adam"`` (Eq 25-27): the update V of the direct curve.
        n_draws: int, resampled batches per batch size in the direct curve (0 without it).
        message: str, why some values are NaN, and warnings; ``""`` when everything is there.
    """

    b_noise: float  # Eq 14, pi D / (2 S); inf when S is estimated <= 0 (no surge seen); nan without hvp
    b_noise_ci: Interval  # (low, high) at ``confidence``; high = inf when S is not significantly > 0
    b_simple: float  # McCandlish's tr(Sigma) / |G|^2 (SGD noise scale), from gradients only
    b_simple_ci: Interval
    eps_max: float  # Eq 16, M / (2 sqrt(S D)): the peak learning rate of a sign update
    eps_max_ci: Interval
    delta_l_max: float  # Eq 19, M^2 / (2 S): the largest one-step loss decrease (loss units)
    delta_l_max_ci: Interval
    validity_batch_size: float  # pi / (2 q), q = ``validity_quantile`` of r_i^2 over coordinates
    within_validity: bool | None  # b_noise < validity_batch_size (Theorem 3 applies at its own peak)
    n_examples: int  # rows x micro_batch_size
    n_rows: int  # rows of ``grads``
    micro_batch_size: int  # examples per row
    n_params: int  # n, the length of a gradient
    n_groups: int  # K, the groups of the U-statistic and the jackknife
    n_hvp: int  # Hessian-vector products used
    confidence: float
    components: dict  # name -> estimate of the building blocks (COMPONENTS)
    components_se: dict  # name -> standard error
    covariance: np.ndarray = field(repr=False)  # (5, 5) covariance of the components, in COMPONENTS order
    dof: int = 0  # degrees of freedom of the data part (jackknife groups - 1)
    probe_covariance: np.ndarray = field(default_factory=lambda: np.zeros((5, 5)), repr=False)  # its probe part
    probe_dof: int = 0  # degrees of freedom of the probe part (probes - 1)
    batch_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,) the curves' batch sizes
    model_lr: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,) exact Eq 9 with the estimates
    direct_lr: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,) Lemma 1 from resampled batches
    direct_lr_ci: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (k, 2)
    direct_update: str = "sign"  # "sign" or "adam": the update V of the direct curve
    n_draws: int = 0  # resampled batches per batch size in the direct curve
    message: str = ""  # why some values are NaN, and warnings; "" when everything is there

    # ---- the model-based curve ---------------------------------------------------------------

    def lr_at(self, batch_size) -> np.ndarray | float:
        """Model-based optimal learning rate at ``batch_size`` (Theorem 3, Eq 40 line 1 = Eq 13).

        sqrt(2B / pi) M / (D + 2 B S / pi) from the measured M, D, S; equals
        eps_max / (0.5 (sqrt(B_noise / B) + sqrt(B / B_noise))) when S > 0. Valid for B well below
        ``validity_batch_size``. NaN without Hessian statistics, and where the denominator is <= 0.

        Args:
            batch_size: scalar or array-like (any shape) of batch sizes, in examples (the unit of
                ``micro_batch_size`` rows), finite and > 0.

        Returns:
            float for a scalar ``batch_size``, else np.ndarray of its shape: the optimal learning rate
            of a sign update (units of |V_i| <= 1).

        Raises:
            SurgeError: a batch size <= 0 or not finite.
        """
        b = np.asarray(batch_size, dtype=float)
        if (b <= 0).any() or not np.isfinite(b).all():
            raise SurgeError(f"batch_size must be finite and > 0, got {batch_size!r}")
        c = self.components
        den = c["trace_h"] + 2.0 * b / math.pi * c["coupling"]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(den > 0, np.sqrt(2.0 * b / math.pi) * c["m_sum"] / den, np.nan)
        return float(out) if out.ndim == 0 else out

    @property
    def model_peak_batch_size(self) -> float:
        """Argmax of ``model_lr`` over ``batch_sizes`` (NaN when there is no curve)."""
        return _argmax(self.batch_sizes, self.model_lr)

    @property
    def direct_peak_batch_size(self) -> float:
        """Argmax of ``direct_lr`` over ``batch_sizes``: the measured peak (NaN when there is no curve)."""
        return _argmax(self.batch_sizes, self.direct_lr)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (arrays as lists; the covariance as a nested list).

        Returns:
            dict: the fields above except ``probe_covariance`` and ``probe_dof`` (arrays as lists, the
            covariance as a nested list; floats may be inf or NaN), plus ``model_peak_batch_size`` and
            ``direct_peak_batch_size``.
        """
        out = {
            k: getattr(self, k)
            for k in (
                *_DERIVED,
                "validity_batch_size",
                "within_validity",
                "n_examples",
                "n_rows",
                "micro_batch_size",
                "n_params",
                "n_groups",
                "n_hvp",
                "confidence",
                "components",
                "components_se",
                "dof",
                "direct_update",
                "n_draws",
                "message",
            )
        }
        out["covariance"] = np.asarray(self.covariance).tolist()
        out["batch_sizes"] = np.asarray(self.batch_sizes).tolist()
        out["model_lr"] = np.asarray(self.model_lr).tolist()
        out["direct_lr"] = np.asarray(self.direct_lr).tolist()
        out["direct_lr_ci"] = np.asarray(self.direct_lr_ci).tolist()
        out["model_peak_batch_size"] = self.model_peak_batch_size
        out["direct_peak_batch_size"] = self.direct_peak_batch_size
        return out


def _argmax(b: np.ndarray, y: np.ndarray) -> float:
    y = np.asarray(y, dtype=float)
    if y.size == 0 or not np.isfinite(y).any():
        return math.nan
    return float(np.asarray(b)[int(np.nanargmax(y))])


# ---- input checks ------------------------------------------------------------------------------


def _as_array(grads) -> np.ndarray:
    """A torch tensor or array-like -> float64 NumPy (m, n), without importing torch."""
    if hasattr(grads, "detach") and hasattr(grads, "cpu"):  # a torch tensor
        grads = grads.detach().cpu().double().numpy()
    arr = as_real_array(grads)
    if arr is None:
        raise SurgeTypeError(f"grads must be an (m, n) array of real numbers, got {type(grads).__name__}")
    if arr.ndim != 2:
        raise SurgeError(
            f"grads must be 2-dimensional (m rows of per-example or per-micro-batch gradients, n parameters), "
            f"got shape {arr.shape}"
        )
    m, n = arr.shape
    if n == 0:
        raise SurgeError("grads has 0 columns: the model has no trainable parameters (n must be >= 1)")
    if m == 0:
        raise SurgeError("grads has 0 rows: need per-example gradients of at least 2 examples")
    if m == 1:
        raise SurgeError(
            "grads has 1 row: one example (or micro-batch) has no variance; give per-example gradients of at "
            f"least {MIN_ROWS} examples"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = (int(x) for x in np.argwhere(bad)[0])
        raise SurgeError(
            f"grads must be finite; row {i} column {j} is {arr[i, j]} ({int(bad.sum())} non-finite entries): "
            "the loss or the model diverged"
        )
    return arr


def _positive_int(value, name: str, minimum: int = 1) -> int:
    return check_int(value, name, minimum=minimum)


def _confidence(value) -> float:
    return check_confidence(value)


def _check_batch_sizes(batch_sizes) -> np.ndarray:
    if batch_sizes is None:
        return np.zeros(0)
    return check_array(batch_sizes, "batch_sizes", positive=True, increasing=True).ravel()


# ---- the estimator -------------------------------------------------------------------------------


def estimate_noise(
    grads,
    hvp: Callable | None = None,
    *,
    micro_batch_size: int = 1,
    n_probes: int = 8,
    sketch_size: int = 4,
    n_groups: int = 16,
    batch_sizes=None,
    n_draws: int = 64,
    adam_state: dict | None = None,
    validity_quantile: float = 0.99,
    confidence: float = 0.95,
    seed: int = 0,
) -> NoiseEstimate:
    """Estimate B_simple, B_noise (Eq 14), eps_max (Eq 16), Delta L_max (Eq 19) and the optimal-lr curves.

    See the module docstring for the estimators (bias-corrected components, Hutch++-style tr(H), group
    U-statistic, jackknife and Fieller intervals). Fewer than ``MIN_ROWS`` rows give NaN estimates with a
    ``message`` (no Hessian-vector product is then made).

    Args:
        grads: array-like or torch tensor (m, n) of real numbers: per-example gradients
            (``micro_batch_size=1``) or per-micro-batch mean gradients, each the mean over
            ``micro_batch_size`` distinct examples, at the same parameters; n = number of parameters,
            m >= 2 (>= ``MIN_ROWS`` for estimates). Units: loss per parameter unit. Rows must be
            independent draws.
        hvp: callable v -> H v for a length-n vector v (H the Hessian of the mean training loss, n x n),
            or None (default). If it has an attribute ``batched = True`` it is called once with a (k, n)
            array and must return (k, n). Without it the Hessian quantities (b_noise, eps_max,
            delta_l_max, the curves) are NaN.
        micro_batch_size: int >= 1, examples per row of ``grads`` (default 1). Per-example quantities are
            rescaled from it.
        n_probes: int >= 2, Rademacher probes of the Hutch++-style tr(H) / diag(H) estimate (default 8).
        sketch_size: int >= 0, sketch vectors of that estimate (default 4; capped at n); it uses
            2 sketch_size + n_probes Hessian-vector products.
        n_groups: int >= 3, K: groups of rows for the U-statistic of r^T H r (K Hessian-vector products)
            and the jackknife intervals (default 16; capped at half the number of rows, m // 2).
        batch_sizes: strictly increasing sequence of finite batch sizes > 0 (examples) for the curves, or
            None (default: no curves): ``model_lr`` (exact Eq 9 with the estimates; one Hessian-vector
            product each) and ``direct_lr`` (Lemma 1; ``n_draws`` products each). For the direct curve a
            batch size must be a multiple of ``micro_batch_size`` and at most half the examples
            ((m // 2) x ``micro_batch_size``); others are NaN.
        n_draws: int >= 2, resampled batches per batch size in the direct curve (default 64; common across
            batch sizes: nested batches).
        adam_state: dict ``{"m": (n,), "v": (n,), "step": int >= 0, "betas": (b1, b2), "eps": float}``
            (``betas`` default (0.9, 0.999) and ``eps`` default 1e-8 optional; arrays or tensors), or None
            (default): the direct curve then uses Adam's next update (Eq 25-27) from this state instead of
            the sign (Eq 29).
        validity_quantile: float in (0, 1], the quantile of the coordinates' r_i^2 that sets the validity
            batch size pi / (2 q) (default 0.99; a robust version of the paper's min over i).
        confidence: float in (0, 1), nominal coverage of every interval (default 0.95).
        seed: int >= 0, seed of the groups, probes and resampling (default 0).

    Returns:
        NoiseEstimate: the estimates, intervals and curves; fewer than ``MIN_ROWS`` rows give NaN
        estimates with a ``message``.

    Raises:
        SurgeTypeError: ``grads`` not an array of real numbers, ``hvp`` not callable, or an integer option
            (``micro_batch_size``, ``n_probes``, ``sketch_size``, ``n_groups``, ``n_draws``, ``adam_state``'s
            step) not an integer.
        SurgeError: ``grads`` not 2-D, with no columns (no trainable parameters), one row (no variance) or
            non-finite entries; an option out of range (``confidence``, ``validity_quantile``, ``seed``,
            ``batch_sizes``, ``adam_state``, the integer options); or an ``hvp`` that returns the wrong
            shape or non-finite values. Exceptions raised by ``hvp`` itself propagate.
    """
    g = _as_array(grads)
    b = _positive_int(micro_batch_size, "micro_batch_size")
    n_probes = _positive_int(n_probes, "n_probes", 2)
    sketch_size = _positive_int(sketch_size, "sketch_size", 0)
    n_groups = _positive_int(n_groups, "n_groups", 3)
    n_draws = _positive_int(n_draws, "n_draws", 2)
    conf = _confidence(confidence)
    if not (isinstance(validity_quantile, (int, float)) and 0 < validity_quantile <= 1):
        raise SurgeError(f"validity_quantile must be in (0, 1], got {validity_quantile!r}")
    bs = _check_batch_sizes(batch_sizes)
    if hvp is not None and not callable(hvp):
        raise SurgeTypeError(f"hvp must be a callable v -> H v, got {type(hvp).__name__}")
    seed = check_int(seed, "seed", minimum=0)
    adam = _check_adam_state(adam_state, g.shape[1])
    m, n = g.shape
    k = len(bs)
    if m < MIN_ROWS:
        return _nan_estimate(
            m, b, n, conf, bs, f"too few examples: {m} rows of {b} example(s); need >= {MIN_ROWS} rows"
        )
    rng = np.random.default_rng(seed)
    K = min(n_groups, m // 2)
    labels = rng.permutation(np.arange(m) % K)
    messages: list[str] = []

    # ---- data statistics (row units) and their leave-one-group-out versions ----
    counts = np.bincount(labels, minlength=K).astype(float)  # (K,)
    sums = np.zeros((K, n))
    sumsq = np.zeros((K, n))
    np.add.at(sums, labels, g)
    np.add.at(sumsq, labels, g * g)
    stats_full = _row_stats(sums.sum(0), sumsq.sum(0), float(m), b)
    loo = [_row_stats(sums.sum(0) - sums[j], sumsq.sum(0) - sumsq[j], m - counts[j], b) for j in range(K)]
    dead = stats_full["sigma"] == 0
    if (dead & (stats_full["mean"] != 0)).any():
        messages.append(
            f"{int((dead & (stats_full['mean'] != 0)).sum())} coordinate(s) have zero variance but a non-zero "
            "mean gradient; they were left out of the SNR sums"
        )
    comp = np.full(5, math.nan)
    comp[_T], comp[_G2], comp[_M] = stats_full["trace_sigma"], stats_full["grad_sq"], stats_full["m_sum"]
    rep = np.full((K, 5), math.nan)  # leave-one-group-out replicates of the components
    for j, st in enumerate(loo):
        rep[j, _T], rep[j, _G2], rep[j, _M] = st["trace_sigma"], st["grad_sq"], st["m_sum"]
    probe_cov = np.zeros((5, 5))
    n_hvp = 0
    u = stats_full["r2"]  # unbiased per-coordinate r_i^2 (can be negative)
    pos = u[np.isfinite(u)]
    q = float(np.quantile(pos, validity_quantile)) if pos.size else math.nan
    validity = math.pi / (2.0 * q) if q > 0 else math.inf

    model_lr = np.full(k, math.nan)
    direct_lr = np.full(k, math.nan)
    direct_ci = np.full((k, 2), math.nan)
    direct_update = "adam" if adam is not None else "sign"
    if hvp is None:
        messages.append("no hvp given: the Hessian quantities (b_noise, eps_max, delta_l_max, the curves) are NaN")
    else:
        # ---- diag(H), tr(H): Hutch++-style (sketch + Rademacher probes) ----
        ks = min(sketch_size, n)
        d_lowrank = np.zeros(n)
        q_basis = np.zeros((n, 0))
        if ks > 0:
            omega = rng.choice([-1.0, 1.0], size=(ks, n))
            y = _hvp_many(hvp, omega, n)
            q_basis, _ = np.linalg.qr(y.T)  # (n, ks)
            hq = _hvp_many(hvp, q_basis.T.copy(), n)  # (ks, n) rows = H q_c
            d_lowrank = np.einsum("ic,ci->i", q_basis, hq)
            n_hvp += 2 * ks
        probes = rng.choice([-1.0, 1.0], size=(n_probes, n))
        hv = _hvp_many(hvp, probes, n)
        n_hvp += n_probes
        resid = hv - (hv @ q_basis) @ q_basis.T  # P_perp H v
        e = probes * resid  # (p, n): E[e] = diag(P_perp H)
        diag_h = d_lowrank + e.mean(0)
        comp[_D] = float(diag_h.sum())
        # ---- r^T H r by the group U-statistic ----
        sigma = np.where(dead, 1.0, stats_full["sigma"])
        r_groups = np.where(dead, 0.0, (sums / counts[:, None]) / sigma)  # (K, n) group-mean SNRs
        hr = _hvp_many(hvp, r_groups, n)
        n_hvp += K
        gram = r_groups @ hr.T
        gram = 0.5 * (gram + gram.T)
        off = gram.sum() - np.trace(gram)
        quad = off / (K * (K - 1))
        u0 = np.where(dead, 0.0, u)
        comp[_S] = quad - float(diag_h @ u0)
        for j in range(K):
            off_j = off - 2.0 * (gram[j].sum() - gram[j, j])
            u_j = np.where(dead, 0.0, loo[j]["r2"])
            rep[j, _S] = off_j / ((K - 1) * (K - 2)) - float(diag_h @ u_j) if K > 2 else math.nan
            rep[j, _D] = comp[_D]
        # probe variance of the Hutchinson part: replicate per probe of (D, S)
        pr = np.zeros((n_probes, 5))
        pr[:, _D] = e.sum(1)
        pr[:, _S] = -(e @ u0)
        probe_cov = np.cov(pr, rowvar=False) / n_probes
        # ---- curves ----
        if k:
            r_full = np.where(dead, 0.0, stats_full["mean"] / sigma)
            model_lr = _model_curve(bs, r_full, stats_full["mean"], diag_h, comp[_D], hvp, n)
            n_hvp += k
            direct_lr, direct_ci, used, msg = _direct_curve(g, b, bs, hvp, n_draws, adam, conf, rng)
            n_hvp += used
            if msg:
                messages.append(msg)
    # ---- covariance: jackknife over groups + probe variance ----
    data_cov = _jackknife_cov(rep)
    cov = data_cov + probe_cov
    dof = K - 1
    probe_dof = n_probes - 1 if hvp is not None else 0
    est = _derive(comp, data_cov, probe_cov, dof, probe_dof, conf)
    if hvp is not None and not comp[_S] > 0:
        messages.append(
            f"the SNR coupling S = {comp[_S]:.4g} is not > 0: no surge seen at this point (b_noise is inf or "
            "undefined; Theorem 3 predicts an optimal lr that rises with B to the Eq 17 plateau)"
        )
    if not comp[_G2] > 0:
        messages.append(f"the unbiased |G|^2 = {comp[_G2]:.4g} is not > 0: the gradient is lost in the noise")
    within = None if not math.isfinite(est["b_noise"]) else bool(est["b_noise"] < validity)
    if within is False:
        messages.append(
            f"b_noise {est['b_noise']:.4g} lies past the validity batch size {validity:.4g}: Theorem 3's peak "
            "(b_noise, eps_max) is outside its own regime; use the curves instead"
        )
    return NoiseEstimate(
        **{key: est[key] for key in _DERIVED},
        validity_batch_size=validity,
        within_validity=within,
        n_examples=m * b,
        n_rows=m,
        micro_batch_size=b,
        n_params=n,
        n_groups=K,
        n_hvp=n_hvp,
        confidence=conf,
        components=dict(zip(COMPONENTS, (float(x) for x in comp))),
        components_se=dict(zip(COMPONENTS, (float(math.sqrt(max(x, 0.0))) for x in np.diag(cov)))),
        covariance=cov,
        dof=dof,
        probe_covariance=probe_cov,
        probe_dof=probe_dof,
        batch_sizes=bs,
        model_lr=model_lr,
        direct_lr=direct_lr,
        direct_lr_ci=direct_ci,
        direct_update=direct_update,
        n_draws=n_draws if k and hvp is not None else 0,
        message="; ".join(messages),
    )


def _row_stats(total: np.ndarray, total_sq: np.ndarray, m: float, b: int) -> dict:
    """Unbiased per-example statistics from the sum and sum of squares of m rows (each a mean of b examples)."""
    mean = total / m
    var_row = np.maximum((total_sq - m * mean * mean) / (m - 1.0), 0.0)  # unbiased row variance s^2
    mu2 = mean * mean - var_row / m  # unbiased mu_i^2
    sigma = np.sqrt(b * var_row)  # per-example sigma_i
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(sigma > 0, mu2 / (b * var_row), 0.0)  # unbiased r_i^2 (up to the 1/sigma^2 bias)
        m_sum = float(np.sum(np.where(sigma > 0, mu2 / sigma, 0.0)))
    return {
        "mean": mean,
        "sigma": sigma,
        "r2": r2,
        "trace_sigma": float(b * var_row.sum()),
        "grad_sq": float(mu2.sum()),
        "m_sum": m_sum,
    }


def _jackknife_cov(rep: np.ndarray) -> np.ndarray:
    """Delete-one-group jackknife covariance of the component replicates (K, 5); NaN columns -> 0 variance."""
    K = rep.shape[0]
    r = np.where(np.isfinite(rep), rep, 0.0)
    dev = r - r.mean(0)
    return (K - 1.0) / K * dev.T @ dev


def _fieller_inverse(num: float, den: float, var_num: float, var_den: float, cov: float, t: float) -> Interval:
    """Interval for den / num by Fieller's method, inverted: the interval of num / den for a positive quantity.

    ``num`` is the well-determined positive trace (D or tr(Sigma)) and ``den`` the quantity that can be near
    zero (S or |G|^2). Fieller gives a bounded interval [lo, hi] for rho = den / num; the interval of
    num / den is then [1/hi, 1/lo], with 1/lo = inf when lo <= 0, and (nan, nan) when hi <= 0.
    """
    if not (math.isfinite(num) and math.isfinite(den)) or not num > 0:
        return _NAN_CI
    a = num * num - t * t * var_num
    if a <= 0:  # the trace itself is not significant: no useful interval
        return (0.0, math.inf)
    bq = num * den - t * t * cov
    c = den * den - t * t * var_den
    disc = bq * bq - a * c
    if disc < 0:
        disc = 0.0
    lo = (bq - math.sqrt(disc)) / a
    hi = (bq + math.sqrt(disc)) / a
    if hi <= 0:
        return _NAN_CI
    return (1.0 / hi, math.inf if lo <= 0 else 1.0 / lo)


def _log_delta(value: float, grad: np.ndarray, cov: np.ndarray, t: float) -> Interval:
    """exp(log value +- t sd) with sd^2 = grad^T cov grad (grad of log value w.r.t. the components)."""
    if not (math.isfinite(value) and value > 0):
        return _NAN_CI
    sd = math.sqrt(max(float(grad @ cov @ grad), 0.0))
    lo, hi = math.log(value) - t * sd, math.log(value) + t * sd
    return (math.exp(lo), math.exp(hi) if hi < 700 else math.inf)


def _t_value(
    grad: np.ndarray, data_cov: np.ndarray, probe_cov: np.ndarray, dof: int, probe_dof: int, conf: float
) -> float:
    """Student's t for a linear combination grad^T c of the components, with Welch-Satterthwaite degrees of
    freedom from its data (jackknife) and probe (Hutchinson) variance parts."""
    vd = max(float(grad @ data_cov @ grad), 0.0)
    vp = max(float(grad @ probe_cov @ grad), 0.0) if probe_dof > 0 else 0.0
    den = (vd * vd / max(dof, 1)) + (vp * vp / probe_dof if probe_dof > 0 else 0.0)
    nu = (vd + vp) ** 2 / den if den > 0 else max(dof, 1)
    return float(stats.t.ppf(0.5 + conf / 2.0, max(nu, 1.0)))


def _derive(
    comp: np.ndarray, data_cov: np.ndarray, probe_cov: np.ndarray, dof: int, probe_dof: int, conf: float
) -> dict:
    """B_noise, B_simple, eps_max, Delta L_max and their intervals from the components and their covariance."""
    cov = data_cov + probe_cov
    D, S, M, T, G2 = (float(x) for x in comp)

    def tval(pairs) -> float:
        grad = np.zeros(5)
        for i, x in pairs:
            grad[i] = x
        return _t_value(grad, data_cov, probe_cov, dof, probe_dof, conf) if np.isfinite(grad).all() else 2.0

    out: dict[str, Any] = {}
    # B_simple = T / G2
    out["b_simple"] = T / G2 if G2 > 0 else (math.inf if math.isfinite(G2) else math.nan)
    t = tval(((_G2, 1.0 / T), (_T, -G2 / T**2))) if T > 0 else 2.0
    out["b_simple_ci"] = _fieller_inverse(T, G2, cov[_T, _T], cov[_G2, _G2], cov[_T, _G2], t)
    if not math.isfinite(D):
        for key in ("b_noise", "eps_max", "delta_l_max"):
            out[key], out[key + "_ci"] = math.nan, _NAN_CI
        return out
    t = tval(((_S, 1.0 / D), (_D, -S / D**2))) if D > 0 else 2.0
    ci = _fieller_inverse(D, S, cov[_D, _D], cov[_S, _S], cov[_D, _S], t)
    out["b_noise"] = math.pi * D / (2.0 * S) if S > 0 else math.inf
    out["b_noise_ci"] = (math.pi / 2.0 * ci[0], math.pi / 2.0 * ci[1])
    if S > 0 and D > 0 and M > 0:
        out["eps_max"] = M / (2.0 * math.sqrt(S * D))
        out["delta_l_max"] = M * M / (2.0 * S)
        grad_eps = np.zeros(5)
        grad_eps[[_D, _S, _M]] = (-0.5 / D, -0.5 / S, 1.0 / M)
        grad_dl = np.zeros(5)
        grad_dl[[_S, _M]] = (-1.0 / S, 2.0 / M)
        t_eps = _t_value(grad_eps, data_cov, probe_cov, dof, probe_dof, conf)
        t_dl = _t_value(grad_dl, data_cov, probe_cov, dof, probe_dof, conf)
        out["eps_max_ci"] = _log_delta(out["eps_max"], grad_eps, cov, t_eps)
        out["delta_l_max_ci"] = _log_delta(out["delta_l_max"], grad_dl, cov, t_dl)
        if math.isinf(ci[1]):  # S not significantly > 0: both grow without bound
            out["eps_max_ci"] = (out["eps_max_ci"][0], math.inf)
            out["delta_l_max_ci"] = (out["delta_l_max_ci"][0], math.inf)
    else:
        out["eps_max"] = math.inf if S <= 0 else math.nan
        out["delta_l_max"] = math.inf if S <= 0 else math.nan
        if S <= 0 and D > 0 and M > 0 and math.isfinite(ci[0]) and ci[1] == math.inf:
            # lower ends at the smallest S/D compatible with the data (the Fieller upper end of S/D)
            s_hi = math.pi * D / (2.0 * ci[0]) if ci[0] > 0 else math.inf
            out["eps_max_ci"] = (M / (2.0 * math.sqrt(s_hi * D)), math.inf)
            out["delta_l_max_ci"] = (M * M / (2.0 * s_hi), math.inf)
        else:
            out["eps_max_ci"] = out["delta_l_max_ci"] = _NAN_CI
    return out


def _nan_estimate(m, b, n, conf, bs, message) -> NoiseEstimate:
    k = len(bs)
    return NoiseEstimate(
        b_noise=math.nan,
        b_noise_ci=_NAN_CI,
        b_simple=math.nan,
        b_simple_ci=_NAN_CI,
        eps_max=math.nan,
        eps_max_ci=_NAN_CI,
        delta_l_max=math.nan,
        delta_l_max_ci=_NAN_CI,
        validity_batch_size=math.nan,
        within_validity=None,
        n_examples=m * b,
        n_rows=m,
        micro_batch_size=b,
        n_params=n,
        n_groups=0,
        n_hvp=0,
        confidence=conf,
        components={c: math.nan for c in COMPONENTS},
        components_se={c: math.nan for c in COMPONENTS},
        covariance=np.full((5, 5), math.nan),
        dof=0,
        batch_sizes=bs,
        model_lr=np.full(k, math.nan),
        direct_lr=np.full(k, math.nan),
        direct_lr_ci=np.full((k, 2), math.nan),
        message=message,
    )


def pool_estimates(estimates, *, confidence: float | None = None) -> NoiseEstimate:
    """Pool several measurements (e.g. the last few of a run) into one: smoothing with honest intervals.

    The unbiased components (D, S, M, tr(Sigma), |G|^2) are averaged with weights proportional to each
    measurement's examples, their covariances combined as sum_k w_k^2 C_k, and B_noise, B_simple, eps_max
    and Delta L_max recomputed from the averages (a ratio of means, as nanoGNS and McCandlish smooth). The
    pooled ``n_examples`` says how much data went in. Curves and the validity batch size are those of the
    latest measurement. Measurements at different parameters are pooled as if at one: keep windows short
    against the time scale on which B_noise moves.

    Args:
        estimates: iterable of NoiseEstimate, oldest first; items that are not NoiseEstimate or have no
            finite component are left out. A component missing (NaN) in some measurements (e.g. the
            Hessian ones, measured less often) is averaged over those that have it.
        confidence: float in (0, 1), nominal coverage of the pooled intervals; None (default): that of the
            latest measurement.

    Returns:
        NoiseEstimate: the latest usable measurement with its derived values, intervals, components,
        covariances, degrees of freedom (summed), ``within_validity``, ``n_examples``, ``n_rows`` and
        ``n_hvp`` (summed) replaced by the pooled ones, and a ``message`` saying how many were pooled.

    Raises:
        SurgeError: no NoiseEstimate with finite components among ``estimates``, or ``confidence`` not a
            number in (0, 1).
    """
    ests = [e for e in estimates if isinstance(e, NoiseEstimate) and np.isfinite(list(e.components.values())).any()]
    if not ests:
        raise SurgeError("pool_estimates needs at least one NoiseEstimate with finite components")
    conf = ests[-1].confidence if confidence is None else _confidence(confidence)
    # per component: weights over the measurements that have it (the Hessian components may be measured
    # less often than the gradient ones), proportional to their examples
    vals = np.array([[e.components[c] for c in COMPONENTS] for e in ests])  # (k, 5)
    have = np.isfinite(vals)
    w = np.where(have, np.array([e.n_examples for e in ests], dtype=float)[:, None], 0.0)
    tot = w.sum(0)
    w = np.divide(w, tot, out=np.zeros_like(w), where=tot > 0)
    comp = np.where(tot > 0, (w * np.where(have, vals, 0.0)).sum(0), math.nan)
    cov = np.zeros((5, 5))
    pcov = np.zeros((5, 5))
    for k, e in enumerate(ests):
        ww = np.outer(w[k], w[k])
        cov += ww * np.nan_to_num(e.covariance)
        pcov += ww * np.nan_to_num(e.probe_covariance)
    dof = int(sum(e.dof for e in ests))
    probe_dof = int(sum(e.probe_dof for e in ests))
    est = _derive(np.asarray(comp), cov - pcov, pcov, dof, probe_dof, conf)
    last = ests[-1]
    within = None if not math.isfinite(est["b_noise"]) else bool(est["b_noise"] < last.validity_batch_size)
    return replace(
        last,
        **{key: est[key] for key in _DERIVED},
        within_validity=within,
        n_examples=int(sum(e.n_examples for e in ests)),
        n_rows=int(sum(e.n_rows for e in ests)),
        n_hvp=int(sum(e.n_hvp for e in ests)),
        confidence=conf,
        components=dict(zip(COMPONENTS, (float(x) for x in comp))),
        components_se=dict(zip(COMPONENTS, (float(math.sqrt(max(x, 0.0))) for x in np.diag(cov)))),
        covariance=np.asarray(cov),
        dof=dof,
        probe_covariance=np.asarray(pcov),
        probe_dof=probe_dof,
        message=f"pooled over {len(ests)} measurement(s)" + (f"; latest: {last.message}" if last.message else ""),
    )
