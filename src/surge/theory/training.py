"""Many-step training on a noisy quadratic, following the paper's protocol (Section 3). NumPy only.

The loss is L(theta) = 1/2 (theta - theta*)^T H (theta - theta*), exact (no probe noise). A batch of B
per-sample gradients, each N(H (theta - theta*), diag(sigma^2)), has mean

    G_est = H (theta - theta*) + sigma * xi / sqrt(B),   xi ~ N(0, I)              (Eq 34)

which is drawn directly (exact in distribution). sigma is constant, so as training shrinks the mean
gradient the signal-to-noise ratio falls and B_noise (Eq 14) grows: the paper's second conclusion.

Every (learning rate, batch size, seed) trajectory is one row of a (K, n) state array and all rows step
together. Trajectories of one batch size and one seed share the noise xi at every step, whatever their
learning rate (common random numbers, as the paper's trials of one round share their batches).

Protocol, per target loss (a "stage"), exactly as in the paper:

* S = the first step at which the loss is <= the target, E = B * S;
* the loss decrease over exactly ``n_after`` further steps, L(S) - L(S + n_after);
* a trajectory that does not reach the target (or does not get ``n_after`` more steps) within
  ``max_steps``, or diverges, is censored for that stage: kept and counted, not averaged in;
* per batch size, the optimal learning rate is the argmax over learning rates of the mean decrease over
  seeds, and S(B) is the minimum over learning rates of the mean steps over seeds, both counting only
  learning rates at which at least half of the seeds were measured; B_noise is fitted from (B, S(B)) with
  Eq 22 (``surge.fit.fit_b_noise``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from surge._validation import check_array, check_choice, check_scalar
from surge.fit import BNoiseFit, fit_b_noise
from surge.theory.sign_model import SignGradientModel
from surge.errors import SurgeError, SurgeTypeError

__all__ = [
    "QuadraticProblem",
    "StageResult",
    "TrainingResult",
    "default_training_problem",
    "simulate_training",
]

OPTIMIZERS = ("sign", "adam", "sgd")


@dataclass(frozen=True, eq=False)
class QuadraticProblem:
    """L(theta) = 1/2 (theta - theta*)^T H (theta - theta*) with per-sample gradient noise N(0, sigma^2) per coordinate.

    theta* = 0 without loss of generality, so the state is delta = theta - theta* and ``delta0`` is where
    training starts.
    """

    name: str
    hessian: np.ndarray  # (n, n) symmetric positive semi-definite
    sigma: np.ndarray  # (n,) per-sample gradient noise std, > 0, constant during training
    delta0: np.ndarray  # (n,) theta_0 - theta*
    description: str = ""
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        h = check_array(self.hessian, "hessian", ndim=2)
        n = h.shape[0]
        if h.shape != (n, n):
            raise SurgeError(f"hessian must be square, got shape {h.shape}")
        scale = max(float(np.abs(h).max()), np.finfo(float).tiny)
        if float(np.abs(h - h.T).max()) > 1e-10 * scale:
            raise SurgeError("hessian must be symmetric")
        if float(np.linalg.eigvalsh(h).min()) < -1e-10 * scale:
            raise SurgeError("hessian must be positive semi-definite (the loss must be bounded below)")
        sigma = check_array(self.sigma, "sigma", ndim=1, positive=True)
        delta0 = check_array(self.delta0, "delta0", ndim=1)
        for name, arr in (("sigma", sigma), ("delta0", delta0)):
            if arr.shape != (n,):
                raise SurgeError(f"{name} must have shape ({n},) like the hessian, got {arr.shape}")
        object.__setattr__(self, "hessian", h)
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "delta0", delta0)

    @property
    def n(self) -> int:
        return int(self.sigma.size)

    def loss(self, delta) -> np.ndarray:
        """1/2 delta^T H delta over the last axis."""
        d = np.asarray(delta, dtype=float)
        return 0.5 * np.einsum("...i,...i->...", d @ self.hessian, d)

    @property
    def initial_loss(self) -> float:
        return float(self.loss(self.delta0))

    def b_noise(self, delta) -> np.ndarray:
        """The paper's B_noise (Eq 14) at state ``delta``, with mu = H delta: pi D / (2 S); inf / nan without coupling."""
        d = np.atleast_2d(np.asarray(delta, dtype=float))
        r = (d @ self.hessian) / self.sigma
        diag = np.diag(self.hessian)
        s = np.einsum("ki,ki->k", r @ self.hessian, r) - (r * r) @ diag
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(s > 0, math.pi * diag.sum() / (2.0 * s), np.where(s == 0, math.inf, math.nan))
        return out.reshape(np.shape(delta)[:-1])


