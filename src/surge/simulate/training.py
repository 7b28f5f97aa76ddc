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
* the loss decrease over exactly ``extra_steps`` (N) further steps, L(S) - L(S + N);
* a trajectory that does not reach the target within ``max_steps`` is censored for that stage, one that
  diverges is recorded as diverged: kept and counted, not averaged in.

The trajectories become the same tidy trial frame a sweep store gives (:meth:`TrainingResult.frame`,
one row per trial and stage, the columns of ``surge.sweep.FRAME_COLUMNS``), and the per-stage numbers
(optimal learning rate per batch size, S(B), E(B), B_noise by Eq 22, the law comparison) come from
:func:`surge.analysis.analyze` on that frame: one set of rules for simulated and real trials.

Why one module of ~510 lines: one vectorized simulation loop (all trajectories step together) and its result
type (the trial frame and the local theory), which only that loop fills.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from surge._validation import check_array, check_choice, check_int, check_scalar, renamed
from surge.errors import SurgeError, SurgeTypeError
from surge.records import MAX_TRIALS
from surge.simulate.montecarlo import UPDATE_RULES
from surge.simulate.quadratic import QuadraticProblem, default_training_problem
from surge.theory.sign_model import SignGradientModel

__all__ = [
    "QuadraticProblem",
    "StageTheory",
    "TrainingResult",
    "default_training_problem",
    "simulate_training",
]


@dataclass(frozen=True)
class StageTheory:
    """The one-step theory at the states where one stage was reached (what the exact model says there).

    Attributes:
        target_loss: the stage's target loss.
        local_b_noise: median Eq 14 (sign, adam) or McCandlish's tr(H Sigma) / G^T H G (sgd) over those
            states, in examples; NaN when no state is known.
        local_peak_batch_size: median argmax of the exact Eq 9 there, in examples (inf: no peak; NaN for sgd).
    """

    target_loss: float
    local_b_noise: float  # median Eq 14 (sign, adam) or McCandlish's tr(H Sigma) / G^T H G (sgd) at those states
    local_peak_batch_size: float  # median argmax of the exact Eq 9 there (inf: no peak; nan for sgd)


# The optimizer names of the simulator and the engine's name for the same update (surge.records.OPTIMIZERS).
_RECORD_NAMES = {"sign": "signsgd", "adam": "adam", "sgd": "sgd"}


