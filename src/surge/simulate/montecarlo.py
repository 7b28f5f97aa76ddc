"""One-step Monte Carlo of the sign-gradient model, and the data of the paper's Figure 1. NumPy only.

For a quadratic loss L(theta) = 1/2 (theta - theta*)^T H (theta - theta*) with gradient G at theta, one
update theta -> theta - lr V decreases the loss by exactly

    L(theta) - L(theta - lr V) = lr G^T V - lr^2 / 2 V^T H V          (Eq 30, exact for a quadratic)

so each Monte-Carlo sample only needs a = G^T V and c = V^T H V. Over any learning-rate grid the
expected decrease is lr E[a] - lr^2 / 2 E[c] (Eq 31), and its argmax is the ratio E[a] / E[c] (Lemma 1,
Eq 6), which is what is compared with the exact Eq 9 (sign descent) or McCandlish's law (SGD).

Sampling. The batch gradient G_est of B per-sample gradients N(mu_i, sigma_i^2), independent across
coordinates, is drawn directly as N(mu_i, sigma_i^2 / B) (Eq 34): this is exact in distribution for
Gaussian per-sample gradients, and costs n normals per sample instead of B n. All batch sizes share the
same standard normals z (common random numbers: G_est = mu + sigma z / sqrt(B)), so the curve over B is
smooth and differences between batch sizes are far more precise than each point; each point on its own
is still an unbiased Monte-Carlo estimate with an honest standard error. By default z and -z are used
in pairs (antithetic variates); the standard errors are then computed over the pair means. Samples are
processed in chunks to bound memory.

Why one module of ~590 lines: the vectorized estimator for three update rules, its exact references (Eq 9,
McCandlish) and the Figure 1 driver are checked against each other and change together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from surge._validation import check_array, check_choice, check_int, check_scalar
from surge.errors import SurgeError, SurgeTypeError
from surge.theory.problems import Problem, make_problem

__all__ = [
    "AdamMoments",
    "Figure1Result",
    "OneStepResult",
    "figure1_data",
    "mc_peak_batch_size",
    "one_step_monte_carlo",
]

UPDATE_RULES = ("sign", "adam", "sgd")  # what the simulator steps: sign(G_est), Adam (Eq 25-27), SGD
# (batch sizes) x (chunk) x (n) work arrays are kept below this many elements.
_MAX_WORK_ELEMENTS = 1 << 21


@dataclass(frozen=True, eq=False)
class AdamMoments:
    """Adam's moment state before the simulated update (Eq 25, 26); the update is step ``step + 1``.

    ``AdamMoments.fresh(n)`` is the state before the first step (m = v = 0, step 0), for which the update
    is G_est / (|G_est| + eps), i.e. sign descent for any betas (Eq 29).

    Attributes:
        m: array (n,), the first moment m_{t-1}.
        v: array (n,), the second moment v_{t-1}, >= 0.
        step: t - 1, the number of steps already taken, an integer >= 0.

    Raises:
        SurgeError: on construction, a non-finite ``m`` or ``v``, a negative ``v``, shapes that differ or
            are not 1-D, or a ``step`` that is not an integer >= 0.
    """

    m: np.ndarray  # (n,) first moment m_{t-1}
    v: np.ndarray  # (n,) second moment v_{t-1}, >= 0
    step: int  # t - 1, the number of steps already taken

    def __post_init__(self) -> None:
        m = check_array(self.m, "adam_state.m", ndim=1)
        v = check_array(self.v, "adam_state.v", ndim=1, nonnegative=True)
        if v.shape != m.shape:
            raise SurgeError(f"adam_state.v must have the shape of adam_state.m {m.shape}, got {v.shape}")
        object.__setattr__(self, "step", check_int(self.step, "adam_state.step", minimum=0))
        object.__setattr__(self, "m", m)
        object.__setattr__(self, "v", v)

    @classmethod
    def fresh(cls, n: int) -> AdamMoments:
        """The state before the first step: m = v = 0 in ``n`` coordinates, step 0.

        Args:
            n: number of coordinates (the problem's ``n``), an integer >= 0.

        Returns:
            AdamMoments: zero moments of shape (n,) and ``step=0``.

        Raises:
            SurgeTypeError: ``n`` is not an integer.
            SurgeError: ``n`` < 0.
        """
        n = check_int(n, "n", minimum=0)
        return cls(np.zeros(n), np.zeros(n), 0)


@dataclass(frozen=True, eq=False)
class OneStepResult:
    """Monte-Carlo estimate of one update's expected loss decrease, per batch size, over a learning-rate grid.

    Attributes:
        optimizer: the update rule: ``"sign"``, ``"adam"`` or ``"sgd"``.
        problem: the problem's name.
        batch_size: array (nb,) of the batch sizes B, in examples.
        samples: Monte-Carlo samples per batch size (all batch sizes share them); even when antithetic.
        seed: the seed of the random generator.
        lr: array (nlr,), the learning-rate grid.
        mean_decrease: array (nb, nlr), estimate of E[L(theta) - L(theta - lr V)] (Eq 31), in the loss's unit.
        mean_decrease_stderr: array (nb, nlr), its standard error.
        grid_optimal_lr: array (nb,), argmax of ``mean_decrease`` over the grid.
        mc_optimal_lr: array (nb,), E[a] / E[c], the continuous argmax (Eq 6).
        mc_stderr: array (nb,), delta-method standard error of ``mc_optimal_lr``, floored at
            |estimate| / samples.
        mean_gv: array (nb,), E[a] = E[G^T V].
        mean_vhv: array (nb,), E[c] = E[V^T H V].
        exact_optimal_lr: array (nb,), Eq 9 (sign, fresh Adam) or McCandlish (SGD); NaN without a closed form.
        exact_name: which formula ``exact_optimal_lr`` is, or ``""`` when none.
        betas: Adam's (beta1, beta2); None for sign and SGD.
        antithetic: whether z and -z were used in pairs.
        notes: free-form extra information (empty by default).
    """

    optimizer: str  # "sign", "adam" or "sgd"
    problem: str  # the problem's name
    batch_size: np.ndarray  # (nb,)
    samples: int  # Monte-Carlo samples per batch size (all batch sizes share them)
    seed: int
    lr: np.ndarray  # (nlr,) the learning-rate grid
    mean_decrease: np.ndarray  # (nb, nlr) estimate of E[L(theta) - L(theta - lr V)] (Eq 31)
    mean_decrease_stderr: np.ndarray  # (nb, nlr) its standard error
    grid_optimal_lr: np.ndarray  # (nb,) argmax of mean_decrease over the grid
    mc_optimal_lr: np.ndarray  # (nb,) E[a] / E[c], the continuous argmax (Eq 6)
    mc_stderr: np.ndarray  # (nb,) delta-method standard error of mc_optimal_lr, floored at |estimate| / samples
    mean_gv: np.ndarray  # (nb,) E[a] = E[G^T V]
    mean_vhv: np.ndarray  # (nb,) E[c] = E[V^T H V]
    exact_optimal_lr: np.ndarray  # (nb,) Eq 9 (sign, fresh Adam) or McCandlish (SGD); nan without a closed form
    exact_name: str  # which formula exact_optimal_lr is, or "" when none
    betas: tuple[float, float] | None = None  # Adam's (beta1, beta2); None for sign and SGD
    antithetic: bool = True
    notes: dict = field(default_factory=dict)

    @property
    def z_scores(self) -> np.ndarray:
        """(mc_optimal_lr - exact_optimal_lr) / mc_stderr; nan where there is no exact value."""
        return (self.mc_optimal_lr - self.exact_optimal_lr) / self.mc_stderr

    def peak_batch_size(self, *, window: float = 4.0) -> float | None:
        """The Monte-Carlo peak of the optimal learning rate over B (``mc_peak_batch_size``).

        Args:
            window: factor in batch size around the largest point within which the parabola is fitted,
                > 1; default 4.

        Returns:
            float: the peak batch size, in examples; None when the largest value is at either end.

        Raises:
            SurgeError: ``window`` <= 1 or not finite, or an ``mc_optimal_lr`` that is not > 0 everywhere.
        """
        return mc_peak_batch_size(self.batch_size, self.mc_optimal_lr, self.mc_stderr, window=window)


def mc_peak_batch_size(batch_size, optimal_lr, stderr=None, *, window: float = 4.0) -> float | None:
    """The peak of an optimal-lr curve known at a few batch sizes, or None when it has no interior maximum.

    Takes the largest value; if it is at either end there is no interior peak (None). Otherwise fits a
    parabola to log lr against log B (weighted by 1 / relative standard error when ``stderr`` is given)
    through the points within a factor ``window`` of the argmax and returns its vertex, clipped to the
    fitted range. Near its peak the Eq 2 curve is 1 / cosh(x / 2) with x = log(B / B_noise), flat to
    second order, so the vertex locates the peak much better than the grid argmax does.

    Args:
        batch_size: array (nb,) of batch sizes, in examples, > 0, in any order.
        optimal_lr: array (nb,) of the optimal learning rate at each batch size, > 0.
        stderr: array (nb,) of standard errors of ``optimal_lr``, >= 0, or None (default): unweighted fit.
        window: factor in batch size around the argmax within which the parabola is fitted, > 1; default 4.
            When fewer than 3 points lie within it, the argmax and its two neighbours are used.

    Returns:
        float: the peak batch size, in the unit of ``batch_size`` (the argmax itself when the parabola
            does not open downwards); None when the largest value is at either end.

    Raises:
        SurgeError: non-finite or non-positive values, shapes that differ or are not 1-D, a negative
            ``stderr``, or ``window`` <= 1; SurgeTypeError (a SurgeError) for non-numeric input.
    """
    b = check_array(batch_size, "batch_size", ndim=1, positive=True)
    lr = check_array(optimal_lr, "optimal_lr", ndim=1, positive=True)
    if lr.shape != b.shape:
        raise SurgeError(f"optimal_lr must have the shape of batch_size {b.shape}, got {lr.shape}")
    window = check_scalar(window, "window", positive=True)
    if window <= 1:
        raise SurgeError(f"window must be > 1 (a factor in batch size), got {window}")
    order = np.argsort(b)
    b, lr = b[order], lr[order]
    i = int(np.argmax(lr))
    if i == 0 or i == b.size - 1:
        return None
    x, y = np.log(b), np.log(lr)
    sel = np.abs(x - x[i]) <= math.log(window) + 1e-12
    if sel.sum() < 3:
        sel = np.zeros_like(sel)
        sel[i - 1 : i + 2] = True
    w = None
    if stderr is not None:
        se = check_array(stderr, "stderr", ndim=1, nonnegative=True)[order]
        rel = se / lr
        floor = max(float(rel[sel].max()) * 1e-3, 1e-12)
        w = 1.0 / np.maximum(rel[sel], floor)
    coef = np.polyfit(x[sel], y[sel], 2, w=w)
    if not coef[0] < 0:
        return float(b[i])
    vertex = -coef[1] / (2 * coef[0])
    return float(math.exp(min(max(vertex, x[sel].min()), x[sel].max())))


# ---- the Monte Carlo ---------------------------------------------------------------------------


class _Moments:
    """Running mean and (co)variances of (a, c), merged chunk by chunk (Chan et al.'s parallel update)."""

    def __init__(self, nb: int) -> None:
        self.count = 0
        self.mean = np.zeros((2, nb))
        self.m2 = np.zeros((3, nb))  # sum of squared deviations: aa, cc, ac

    def add(self, a: np.ndarray, c: np.ndarray) -> None:
        k = a.shape[1]
        mean_b = np.stack([a.mean(axis=1), c.mean(axis=1)])
        da, dc = a - mean_b[0][:, None], c - mean_b[1][:, None]
        m2_b = np.stack([(da * da).sum(axis=1), (dc * dc).sum(axis=1), (da * dc).sum(axis=1)])
        n_a, n = self.count, self.count + k
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (k / n)
        corr = n_a * k / n
        self.m2 = self.m2 + m2_b + corr * np.stack([delta[0] ** 2, delta[1] ** 2, delta[0] * delta[1]])
        self.count = n

    def covariance(self) -> np.ndarray:
        return self.m2 / max(self.count - 1, 1)


def _update_direction(g: np.ndarray, optimizer: str, betas, eps: float, state: AdamMoments | None) -> np.ndarray:
    if optimizer == "sign":
        return np.sign(g)
    if optimizer == "sgd":
        return g
    b1, b2 = betas
    t = state.step + 1
    m = b1 * state.m + (1.0 - b1) * g
    v = b2 * state.v + (1.0 - b2) * g * g
    m_hat = m / (1.0 - b1**t)
    v_hat = v / (1.0 - b2**t)
    return m_hat / (np.sqrt(v_hat) + eps)  # Eq 27


def _seed(seed) -> int:
    return check_int(seed, "seed", minimum=0)


def _count(value, name: str, minimum: int) -> int:
    return check_int(value, name, minimum=minimum)


def _betas(betas) -> tuple[float, float]:
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise SurgeError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
    b1 = check_scalar(b1, "betas[0]", nonnegative=True)
    b2 = check_scalar(b2, "betas[1]", nonnegative=True)
    for name, b in (("betas[0]", b1), ("betas[1]", b2)):
        if not b < 1:
            raise SurgeError(f"{name} must be in [0, 1), got {b}")
    return b1, b2


def one_step_monte_carlo(
    problem: Problem | str,
    batch_sizes,
    *,
    optimizer: str = "sign",
    samples: int = 100_000,
    seed: int = 0,
    lrs=None,
    betas=(0.9, 0.999),
    eps: float = 1e-8,
    adam_state: AdamMoments | None = None,
    antithetic: bool = True,
) -> OneStepResult:
    """Estimate the expected one-step loss decrease and its argmax over the learning rate, per batch size.

    Args:
        problem: the sign-gradient model (a :class:`surge.theory.problems.Problem`: per-sample gradients
            N(mu, sigma^2), Hessian H), or a built-in problem name or ``.npz`` path (``make_problem``).
        batch_sizes: array (nb,) of batch sizes B, in examples, > 0. G_est ~ N(mu, sigma^2 / B) per
            coordinate (Eq 34), exact in distribution for Gaussian per-sample gradients; B need not be an
            integer.
        optimizer: the update V: ``"sign"`` (default), sign(G_est) (Eq 5); ``"adam"``, Adam's
            m_hat / (sqrt(v_hat) + eps) from ``adam_state`` with ``betas`` (Eq 25-27); or ``"sgd"``, G_est
            itself.
        samples: Monte-Carlo samples per batch size, an integer >= 4 (shared by all batch sizes; rounded up
            to even when antithetic); default 100,000.
        seed: seed of the ``np.random.Generator``, an integer >= 0; equal seeds give equal results.
        lrs: array (nlr,) of learning rates > 0, the grid for ``mean_decrease``; by default (None) 61
            log-spaced values from a quarter of the smallest to four times the largest Monte-Carlo optimum.
        betas: Adam's (beta1, beta2), each in [0, 1); used (and checked) only with ``optimizer="adam"``.
            Default (0.9, 0.999).
        eps: Adam's eps in the update's denominator, >= 0; default 1e-8. Used only with
            ``optimizer="adam"``.
        adam_state: Adam's moments before the update, of shape (n,) like the problem; default None, i.e.
            ``AdamMoments.fresh(n)``: the first step, a sign update. Only with ``optimizer="adam"``.
        antithetic: use z and -z in pairs (default True). Standard errors are then computed over pair
            means.

    Returns:
        OneStepResult: with ``exact_optimal_lr`` = Eq 9 for sign descent (and for Adam's first step from
            fresh moments, which is sign descent up to eps), McCandlish's eps_max / (1 + B_noise / B) for
            SGD (exact here), and NaN otherwise.

    Raises:
        SurgeTypeError: ``problem`` is neither a Problem nor a name, ``samples`` is not an integer, or
            ``adam_state`` is not an :class:`AdamMoments`.
        SurgeError: an unknown problem name or a bad ``.npz`` file, an unknown ``optimizer``, batch sizes
            or ``lrs`` not finite and > 0 (or not 1-D), ``samples`` < 4, ``seed`` not an integer >= 0,
            ``eps`` < 0, ``betas`` not a pair in [0, 1), ``adam_state`` of the wrong shape or given with
            another optimizer, or E[V^T H V] <= 0 (a Hessian that is not positive semi-definite).
    """
    if isinstance(problem, str):
        problem = make_problem(problem)
    if not isinstance(problem, Problem):
        raise SurgeTypeError(f"problem must be a Problem or a problem name, got {type(problem).__name__}")
    optimizer = check_choice(optimizer, "optimizer", UPDATE_RULES)
    b = check_array(batch_sizes, "batch_sizes", ndim=1, positive=True)
    samples = _count(samples, "samples", 4)
    seed = _seed(seed)
    eps = check_scalar(eps, "eps", nonnegative=True)
    n = problem.n
    state = None
    bet = None
    if optimizer == "adam":
        bet = _betas(betas)
        state = adam_state if adam_state is not None else AdamMoments.fresh(n)
        if not isinstance(state, AdamMoments):
            raise SurgeTypeError(f"adam_state must be an AdamMoments, got {type(state).__name__}")
        if state.m.shape != (n,):
            raise SurgeError(f"adam_state.m must have shape ({n},) like the problem's mu, got {state.m.shape}")
    elif adam_state is not None:
        raise SurgeError(f"adam_state is only used with optimizer='adam', not {optimizer!r}")

    mu, scale = problem.mu, problem.sigma[None, None, :] / np.sqrt(b)[:, None, None]
    h = problem.hessian
    rng = np.random.default_rng(seed)
    draws = (samples + 1) // 2 if antithetic else samples
    chunk = max(1, _MAX_WORK_ELEMENTS // (b.size * n * (2 if antithetic else 1)))
    moments = _Moments(b.size)

    def ac(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        g = mu + scale * z[None, :, :]  # (nb, k, n)
        v = _update_direction(g, optimizer, bet, eps, state).reshape(-1, n)  # one BLAS call below, not nb
        a = v @ mu
        c = (v * v) @ h if problem.is_diagonal else np.einsum("ki,ki->k", v @ h, v)
        return a.reshape(b.size, -1), c.reshape(b.size, -1)

    done = 0
    while done < draws:
        k = min(chunk, draws - done)
        z = rng.standard_normal((k, n))
        a, c = ac(z)
        if antithetic:
            a2, c2 = ac(-z)
            a, c = 0.5 * (a + a2), 0.5 * (c + c2)
        moments.add(a, c)
        done += k

    mean_a, mean_c = moments.mean
    cov = moments.covariance() / moments.count  # covariance of the means
    var_a, var_c, cov_ac = cov
    if (mean_c <= 0).any():
        raise SurgeError("E[V^T H V] <= 0: the hessian must be positive semi-definite for an optimal learning rate")
    ratio = mean_a / mean_c
    var_ratio = (var_a - 2 * ratio * cov_ac + ratio**2 * var_c) / mean_c**2  # delta method
    n_samples = 2 * draws if antithetic else draws
    # Floor at the resolution of n samples: where no sample saw a wrong sign (saturated batch sizes) the
    # sample variance is 0, which would claim infinite precision.
    stderr = np.maximum(np.sqrt(np.maximum(var_ratio, 0.0)), np.abs(ratio) / n_samples)

    if lrs is None:
        pos = ratio[ratio > 0]
        lo, hi = (pos.min() / 4, pos.max() * 4) if pos.size else (1e-6, 1.0)
        grid = np.geomspace(lo, hi, 61)
    else:
        grid = check_array(lrs, "lrs", ndim=1, positive=True)
    lr = grid[None, :]
    dec = lr * mean_a[:, None] - 0.5 * lr**2 * mean_c[:, None]
    var_dec = lr**2 * var_a[:, None] + 0.25 * lr**4 * var_c[:, None] - lr**3 * cov_ac[:, None]
    dec_se = np.sqrt(np.maximum(var_dec, 0.0))
    grid_opt = grid[np.argmax(dec, axis=1)]

    if optimizer == "sgd":
        exact, name = problem.sgd_optimal_lr(b), "McCandlish (Eq 1)"
    elif optimizer == "sign" or (state.step == 0 and not state.m.any() and not state.v.any()):
        exact, name = problem.model.optimal_lr(b), "Eq 9"
    else:
        exact, name = np.full(b.size, math.nan), ""
    return OneStepResult(
        optimizer=optimizer,
        problem=problem.name,
        batch_size=b,
        samples=n_samples,
        seed=seed,
        lr=grid,
        mean_decrease=dec,
        mean_decrease_stderr=dec_se,
        grid_optimal_lr=grid_opt,
        mc_optimal_lr=ratio,
        mc_stderr=stderr,
        mean_gv=mean_a,
        mean_vhv=mean_c,
        exact_optimal_lr=np.asarray(exact, dtype=float),
        exact_name=name,
        betas=bet,
        antithetic=bool(antithetic),
    )


# ---- Figure 1 ----------------------------------------------------------------------------------

DEFAULT_FIGURE1_BATCH_SIZES = tuple(float(2**k) for k in range(17))  # 1 .. 65536


@dataclass(frozen=True, eq=False)
class Figure1Result:
    """Data of the paper's Figure 1 on one problem: sign descent (with its theory) and SGD (with McCandlish's).

    Attributes:
        problem: the problem's name.
        n: number of coordinates.
        batch_size: array (nb,) of the batch sizes where the Monte Carlo ran, in examples.
        sign: the sign-descent Monte Carlo.
        sgd: the SGD Monte Carlo on the same problem.
        theorem3_lr: array (nb,), Eq 13 / Eq 40 at ``batch_size`` (NaN where its denominator is <= 0).
        curve_batch_size: array (m,), dense grid of batch sizes for the exact curves.
        exact_curve: array (m,), Eq 9 on ``curve_batch_size``.
        theorem3_curve: array (m,), Eq 13 / Eq 40 on ``curve_batch_size``.
        sgd_exact_curve: array (m,), McCandlish's law on ``curve_batch_size``.
        b_noise: Eq 14 (inf without coupling, NaN with negative coupling), in examples.
        eps_max: Eq 16, the peak learning rate of Theorem 3.
        large_batch_lr: the Theorem 4 plateau, Eq 17.
        validity_batch_size: min_i pi sigma_i^2 / (2 mu_i^2): Theorem 3 holds well below it.
        exact_peak_batch_size: argmax of Eq 9; None without an interior peak.
        mc_peak_batch_size: the Monte-Carlo peak (``mc_peak_batch_size``); None without an interior peak.
        sgd_b_noise: McCandlish's B_noise, tr(H Sigma) / G^T H G.
        sgd_eps_max: McCandlish's eps_max, |G|^2 / G^T H G.
    """

    problem: str
    n: int  # number of coordinates
    batch_size: np.ndarray  # (nb,) where the Monte Carlo ran
    sign: OneStepResult  # sign-descent Monte Carlo
    sgd: OneStepResult  # SGD Monte Carlo on the same problem
    theorem3_lr: np.ndarray  # (nb,) Eq 13 / Eq 40 at batch_size
    curve_batch_size: np.ndarray  # (m,) dense grid for the exact curves
    exact_curve: np.ndarray  # (m,) Eq 9
    theorem3_curve: np.ndarray  # (m,) Eq 13 / Eq 40
    sgd_exact_curve: np.ndarray  # (m,) McCandlish
    b_noise: float  # Eq 14 (inf without coupling, nan with negative coupling)
    eps_max: float  # Eq 16
    large_batch_lr: float  # Theorem 4 plateau, Eq 17
    validity_batch_size: float  # min_i pi sigma_i^2 / (2 mu_i^2): Theorem 3 holds well below it
    exact_peak_batch_size: float | None  # argmax of Eq 9, None without an interior peak
    mc_peak_batch_size: float | None  # Monte-Carlo peak (mc_peak_batch_size), None without an interior peak
    sgd_b_noise: float  # tr(H Sigma) / G^T H G
    sgd_eps_max: float  # |G|^2 / G^T H G

    def to_dict(self) -> dict:
        """The JSON object of ``surge simulate figure1 --json``.

        Returns:
            dict of the sign-descent Monte Carlo (optimal lr, standard errors, z-scores and their max |z|),
                the theory (Eq 9, Eq 13, B_noise, eps_max, the plateau, the validity batch size, the peaks)
                and the SGD Monte Carlo with McCandlish's values; arrays stay NumPy arrays.
        """
        z = self.sign.z_scores
        zs = self.sgd.z_scores
        return {
            "problem": self.problem,
            "n": self.n,
            "samples": self.sign.samples,
            "seed": self.sign.seed,
            "batch_size": self.batch_size,
            "mc_optimal_lr": self.sign.mc_optimal_lr,
            "mc_stderr": self.sign.mc_stderr,
            "exact_optimal_lr": self.sign.exact_optimal_lr,
            "theorem3_lr": self.theorem3_lr,
            "z_score": z,
            "max_abs_z": float(np.nanmax(np.abs(z))),
            "b_noise": self.b_noise,
            "eps_max": self.eps_max,
            "large_batch_lr": self.large_batch_lr,
            "validity_batch_size": self.validity_batch_size,
            "exact_peak_batch_size": self.exact_peak_batch_size,
            "mc_peak_batch_size": self.mc_peak_batch_size,
            "sgd_mc_optimal_lr": self.sgd.mc_optimal_lr,
            "sgd_mc_stderr": self.sgd.mc_stderr,
            "sgd_exact_optimal_lr": self.sgd.exact_optimal_lr,
            "sgd_max_abs_z": float(np.nanmax(np.abs(zs))),
            "sgd_b_noise": self.sgd_b_noise,
            "sgd_eps_max": self.sgd_eps_max,
        }


def figure1_data(
    problem: Problem | str = "surge",
    *,
    batch_sizes=DEFAULT_FIGURE1_BATCH_SIZES,
    samples: int = 100_000,
    seed: int = 0,
    curve_points: int = 400,
) -> Figure1Result:
    """Run the sign-descent and SGD Monte Carlo of Figure 1 and evaluate the exact curves beside them.

    Sign descent: Monte Carlo, the exact Eq 9, Theorem 3 (Eq 13), the Theorem 4 plateau (Eq 17) and
    B_noise (Eq 14). SGD: Monte Carlo and McCandlish's eps_max / (1 + B_noise / B). The two Monte Carlo
    runs use different streams of the same seed.

    Args:
        problem: a :class:`surge.theory.problems.Problem`, or a built-in problem name or ``.npz`` path
            (``make_problem``); default ``"surge"``.
        batch_sizes: array (nb,) of batch sizes, in examples, > 0; default 1, 2, 4, ..., 65536.
        samples: Monte-Carlo samples per batch size, an integer >= 4; default 100,000.
        seed: an integer >= 0; sign descent uses ``seed`` and SGD ``seed + 1``.
        curve_points: points of the dense grid of the exact curves, an integer >= 2, log-spaced from half
            the smallest to twice the largest batch size; default 400.

    Returns:
        Figure1Result: the two Monte Carlo results, the exact curves and the theory's numbers.

    Raises:
        SurgeTypeError: ``curve_points`` or ``samples`` is not an integer, or ``problem`` is neither a
            Problem nor a name.
        SurgeError: an unknown problem name or a bad ``.npz`` file, batch sizes not finite and > 0 (or not
            1-D), ``curve_points`` < 2, ``samples`` < 4, or ``seed`` not an integer >= 0.
    """
    if isinstance(problem, str):
        problem = make_problem(problem)
    b = check_array(batch_sizes, "batch_sizes", ndim=1, positive=True)
    curve_points = _count(curve_points, "curve_points", 2)
    seed = _seed(seed)
    sign = one_step_monte_carlo(problem, b, optimizer="sign", samples=samples, seed=seed)
    sgd = one_step_monte_carlo(problem, b, optimizer="sgd", samples=samples, seed=seed + 1)
    model = problem.model
    curve_b = np.geomspace(b.min() / 2, b.max() * 2, curve_points)
    peak = model.peak()
    return Figure1Result(
        problem=problem.name,
        n=problem.n,
        batch_size=b,
        sign=sign,
        sgd=sgd,
        theorem3_lr=_theorem3(model, b),
        curve_batch_size=curve_b,
        exact_curve=model.optimal_lr(curve_b),
        theorem3_curve=_theorem3(model, curve_b),
        sgd_exact_curve=problem.sgd_optimal_lr(curve_b),
        b_noise=model.b_noise,
        eps_max=model.eps_max,
        large_batch_lr=model.large_batch_lr,
        validity_batch_size=model.validity_batch_size,
        exact_peak_batch_size=None if peak is None else peak.batch_size,
        mc_peak_batch_size=sign.peak_batch_size(),
        sgd_b_noise=problem.sgd_b_noise,
        sgd_eps_max=problem.sgd_eps_max,
    )


def _theorem3(model, b: np.ndarray) -> np.ndarray:
    """Eq 40 line 1 where its denominator is positive, nan elsewhere (negative coupling at large B)."""
    den = model.trace + (2.0 * b / math.pi) * model.coupling
    out = np.full(b.shape, math.nan)
    ok = den > 0
    if ok.any():
        out[ok] = model.theorem3_lr(b[ok])
    return out
