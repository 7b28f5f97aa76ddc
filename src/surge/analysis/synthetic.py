"""Synthetic trial records from a known law, for tests, documentation and trying the analysis without training.

The model of one trial at batch size B, learning rate lr and stage (target loss) t:

* Loss decrease over the N steps after the target: the quadratic model of Lemma 1 (Eq 31),
  dL(lr) = lr a(B) - lr^2 c(B) / 2, with a and c chosen so that its optimum is the law's eps_opt(B)
  (Eq 2 for ``law="adam"``, Eq 1 / Eq 24 for ``law="sgd"``) and its best value dL_opt(B) follows Eq 18:
  dL(lr) = dL_opt(B) (2u - u^2) with u = lr / eps_opt(B). Each trial adds Gaussian noise of standard
  deviation ``noise * dL_opt(B)``.
* Steps to the target: Eq 20 at the best lr, S = S_min (1 + B_noise / B), times
  (1 + ``steps_lr_sensitivity`` ln(u)^2) away from it, times log-normal noise shared by a trial's stages.
  B_noise(t) grows as the target falls (Eq 21), and so does S_min(t).
* A trial with u > ``diverge_above`` diverges (before its first target); one that needs more than
  ``max_steps`` steps is censored at that stage.

The columns follow :meth:`surge.sweep.store.SweepStore.trials_frame` (the subset the analysis reads).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from surge._units import BATCH_UNITS
from surge._validation import check_array, check_choice, check_int, check_scalar, renamed
from surge.errors import SurgeError
from surge.theory.laws import get_law


def _per_target(value, name: str, n: int) -> np.ndarray | None:
    """A per-target array when ``value`` is a sequence; None when it is a scalar."""
    if np.ndim(value) == 0:
        return None
    arr = check_array(value, name, ndim=1, positive=True)
    if arr.size != n:
        raise SurgeError(f"{name} must be a number or one value per target ({n}), got {arr.size} values")
    return arr


def synthetic_laws(
    law: str = "adam",
    *,
    b_noise=64.0,
    eps_max=1e-3,
    target_loss: Sequence[float] | None = None,
    b_noise_growth: float = 1.0,
    targets: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (target losses, B_noise per target, eps_max per target) that :func:`synthetic_frame` uses.

    A scalar ``b_noise`` is B_noise at the first (highest) target and grows as
    ``b_noise * (target_loss[0] / t) ** b_noise_growth``; a sequence gives one value per target. A scalar
    ``eps_max`` is the same at every target. ``target_loss`` defaults to (2.0, 1.5, 1.0); ``targets`` is its
    earlier name, accepted for one release.

    Args:
        law: ``"adam"`` (Eq 2) or ``"sgd"`` (Eq 1 / Eq 24); only checked here (the values do not depend on it).
        b_noise: B_noise in batch-size units, > 0: a scalar (its value at the first target) or a sequence of
            one value per target. Default 64.
        eps_max: the peak learning rate eps_max, > 0: a scalar (every target) or one value per target.
            Default 1e-3.
        target_loss: the stages' target losses, > 0, strictly decreasing; None: (2.0, 1.5, 1.0).
        b_noise_growth: the exponent of B_noise's growth with a scalar ``b_noise``, >= 0 (0: constant);
            default 1.
        targets: the earlier name of ``target_loss`` (deprecated; a ``DeprecationWarning``).

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: three float arrays (T,): the target losses, B_noise per
        target and eps_max per target.

    Raises:
        SurgeError: ``law`` not ``"adam"`` or ``"sgd"``; both ``target_loss`` and ``targets`` given;
            target losses not positive, not 1-D or not strictly decreasing; ``b_noise`` or ``eps_max`` not
            > 0, or a sequence whose length is not the number of targets; ``b_noise_growth`` < 0 or not
            finite.
        SurgeTypeError: a non-numeric value, or a ``law`` that is not a string.
    """
    check_choice(law, "law", ("adam", "sgd"))
    target_loss = renamed(target_loss, targets, "target_loss", "targets", (2.0, 1.5, 1.0))
    t = check_array(target_loss, "target_loss", ndim=1, positive=True)
    if np.any(np.diff(t) >= 0):
        raise SurgeError(
            f"target_loss must be strictly decreasing (training goes from one target to the next), got {t.tolist()}"
        )
    growth = check_scalar(b_noise_growth, "b_noise_growth", nonnegative=True)
    bn = _per_target(b_noise, "b_noise", t.size)
    if bn is None:
        bn = check_scalar(b_noise, "b_noise", positive=True) * (t[0] / t) ** growth
    em = _per_target(eps_max, "eps_max", t.size)
    if em is None:
        em = np.full(t.size, check_scalar(eps_max, "eps_max", positive=True))
    return t, bn, em