@dataclass(frozen=True, eq=False)
class TrainingResult:
    """The whole simulated experiment: the raw per-trajectory numbers, their trial frame and its analysis.

    Array axes: ``nt`` targets (descending), ``nb`` batch sizes, ``nl`` learning rates, ``rounds`` seeds.

    Attributes:
        problem: the problem's name.
        optimizer: ``"sign"``, ``"adam"`` or ``"sgd"``.
        betas: Adam's (beta1, beta2); None for sign and SGD.
        eps: Adam's eps (recorded whatever the optimizer; used only by Adam).
        batch_size: array (nb,) of integer batch sizes, in examples.
        lr: array (nl,), the learning-rate grid.
        rounds: independent trajectories (seeds) per (batch size, learning rate).
        extra_steps: N, the steps after the target over which the loss decrease is measured.
        max_steps: step budget per trajectory.
        target_loss: array (nt,) of target losses, decreasing.
        steps: int array (nt, nb, nl, rounds), the first step at or below the target; -1 if never.
        loss_at_target: array (nt, nb, nl, rounds), L(S); NaN if never reached.
        loss_after: array (nt, nb, nl, rounds), L(S + N); NaN if not reached or not N more steps.
        diverged: bool array (nb, nl, rounds), the loss became non-finite or exceeded ``divergence_factor``
            times the initial loss.
        total_steps: updates simulated, summed over trajectories.
        seed: the seed of the run; round r has trial seed ``seed + r`` in the frame.
        theory: one :class:`StageTheory` per target, in the order of ``target_loss``.
        analysis: ``surge.analysis.SweepAnalysis`` of :meth:`frame`: the per-stage numbers.
    """

    problem: str
    optimizer: str  # "sign", "adam" or "sgd"
    betas: tuple[float, float] | None
    eps: float
    batch_size: np.ndarray  # (nb,) integers
    lr: np.ndarray  # (nl,)
    rounds: int
    extra_steps: int  # N
    max_steps: int
    target_loss: np.ndarray  # (nt,) decreasing
    steps: np.ndarray  # (nt, nb, nl, rounds) first step at or below the target; -1 if never
    loss_at_target: np.ndarray  # (nt, nb, nl, rounds) L(S); nan if never reached
    loss_after: np.ndarray  # (nt, nb, nl, rounds) L(S + N); nan if not reached or not N more steps
    diverged: np.ndarray  # (nb, nl, rounds) the loss became non-finite or exploded
    total_steps: int  # updates simulated, summed over trajectories
    seed: int
    theory: tuple[StageTheory, ...]  # one per target
    analysis: Any = None  # surge.analysis.SweepAnalysis of frame(): the per-stage numbers

    @property
    def decrease(self) -> np.ndarray:
        """(nt, nb, nl, rounds) L(S) - L(S + N); nan where not measured."""
        return self.loss_at_target - self.loss_after

    @property
    def stages(self):
        """The analysis's per-stage results (``surge.analysis.StageAnalysis``), descending target loss."""
        return self.analysis.stages

    def frame(self):
        """The tidy trial frame, one row per (trial, stage), with the columns of a sweep store's frame.

        Returns:
            pandas.DataFrame with nt * nb * nl * rounds rows and the columns of
                ``surge.sweep.store.FRAME_COLUMNS``; ``steps`` and ``examples`` are NA where the target was
                not reached, and ``status`` is ``"diverged"`` for diverged trajectories.
        """
        import pandas as pd

        from surge.sweep.store import FRAME_COLUMNS

        nt, nb, nl, ns = self.steps.shape
        t, i, k, r = (
            a.ravel() for a in np.meshgrid(np.arange(nt), np.arange(nb), np.arange(nl), np.arange(ns), indexing="ij")
        )
        steps = self.steps[t, i, k, r]
        reached = steps >= 0
        b = self.batch_size[i]
        diverged = self.diverged[i, k, r]
        betas = self.betas if self.betas is not None else (0.0, 0.0)
        frame = pd.DataFrame(
            {
                "sweep": f"simulate:{self.problem}",
                "trial_key": [f"{bb}:{ll!r}:{rr}" for bb, ll, rr in zip(b, self.lr[k], r)],
                "workload": f"quadratic:{self.problem}",
                "optimizer": _RECORD_NAMES[self.optimizer],
                "beta1": betas[0],
                "beta2": betas[1],
                "eps": self.eps if self.optimizer == "adam" else 0.0,
                "weight_decay": 0.0,
                "momentum": 0.0,
                "batch_size": b,
                "batch_unit": "examples",
                "lr": self.lr[k],
                "seed": self.seed + r,
                "round": r,
                "status": np.where(diverged, "diverged", "ok"),
                "stage": t,
                "target_loss": self.target_loss[t],
                "reached": reached,
                "steps": pd.array(np.where(reached, steps, 0), dtype="Int64"),
                "examples": pd.array(np.where(reached, steps * b, 0), dtype="Int64"),
                "loss_at_target": self.loss_at_target[t, i, k, r],
                "loss_after": self.loss_after[t, i, k, r],
                "loss_decrease": self.decrease[t, i, k, r],
                "extra_steps": self.extra_steps,
                "max_steps": self.max_steps,
                "max_examples": None,
                "steps_run": None,
                "diverged_at_step": None,
                "strategy": "simulate",
                "device": "cpu",
                "dtype": "float64",
                "wall_seconds": np.nan,
                "error": None,
                "created_at": None,
            }
        )
        frame.loc[~reached, ["steps", "examples"]] = pd.NA
        return frame[list(FRAME_COLUMNS)]

    def to_dict(self) -> dict:
        """The JSON object of ``surge simulate training --json``: the run, the analysis, the local theory.

        Returns:
            dict of the run's settings (arrays stay NumPy arrays), the count of diverged trajectories, the
                total steps, ``theory`` (one dict per stage) and ``analysis`` (its ``to_dict()``).
        """
        return {
            "problem": self.problem,
            "optimizer": self.optimizer,
            "betas": self.betas,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "rounds": self.rounds,
            "extra_steps": self.extra_steps,
            "max_steps": self.max_steps,
            "seed": self.seed,
            "target_loss": self.target_loss,
            "diverged": int(self.diverged.sum()),
            "total_steps": self.total_steps,
            "theory": [dataclasses.asdict(t) for t in self.theory],
            "analysis": self.analysis.to_dict(),
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


def simulate_training(
    problem: QuadraticProblem | None = None,
    *,
    optimizer: str = "sign",
    batch_sizes=DEFAULT_BATCH_SIZES,
    lrs=None,
    target_loss=None,
    rounds: int | None = None,
    extra_steps: int | None = None,
    max_steps: int = 4_000,
    betas=(0.9, 0.999),
    eps: float = 1e-8,
    seed: int = 0,
    divergence_factor: float = 1e3,
    n_boot: int = 1000,
    progress=None,
    targets=None,
    seeds: int | None = None,
    n_after: int | None = None,
) -> TrainingResult:
    """Train every (batch size, learning rate, seed) trajectory on a noisy quadratic and apply the paper's protocol.

    Args:
        problem: the :class:`~surge.simulate.quadratic.QuadraticProblem`; default (None)
            ``default_training_problem()``.
        optimizer: ``"sign"`` (default), sign(G_est) (Eq 5); ``"adam"``, Adam with ``betas`` and ``eps``
            and bias correction (Eq 25-27; betas (0, 0) is sign descent up to eps, Eq 29); or ``"sgd"``,
            plain SGD.
        batch_sizes: array (nb,) of batch sizes, whole numbers > 0 (examples per step); default
            ``DEFAULT_BATCH_SIZES`` (12 sizes from 1 to 4096).
        lrs: array (nl,) of learning rates > 0; default (None) ``DEFAULT_LRS[optimizer]``, chosen for the
            default problem.
        target_loss: array (nt,) of target losses (the stages), > 0 and below the initial loss; sorted into
            decreasing order (the order training meets them). Default (None) ``DEFAULT_TARGETS``.
        rounds: independent trajectories (seeds) per (batch size, learning rate), an integer >= 1; default
            (None) 16.
        extra_steps: N, the steps after first reaching a target over which the loss decrease is measured,
            an integer >= 1; default (None) 50.
        max_steps: step budget per trajectory, an integer >= 1; trajectories stop early once every stage is
            measured. On the default problem the best learning rates reach the lowest default target in
            about 1,100 steps on average at B = 1; the default 4,000 only censors learning rates too small
            to matter (10,000 gives the same stages).
        betas: Adam's (beta1, beta2), each in [0, 1); checked always, used only with ``optimizer="adam"``.
            Default (0.9, 0.999).
        eps: Adam's eps in the update's denominator, >= 0; default 1e-8.
        seed: seed of the noise and of the analysis's bootstrap, an integer >= 0; default 0.
        divergence_factor: > 0; a trajectory whose loss exceeds this many times the initial loss (or is not
            finite) is stopped, marked diverged and censored for the stages it had not finished. Default
            1000.
        n_boot: bootstrap resamples of the rounds in the analysis (:func:`surge.analysis.analyze`), an
            integer >= 0; default 1000.
        progress: a callable, or None (default); called as progress(steps_done, max_steps) every 500 steps
            and once at the end (for a progress bar).
        targets: the earlier name of ``target_loss``, accepted for one release.
        seeds: the earlier name of ``rounds``, accepted for one release.
        n_after: the earlier name of ``extra_steps``, accepted for one release.

    Returns:
        TrainingResult: the raw arrays, :meth:`TrainingResult.frame` (the tidy trial frame) and
            ``analysis``, the :class:`surge.analysis.SweepAnalysis` of that frame (its ``stages`` are the
            per-stage numbers), and the local one-step theory of each stage.

    Raises:
        SurgeTypeError: ``problem`` is not a QuadraticProblem, or a count or seed is not an integer.
        SurgeError: a bad argument (named, with its value and what is allowed): an unknown ``optimizer``,
            batch sizes not whole numbers > 0, ``lrs`` or ``target_loss`` not finite and > 0, a target
            not below the initial loss, a count below its minimum, ``eps`` < 0, ``divergence_factor``
            <= 0, ``betas`` not a pair in [0, 1), more than ``MAX_TRIALS`` trajectories (batch sizes x
            lrs x rounds), or both a new name and its old name given.

    Warns:
        DeprecationWarning: an old name (``targets``, ``seeds`` or ``n_after``) is used.
    """
    target_loss = renamed(target_loss, targets, "target_loss", "targets", DEFAULT_TARGETS)
    rounds = renamed(rounds, seeds, "rounds", "seeds", 16)
    extra_steps = renamed(extra_steps, n_after, "extra_steps", "n_after", 50)
    problem = default_training_problem() if problem is None else problem
    if not isinstance(problem, QuadraticProblem):
        raise SurgeTypeError(f"problem must be a QuadraticProblem, got {type(problem).__name__}")
    optimizer = check_choice(optimizer, "optimizer", UPDATE_RULES)
    b = check_array(batch_sizes, "batch_sizes", ndim=1, positive=True)
    if (b != np.round(b)).any():
        raise SurgeError(f"batch_sizes must be whole numbers (examples per step), got {b[b != np.round(b)][0]:g}")
    b = b.astype(np.int64)
    lr = check_array(DEFAULT_LRS[optimizer] if lrs is None else lrs, "lrs", ndim=1, positive=True)
    tg = np.sort(check_array(target_loss, "target_loss", ndim=1, positive=True))[::-1].copy()
    seeds = check_int(rounds, "rounds", minimum=1)
    n_after = check_int(extra_steps, "extra_steps", minimum=1)
    max_steps = check_int(max_steps, "max_steps", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    n_boot = check_int(n_boot, "n_boot", minimum=0)
    eps = check_scalar(eps, "eps", nonnegative=True)
    divergence_factor = check_scalar(divergence_factor, "divergence_factor", positive=True)
    l0 = problem.initial_loss
    if tg[0] >= l0:
        raise SurgeError(f"target_loss must be below the initial loss {l0:.4g}; the largest is {tg[0]:.4g}")
    try:  # checked whatever the optimizer: a bad value is a mistake even where it is not used
        b1, b2 = (float(x) for x in betas)
    except (TypeError, ValueError):
        raise SurgeError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
    for name, val in (("betas[0]", b1), ("betas[1]", b2)):
        if not 0 <= val < 1:
            raise SurgeError(f"{name} must be in [0, 1), got {val}")
    if optimizer != "adam":
        b1 = b2 = 0.0
    n_trajectories = b.size * lr.size * seeds
    if n_trajectories > MAX_TRIALS:
        raise SurgeError(
            f"the simulation has {b.size} batch sizes x {lr.size} learning rates x {seeds} rounds = "
            f"{n_trajectories:,} trajectories; the limit is {MAX_TRIALS:,}: fewer rounds or a coarser grid"
        )

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
    result = TrainingResult(
        problem=problem.name,
        optimizer=optimizer,
        betas=(b1, b2) if optimizer == "adam" else None,
        eps=eps,
        batch_size=b,
        lr=lr,
        rounds=ns,
        extra_steps=n_after,
        max_steps=max_steps,
        target_loss=tg,
        steps=steps,
        loss_at_target=loss_at_hit.reshape(shape),
        loss_after=after.reshape(shape),
        diverged=diverged.reshape(nb, nl, ns),
        total_steps=total,
        seed=seed,
        theory=(),
    )
    from surge.analysis import analyze

    analysis = analyze(result.frame(), n_boot=n_boot, seed=seed)
    theory = []
    for j, st in enumerate(analysis.stages):  # both in descending target order
        opt_lr = {row.batch_size: row.optimal_lr for row in st.rows}
        theory.append(
            _stage_theory(tg[j], b, lr, opt_lr, steps[j], hit_state[j].reshape(nb, nl, ns, n), problem, optimizer)
        )
    object.__setattr__(result, "analysis", analysis)
    object.__setattr__(result, "theory", tuple(theory))
    return result


def _local_theory(
    problem: QuadraticProblem, states: np.ndarray, optimizer: str, limit: int = 24
) -> tuple[float, float]:
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


def _stage_theory(
    target: float,
    b: np.ndarray,
    lr: np.ndarray,
    opt_lr: dict,
    steps: np.ndarray,
    hit_state: np.ndarray,
    problem: QuadraticProblem,
    optimizer: str,
) -> StageTheory:
    """The one-step theory at the states where the per-batch-size optimal learning rates (from the
    analysis) first reached the target (a median over up to 24 of them)."""
    rows = []
    for i, bb in enumerate(b):
        best = opt_lr.get(int(bb), math.nan)
        if math.isfinite(best):
            j = int(np.argmin(np.abs(lr - best)))
            rows.append(hit_state[i, j][steps[i, j] >= 0])
    states = np.concatenate(rows) if rows else np.empty((0, problem.n))
    local_b_noise, local_peak = _local_theory(problem, states, optimizer)
    return StageTheory(float(target), local_b_noise, local_peak)