def default_training_problem(
    *,
    n_blocks: int = 4,
    block_size: int = 32,
    curvatures=(1.0, 0.01),
    ridge: float = 1e-3,
    sigma: float = 1.0,
    start: float = 1.0,
) -> QuadraticProblem:
    """The default problem of ``surge simulate training``: coupled blocks with a spread of curvatures.

    n = n_blocks * block_size coordinates in blocks; block b has Hessian ridge I + lambda_b 1 1^T / block_size,
    with lambda_b log-spaced over ``curvatures`` (high, low), and the blocks are uncoupled. Training starts
    at theta_0 - theta* = ``start`` in every coordinate, so within a block the mean gradients share a sign
    and the off-diagonal Hessian couples them: the SNR coupling S of Eq 14 is positive and sign descent
    shows a surge. The spread of curvatures makes the loss fall gradually, as in a real network: the stiff
    blocks settle first at a noise floor set by the learning rate, and the loss left sits in the soft
    blocks. sigma, the per-sample gradient noise, is the same for every coordinate and constant, so as the
    mean gradient shrinks the signal-to-noise ratio falls and B_noise grows.

    The defaults (n = 128, lambda from 1 to 0.01, ridge 1e-3) give, with the default grid and targets
    0.5, 0.3 and 0.18 (the initial loss is 20.4), a sign-descent optimal learning rate that rises and
    falls with the batch size at every target, and Eq 22 estimates of B_noise of about 20, 45 and 120.
    """
    for name, val, lo in (("n_blocks", n_blocks, 1), ("block_size", block_size, 2)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
            raise SurgeError(f"{name} must be an integer >= {lo}, got {val!r}")
    curv = check_array(curvatures, "curvatures", ndim=1, positive=True)
    if curv.size != 2:
        raise SurgeError(f"curvatures must be (high, low), got {curv.tolist()}")
    ridge = check_scalar(ridge, "ridge", nonnegative=True)
    sig = check_scalar(sigma, "sigma", positive=True)
    start = check_scalar(start, "start")
    if start == 0:
        raise SurgeError("start must be non-zero (training would start at the minimum)")
    lam = np.geomspace(curv[0], curv[1], n_blocks)
    n = n_blocks * block_size
    h = ridge * np.eye(n)
    for k, lam_k in enumerate(lam):
        sl = slice(k * block_size, (k + 1) * block_size)
        h[sl, sl] += lam_k / block_size
    params = {"n_blocks": n_blocks, "block_size": block_size, "curvatures": curv.tolist(), "ridge": ridge, "sigma": sig, "start": start}
    return QuadraticProblem(
        "coupled-blocks",
        h,
        np.full(n, sig),
        np.full(n, start),
        f"{n_blocks} blocks of {block_size}: ridge I + lambda_b 1 1^T / {block_size}, lambda_b in "
        f"[{curv[1]:g}, {curv[0]:g}]; theta_0 - theta* = {start:g}",
        params,
    )


@dataclass(frozen=True, eq=False)
class StageResult:
    """One target loss: optimal learning rate per batch size, steps and examples, and the Eq 22 fit."""

    target_loss: float
    batch_size: np.ndarray  # (nb,)
    lr: np.ndarray  # (nlr,) the grid
    mean_decrease: np.ndarray  # (nb, nlr) mean over uncensored seeds of L(S) - L(S + n_after); nan if none
    decrease_count: np.ndarray  # (nb, nlr) seeds averaged into mean_decrease
    mean_steps: np.ndarray  # (nb, nlr) mean S over seeds that reached the target; nan if none
    reached: np.ndarray  # (nb, nlr) seeds that reached the target
    optimal_lr: np.ndarray  # (nb,) argmax over lr of mean_decrease (lrs with >= half the seeds measured); nan if none
    optimal_lr_index: np.ndarray  # (nb,) index into lr, -1 where undefined
    steps: np.ndarray  # (nb,) S(B): min over lr of mean_steps (lrs with >= half the seeds reached)
    examples: np.ndarray  # (nb,) E(B) = B * S(B)
    b_noise: float  # Eq 22 fit of (B, S(B)); nan when the fit fails
    b_noise_ci: tuple[float, float]
    fit: BNoiseFit | None  # the full fit, None with fewer than 3 batch sizes that reached the target
    local_b_noise: float  # one-step theory at the first-hit states of the per-batch-size optimal lrs: median
    # Eq 14 (sign, adam) or McCandlish's tr(H Sigma) / G^T H G (sgd)
    local_peak_batch_size: float  # median argmax of the exact Eq 9 at those states (inf: no peak; nan for sgd)
    censored: int  # trajectories censored for this stage (no S, or no decrease)

    def to_dict(self) -> dict:
        return {
            "target_loss": self.target_loss,
            "b_noise": self.b_noise,
            "b_noise_ci": self.b_noise_ci,
            "s_min": None if self.fit is None else self.fit.s_min,
            "e_min": None if self.fit is None else self.fit.e_min,
            "fit_success": False if self.fit is None else self.fit.success,
            "fit_message": "fewer than 3 batch sizes reached the target" if self.fit is None else self.fit.message,
            "local_b_noise": self.local_b_noise,
            "local_peak_batch_size": self.local_peak_batch_size,
            "batch_size": self.batch_size,
            "optimal_lr": self.optimal_lr,
            "steps": self.steps,
            "examples": self.examples,
            "mean_decrease": self.mean_decrease,
            "reached": self.reached,
            "censored": self.censored,
        }


@dataclass(frozen=True, eq=False)
class TrainingResult:
    """The whole simulated experiment: one StageResult per target, plus the raw per-trajectory numbers."""

    problem: str
    optimizer: str
    betas: tuple[float, float] | None
    batch_size: np.ndarray  # (nb,)
    lr: np.ndarray  # (nlr,)
    seeds: int
    n_after: int
    max_steps: int
    targets: np.ndarray  # (nt,) decreasing
    stages: tuple[StageResult, ...]
    steps: np.ndarray  # (nt, nb, nlr, seeds) first step at or below the target; -1 if never
    decrease: np.ndarray  # (nt, nb, nlr, seeds) L(S) - L(S + n_after); nan if censored
    diverged: np.ndarray  # (nb, nlr, seeds) the loss became non-finite or exploded
    total_steps: int  # updates simulated, summed over trajectories
    seed: int

    def to_dict(self) -> dict:
        """The JSON object of ``surge simulate training --json``."""
        return {
            "problem": self.problem,
            "optimizer": self.optimizer,
            "betas": self.betas,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "seeds": self.seeds,
            "n_after": self.n_after,
            "max_steps": self.max_steps,
            "seed": self.seed,
            "targets": self.targets,
            "diverged": int(self.diverged.sum()),
            "total_steps": self.total_steps,
            "stages": [s.to_dict() for s in self.stages],
        }


# ---- defaults ------------------------------------------------------------------------------------

# 12 batch sizes from 1 to 4096, log-spaced and rounded: 1, 2, 5, 10, 21, 44, 93, 199, 424, 903, 1923, 4096
DEFAULT_BATCH_SIZES = tuple(float(x) for x in np.round(np.geomspace(1, 4096, 12)))
DEFAULT_TARGETS = (0.5, 0.3, 0.18)
DEFAULT_LRS = {
    "sign": tuple(float(x) for x in np.geomspace(3e-3, 0.3, 10)),
    "adam": tuple(float(x) for x in np.geomspace(3e-3, 0.3, 10)),
    "sgd": tuple(float(x) for x in np.geomspace(0.01, 1.5, 10)),
}


def _int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SurgeTypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise SurgeError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def simulate_training(
    problem: QuadraticProblem | None = None,
    *,
    optimizer: str = "sign",
    batch_sizes=DEFAULT_BATCH_SIZES,
    lrs=None,
    targets=DEFAULT_TARGETS,
    seeds: int = 16,
    n_after: int = 50,
    max_steps: int = 4_000,
    betas=(0.9, 0.999),
    eps: float = 1e-8,
    seed: int = 0,
    divergence_factor: float = 1e3,
    progress=None,
) -> TrainingResult:
    """Train every (batch size, learning rate, seed) trajectory on a noisy quadratic and apply the paper's protocol.

    Parameters
    ----------
    problem : QuadraticProblem, optional
        Default ``default_training_problem()``.
    optimizer : "sign", "adam" or "sgd"
        sign(G_est) (Eq 5); Adam with ``betas`` and ``eps`` and bias correction (Eq 25-27; betas (0, 0) is
        sign descent up to eps, Eq 29); or plain SGD.
    batch_sizes, lrs : arrays
        The grid. ``lrs`` defaults to ``DEFAULT_LRS[optimizer]``, chosen for the default problem.
    targets : array
        Target losses, below the initial loss; sorted into decreasing order (the order training meets them).
    seeds : int
        Independent trajectories per (batch size, learning rate) ("rounds").
    n_after : int
        Steps after first reaching a target over which the loss decrease is measured (the paper's N).
    max_steps : int
        Step budget per trajectory; trajectories stop early once every stage is measured. On the default
        problem the best learning rates reach the lowest default target in about 1,100 steps on average at
        B = 1; the default 4,000 only censors learning rates too small to matter (10,000 gives the same
        stages).
    divergence_factor : float
        A trajectory whose loss exceeds this many times the initial loss (or is not finite) is stopped
        and censored for the stages it had not finished.
    progress : callable, optional
        Called as progress(steps_done, max_steps) every few hundred steps (for a progress bar).
    """
    problem = default_training_problem() if problem is None else problem
    if not isinstance(problem, QuadraticProblem):
        raise SurgeTypeError(f"problem must be a QuadraticProblem, got {type(problem).__name__}")
    optimizer = check_choice(optimizer, "optimizer", OPTIMIZERS)
    b = check_array(batch_sizes, "batch_sizes", ndim=1, positive=True)
    lr = check_array(DEFAULT_LRS[optimizer] if lrs is None else lrs, "lrs", ndim=1, positive=True)
    tg = np.sort(check_array(targets, "targets", ndim=1, positive=True))[::-1].copy()
    seeds = _int(seeds, "seeds", 1)
    n_after = _int(n_after, "n_after", 1)
    max_steps = _int(max_steps, "max_steps", 1)
    seed = _int(seed, "seed", 0)
    eps = check_scalar(eps, "eps", nonnegative=True)
    divergence_factor = check_scalar(divergence_factor, "divergence_factor", positive=True)
    l0 = problem.initial_loss
    if tg[0] >= l0:
        raise SurgeError(f"targets must be below the initial loss {l0:.4g}; the largest is {tg[0]:.4g}")
    b1 = b2 = 0.0
    if optimizer == "adam":
        try:
            b1, b2 = (float(x) for x in betas)
        except (TypeError, ValueError):
            raise SurgeError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
        for name, val in (("betas[0]", b1), ("betas[1]", b2)):
            if not 0 <= val < 1:
                raise SurgeError(f"{name} must be in [0, 1), got {val}")

    nb, nl, ns, nt, n = b.size, lr.size, seeds, tg.size, problem.n
    # trajectory k <-> (batch i, lr j, seed s), k = (i * nl + j) * ns + s; noise group = i * ns + s
    bi, lj, ss = (a.ravel() for a in np.meshgrid(np.arange(nb), np.arange(nl), np.arange(ns), indexing="ij"))
    big_k = bi.size
    h = problem.hessian
    sigma = problem.sigma
    rng = np.random.default_rng(seed)

    # Per-trajectory results (global index k).
    hit = np.full((nt, big_k), -1, dtype=np.int64)
    loss_at_hit = np.full((nt, big_k), math.nan)
    after = np.full((nt, big_k), math.nan)
    hit_state = np.full((nt, big_k, n), math.nan)
    diverged = np.zeros(big_k, dtype=bool)
    limit = divergence_factor * l0

    # Working rows: the trajectories still running, compacted now and then.
    rows = np.arange(big_k)
    r_group = bi * ns + ss  # noise stream shared by the learning rates of one (batch size, seed)
    groups = np.arange(nb * ns)
    r_scale = (1.0 / np.sqrt(b))[bi][:, None]
    r_lr = lr[lj][:, None]
    r_hit = hit.copy()
    r_stop = np.zeros(big_k, dtype=bool)
    delta = np.tile(problem.delta0, (big_k, 1))
    m = np.zeros_like(delta) if optimizer == "adam" else None
    v = np.zeros_like(delta) if optimizer == "adam" else None
    total = 0

    def compact(keep: np.ndarray) -> None:
        nonlocal rows, groups, r_group, r_scale, r_lr, r_hit, r_stop, delta, m, v
        rows, r_group, r_scale, r_lr = rows[keep], r_group[keep], r_scale[keep], r_lr[keep]
        groups, r_group = np.unique(r_group, return_inverse=True)  # draw noise only for groups still running
        r_hit, r_stop, delta = r_hit[:, keep], r_stop[keep], delta[keep]
        if m is not None:
            m, v = m[keep], v[keep]

    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(max_steps + 1):
            hd = delta @ h
            loss = 0.5 * np.einsum("ki,ki->k", hd, delta)
            # ---- the protocol: first hit of each target, then the loss n_after steps later ----
            for j in range(nt):
                rh = r_hit[j]
                new = (rh < 0) & (loss <= tg[j])
                if new.any():
                    r_hit[j, new] = t
                    k = rows[new]
                    hit[j, k] = t
                    loss_at_hit[j, k] = loss[new]
                    hit_state[j, k] = delta[new]
                due = t == rh + n_after
                if due.any():
                    after[j, rows[due]] = loss[due]
            bad = ~(loss <= limit)  # also catches nan
            if bad.any():
                diverged[rows[bad & ~r_stop]] = True
            # targets are decreasing, so the last is met last: then every stage is measured
            r_stop |= bad | ((r_hit[nt - 1] >= 0) & (t >= r_hit[nt - 1] + n_after))
            if t == max_steps:
                break
            n_stop = int(r_stop.sum())
            if n_stop == rows.size:
                break
            if n_stop and n_stop * 16 >= rows.size:
                keep = ~r_stop
                hd = hd[keep]
                compact(keep)
            # ---- one update of every running trajectory ----
            xi = rng.standard_normal((groups.size, n)) * sigma
            g = hd + r_scale * xi[r_group]
            if optimizer == "sign":
                upd = np.sign(g)
            elif optimizer == "sgd":
                upd = g
            else:
                m = b1 * m + (1.0 - b1) * g
                v = b2 * v + (1.0 - b2) * (g * g)
                upd = (m / (1.0 - b1 ** (t + 1))) / (np.sqrt(v / (1.0 - b2 ** (t + 1))) + eps)
            delta = delta - r_lr * upd
            total += int(rows.size - n_stop)
            if progress is not None and t % 500 == 0:
                progress(t, max_steps)
    if progress is not None:
        progress(max_steps, max_steps)

    shape = (nt, nb, nl, ns)
    steps = hit.reshape(shape)
    decrease = (loss_at_hit - after).reshape(shape)
    stages = tuple(
        _stage(tg[j], b, lr, steps[j], decrease[j], hit_state[j].reshape(nb, nl, ns, n), problem, optimizer)
        for j in range(nt)
    )
    return TrainingResult(
        problem=problem.name,
        optimizer=optimizer,
        betas=(b1, b2) if optimizer == "adam" else None,
        batch_size=b,
        lr=lr,
        seeds=ns,
        n_after=n_after,
        max_steps=max_steps,
        targets=tg,
        stages=stages,
        steps=steps,
        decrease=decrease,
        diverged=diverged.reshape(nb, nl, ns),
        total_steps=total,
        seed=seed,
    )


def _local_theory(problem: QuadraticProblem, states: np.ndarray, optimizer: str, limit: int = 24) -> tuple[float, float]:
    """Median B_noise and median exact peak of the one-step theory over (up to ``limit``) states.

    Sign descent and Adam: Eq 14 and the argmax of the exact Eq 9 (inf where Eq 9 has no interior peak).
    SGD: McCandlish's tr(H Sigma) / G^T H G, and no peak (nan).
    """
    if states.shape[0] == 0:
        return math.nan, math.nan
    pick = np.linspace(0, states.shape[0] - 1, min(limit, states.shape[0])).round().astype(int)
    states = states[pick]
    h = problem.hessian
    if optimizer == "sgd":
        g = states @ h
        ghg = np.einsum("ki,ki->k", g @ h, g)
        with np.errstate(divide="ignore"):
            bn = float(np.diag(h) @ problem.sigma**2) / ghg
        return float(np.median(bn)), math.nan
    bn = problem.b_noise(states)
    peaks = []
    for d in states:
        mu = h @ d
        if not np.any(mu):
            continue
        pk = SignGradientModel(mu, problem.sigma, h).peak()
        peaks.append(math.inf if pk is None else pk.batch_size)
    finite_bn = bn[~np.isnan(bn)]
    return (
        float(np.median(finite_bn)) if finite_bn.size else math.nan,
        float(np.median(peaks)) if peaks else math.nan,
    )


def _stage(target, b, lr, steps, decrease, hit_state, problem, optimizer) -> StageResult:
    """Reduce one target's (nb, nlr, seeds) arrays to the paper's per-batch-size numbers."""
    reached_mask = steps >= 0
    reached = reached_mask.sum(axis=2)
    ok = np.isfinite(decrease)
    count = ok.sum(axis=2)
    with np.errstate(invalid="ignore"):
        mean_dec = np.where(count > 0, np.where(ok, decrease, 0.0).sum(axis=2) / np.maximum(count, 1), math.nan)
        mean_steps = np.where(reached > 0, np.where(reached_mask, steps, 0).sum(axis=2) / np.maximum(reached, 1), math.nan)
    nb, seeds = b.size, steps.shape[2]
    opt_idx = np.full(nb, -1)
    opt_lr = np.full(nb, math.nan)
    eligible = np.where(count * 2 >= seeds, mean_dec, math.nan)  # at least half the seeds measured
    for i in range(nb):
        row = eligible[i]
        if np.isfinite(row).any():
            opt_idx[i] = int(np.nanargmax(row))
            opt_lr[i] = lr[opt_idx[i]]
    enough = reached * 2 >= seeds
    s_b = np.where(enough, mean_steps, np.inf).min(axis=1)
    s_b = np.where(np.isfinite(s_b), s_b, math.nan)
    examples = b * s_b
    have = np.isfinite(s_b) & (s_b > 0)
    fit = None
    if np.unique(b[have]).size >= 3:
        fit = fit_b_noise(b[have], s_b[have])
    # the theory at the states where the per-batch-size optimal learning rates first reached the target
    rows = [hit_state[i, opt_idx[i]][steps[i, opt_idx[i]] >= 0] for i in range(nb) if opt_idx[i] >= 0]
    states = np.concatenate(rows) if rows else np.empty((0, problem.n))
    local_b_noise, local_peak = _local_theory(problem, states, optimizer)
    censored = int((~reached_mask).sum() + (reached_mask & ~ok).sum())
    return StageResult(
        target_loss=float(target),
        batch_size=b,
        lr=lr,
        mean_decrease=mean_dec,
        decrease_count=count,
        mean_steps=mean_steps,
        reached=reached,
        optimal_lr=opt_lr,
        optimal_lr_index=opt_idx,
        steps=s_b,
        examples=examples,
        b_noise=math.nan if fit is None or not fit.success else fit.b_noise,
        b_noise_ci=(math.nan, math.nan) if fit is None or not fit.success else fit.b_noise_ci,
        fit=fit,
        local_b_noise=local_b_noise,
        local_peak_batch_size=local_peak,
        censored=censored,
    )