def _eps_opt(law: str, b: np.ndarray, eps_max: float, b_noise: float, alpha: float) -> np.ndarray:
    return get_law(law, alpha).lr(b, eps_max, b_noise)


def synthetic_frame(
    law: str = "adam",
    *,
    b_noise=64.0,
    eps_max=1e-3,
    alpha: float = 1.0,
    batch_sizes: Sequence[int] = (4, 8, 16, 32, 64, 128, 256, 512, 1024),
    lrs: Sequence[float] | None = None,
    rounds: int = 5,
    target_loss: Sequence[float] | None = None,
    b_noise_growth: float = 1.0,
    s_min: float = 200.0,
    s_min_growth: float = 2.0,
    dl_max: float = 0.05,
    noise: float = 0.1,
    steps_noise: float = 0.05,
    steps_lr_sensitivity: float = 0.2,
    diverge_above: float | None = None,
    max_steps: float | None = None,
    extra_steps: int = 10,
    seed: int = 0,
    workload: str = "synthetic",
    optimizer: str | None = None,
    betas: tuple[float, float] | None = None,
    batch_unit: str = "examples",
    targets: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Trial records (one row per trial and stage) from a known law with noise; see the module docstring.

    ``law``: "adam" (Eq 2) or "sgd" (Eq 24 with exponent ``alpha``; alpha = 1 is Eq 1). ``b_noise`` and
    ``eps_max``: see :func:`synthetic_laws`. ``lrs`` defaults to 17 log-spaced values from half the smallest
    to twice the largest optimal lr over the batch sizes and stages. ``s_min`` is S_min at the first target,
    growing as ``(target_loss[0] / t) ** s_min_growth``. ``dl_max`` is Eq 18's dL_max. The defaults for
    ``optimizer`` / ``betas`` are ("adam", (0, 0)) for the Adam law and ("sgd", (0, 0)) for SGD.
    ``target_loss`` (the stages) defaults to (2.0, 1.5, 1.0); ``targets`` is its earlier name, accepted for
    one release.

    Args:
        law: ``"adam"`` (Eq 2, default) or ``"sgd"`` (Eq 24 with exponent ``alpha``).
        b_noise: B_noise in batch-size units, > 0: a scalar (at the first target, growing with
            ``b_noise_growth``) or one value per target. Default 64.
        eps_max: the peak learning rate, > 0: a scalar or one value per target. Default 1e-3.
        alpha: the exponent of the SGD law (Eq 24), > 0; default 1 (Eq 1). Checked but unused for ``"adam"``.
        batch_sizes: the batch sizes, positive integers (duplicates dropped, sorted); default 4..1024 by 2x.
        lrs: the learning rate grid, > 0 (duplicates dropped, sorted); None: 17 log-spaced values (above).
        rounds: the rounds (seeds), an integer >= 1; default 5.
        target_loss: the stages' target losses, > 0, strictly decreasing; None: (2.0, 1.5, 1.0).
        b_noise_growth: the exponent of B_noise's growth over the targets, >= 0; default 1.
        s_min: S_min (steps) at the first target, > 0; default 200.
        s_min_growth: the exponent of S_min's growth over the targets, >= 0; default 2.
        dl_max: Eq 18's dL_max, the best loss decrease (nats) at B much larger than B_noise, > 0; default 0.05.
        noise: the standard deviation of a trial's loss-decrease noise, as a fraction of dL_opt(B), >= 0;
            default 0.1.
        steps_noise: the standard deviation of the log-normal noise of the steps (shared by a trial's
            stages), >= 0; default 0.05.
        steps_lr_sensitivity: how much the steps grow away from the optimal lr, the factor
            ``1 + steps_lr_sensitivity * ln(u)^2`` with u = lr / eps_opt(B), >= 0; default 0.2.
        diverge_above: a trial with u = lr / eps_opt(B) at the first target above this diverges (> 0);
            None (default): none diverges.
        max_steps: the step budget, > 0: a stage needing more steps is censored; None (default): no budget.
        extra_steps: N, the steps after the target over which the decrease is said to be measured (written
            to the ``extra_steps`` column; the decreases do not depend on it); default 10.
        seed: seed of the noise; round r gets the ``seed`` column ``seed + r``.
        workload: the ``workload`` column; default ``"synthetic"``.
        optimizer: the ``optimizer`` column; None: ``"adam"`` or ``"sgd"`` after ``law``.
        betas: the (beta1, beta2) columns; None: (0, 0).
        batch_unit: what a batch size counts: ``"examples"`` (default), ``"tokens"`` or ``"sequences"``.
        targets: the earlier name of ``target_loss`` (deprecated; a ``DeprecationWarning``).

    Returns:
        pd.DataFrame: one row per (round, batch size, lr, stage) with the sweep store's columns (``status``,
        ``reached``, ``steps``, ``examples``, ``loss_decrease``, ...); ``frame.attrs["synthetic"]`` holds
        the true law, alpha, target losses, B_noise, eps_max and S_min per target.

    Raises:
        SurgeError: an argument out of range (see each above): ``law`` or ``batch_unit`` not allowed;
            both ``target_loss`` and ``targets``; non-integer ``batch_sizes``; ``rounds`` not an integer
            >= 1; a non-positive or non-finite value; target losses not strictly decreasing.
        SurgeTypeError: a non-numeric value, or a choice that is not a string.
    """
    law = check_choice(law, "law", ("adam", "sgd"))
    target_loss = renamed(target_loss, targets, "target_loss", "targets", (2.0, 1.5, 1.0))
    t, bn, em = synthetic_laws(
        law, b_noise=b_noise, eps_max=eps_max, target_loss=target_loss, b_noise_growth=b_noise_growth
    )
    alpha = check_scalar(alpha, "alpha", positive=True)
    b = check_array(batch_sizes, "batch_sizes", ndim=1, positive=True)
    if np.any(b != np.round(b)):
        raise SurgeError(f"batch_sizes must be integers, got {b.tolist()}")
    b = np.unique(b.astype(np.int64))
    rounds = check_int(rounds, "rounds", minimum=1)
    s_min = check_scalar(s_min, "s_min", positive=True)
    s_min_growth = check_scalar(s_min_growth, "s_min_growth", nonnegative=True)
    dl_max = check_scalar(dl_max, "dl_max", positive=True)
    noise = check_scalar(noise, "noise", nonnegative=True)
    steps_noise = check_scalar(steps_noise, "steps_noise", nonnegative=True)
    kappa = check_scalar(steps_lr_sensitivity, "steps_lr_sensitivity", nonnegative=True)
    if diverge_above is not None:
        diverge_above = check_scalar(diverge_above, "diverge_above", positive=True)
    if max_steps is not None:
        max_steps = check_scalar(max_steps, "max_steps", positive=True)
    check_choice(batch_unit, "batch_unit", BATCH_UNITS)
    eps_opt = np.stack([_eps_opt(law, b.astype(float), em[k], bn[k], alpha) for k in range(t.size)])  # (T, nB)
    if lrs is None:
        lr = np.geomspace(eps_opt.min() / 2.0, eps_opt.max() * 2.0, 17)
        lr = np.array([float(f"{x:.6g}") for x in lr])
    else:
        lr = np.unique(check_array(lrs, "lrs", ndim=1, positive=True))
    if optimizer is None:
        optimizer = "adam" if law == "adam" else "sgd"
    if betas is None:
        betas = (0.0, 0.0)
    seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    s_min_t = s_min * (t[0] / t) ** s_min_growth
    dl_opt = dl_max / (1.0 + bn[:, None] / b[None, :])  # Eq 18, (T, nB)

    rows = []
    for r in range(rounds):
        for j, bj in enumerate(b):
            for lr_i in lr:
                z_steps = rng.standard_normal()
                z_dl = rng.standard_normal(t.size)
                # the diverge test uses the first stage's optimum: a trial either diverges or it does not
                diverged = diverge_above is not None and lr_i / eps_opt[0, j] > diverge_above
                for k, tk in enumerate(t):
                    u = lr_i / eps_opt[k, j]
                    row = dict(
                        sweep="synthetic",
                        workload=workload,
                        optimizer=optimizer,
                        beta1=float(betas[0]),
                        beta2=float(betas[1]),
                        eps=1e-8,
                        weight_decay=0.0,
                        momentum=0.0,
                        batch_size=int(bj),
                        batch_unit=batch_unit,
                        lr=float(lr_i),
                        seed=int(seed) + r,
                        round=r,
                        stage=k,
                        target_loss=float(tk),
                        extra_steps=int(extra_steps),
                        error=None,
                    )
                    if diverged:
                        row.update(
                            status="diverged", reached=False, steps=np.nan, examples=np.nan, loss_decrease=np.nan
                        )
                        rows.append(row)
                        continue
                    s = (
                        s_min_t[k]
                        * (1.0 + bn[k] / bj)
                        * (1.0 + kappa * math.log(u) ** 2)
                        * math.exp(steps_noise * z_steps)
                    )
                    s = float(math.ceil(s))
                    if max_steps is not None and s > max_steps:
                        row.update(status="ok", reached=False, steps=np.nan, examples=np.nan, loss_decrease=np.nan)
                    else:
                        dl = dl_opt[k, j] * (2.0 * u - u * u) + noise * dl_opt[k, j] * z_dl[k]
                        row.update(status="ok", reached=True, steps=s, examples=s * int(bj), loss_decrease=float(dl))
                    rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["synthetic"] = {
        "law": law,
        "alpha": alpha if law == "sgd" else None,
        "target_loss": t.tolist(),
        "b_noise": bn.tolist(),
        "eps_max": em.tolist(),
        "s_min": s_min_t.tolist(),
    }
    return frame


def write_synthetic_store(frame: pd.DataFrame, path: str | Path, *, name: str = "synthetic") -> Path:
    """Write a frame from :func:`synthetic_frame` into a SQLite sweep store at ``path`` (for tests and demos).

    Goes through :class:`surge.sweep.store.SweepStore` like a real sweep, with a spec made from the frame's
    grid. Needs the sweep layer (imported here, not at module import).

    Args:
        frame: a frame from :func:`synthetic_frame` (one configuration; every (batch size, lr, seed) of its
            grid present).
        path: the SQLite store's file; created when missing, added to when it exists.
        name: the sweep's name in the store; default ``"synthetic"``.

    Returns:
        Path: ``path``.

    Raises:
        SurgeError: the spec made from the frame is invalid, or the store cannot be opened or written
            (from :func:`surge.sweep.spec.spec_from_dict` and :class:`surge.sweep.store.SweepStore`).
    """
    from types import SimpleNamespace

    from surge.sweep.plan import WorkloadInfo, plan_sweep
    from surge.sweep.spec import spec_from_dict
    from surge.sweep.store import SweepStore

    first = frame.iloc[0]
    targets = sorted(frame["target_loss"].unique().tolist(), reverse=True)
    rounds = sorted(frame["round"].unique().tolist())
    seed0 = int(frame["seed"].min())
    spec = spec_from_dict(
        {
            "workload": str(first["workload"]),
            "optimizer": {"name": str(first["optimizer"]), "betas": [float(first["beta1"]), float(first["beta2"])]},
            "lr": sorted(float(x) for x in frame["lr"].unique()),
            "batch_size": sorted(int(x) for x in frame["batch_size"].unique()),
            "rounds": len(rounds),
            "seed": seed0,
            "target_loss": targets,
            "extra_steps": int(first["extra_steps"]),
            "max_steps": int(np.nanmax(frame["steps"])) + 1 if frame["steps"].notna().any() else 10_000,
        },
        name=name,
    )
    info = WorkloadInfo(
        name=spec.workload,
        default_targets=tuple(targets),
        extra_steps=int(first["extra_steps"]),
        batch_unit=str(first["batch_unit"]),
    )
    plan = plan_sweep(spec, workload=info)
    by_trial = {key: g.sort_values("stage") for key, g in frame.groupby(["batch_size", "lr", "seed"])}
    with SweepStore(path) as store:
        sweep_id = store.register_sweep(plan)
        for group in plan.groups:
            results = []
            for trial in group.trials:
                g = by_trial[(trial.batch_size, trial.lr, trial.seed)]
                stages = [
                    SimpleNamespace(
                        target_loss=float(s.target_loss),
                        reached=bool(s.reached),
                        steps=None if not s.reached else int(s.steps),
                        examples=None if not s.reached else int(s.examples),
                        loss_at_target=float(s.target_loss) if s.reached else None,
                        loss_after=float(s.target_loss - s.loss_decrease) if s.reached else None,
                        loss_decrease=float(s.loss_decrease) if s.reached else None,
                    )
                    for s in g.itertuples()
                ]
                status = str(g["status"].iloc[0])
                results.append(
                    SimpleNamespace(
                        status=status,
                        seed=trial.seed,
                        lr=trial.lr,
                        stages=stages,
                        steps_run=None,
                        diverged_at_step=None,
                        strategy="synthetic",
                        wall_seconds=0.0,
                    )
                )
            store.record_trials(sweep_id, plan, group.trials, group.key, results=results, device="cpu")
    return Path(path)
