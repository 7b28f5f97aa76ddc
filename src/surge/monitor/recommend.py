"""``surge recommend --measured``: the learning rate at a new batch size from an in-run measurement.

lr1 = lr0 * eps_opt(B1) / eps_opt(B0), with eps_opt from the measurement at the chosen point of training:

- the model-based curve (Theorem 3, Eq 13 / Eq 40): eps_opt(B) proportional to sqrt(B) / (1 + B / B_noise),
  so the ratio needs only B_noise; its interval comes from B_noise's (the ratio is monotone in B_noise);
- the direct curve (Lemma 1) where the measurement has one: log-log interpolation between its batch
  sizes, with an interval from its pointwise intervals (treated as independent, which is conservative:
  the nested batches make neighbouring points positively correlated).

Beside them the linear and square-root rules, and warnings when B0 or B1 lies past B_noise or past the
validity batch size of Theorem 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from surge._validation import check_int, check_scalar
from surge.errors import SurgeError

Interval = tuple[float, float]


@dataclass(frozen=True)
class MeasuredRecommendation:
    """The learning rate at a new batch size from an in-run measurement (:func:`recommend_from_measure`).

    Batch sizes are in the measurement's unit (examples, or sequences for a language model); learning
    rates in the units of ``from_lr``; intervals are ``(low, high)`` tuples of floats.

    Attributes:
        from_batch_size: float, B0, the batch size ``from_lr`` was tuned at.
        from_lr: float, lr0, the learning rate at B0.
        to_batch_size: float, B1, the new batch size.
        lr: float, lr0 eps(B1) / eps(B0) on the Theorem 3 curve (Eq 13) with the measured (pooled) B_noise.
        lr_ci: interval of ``lr`` from the B_noise interval; (nan, nan) when that has no two usable ends.
        direct_lr: float from the direct curve (Lemma 1), or None where there is none or B0, B1 lie outside
            its batch sizes.
        direct_lr_ci: interval of ``direct_lr`` (approximately 95 %), or None with it.
        linear_lr: float, lr0 B1 / B0 (the linear rule).
        sqrt_lr: float, lr0 sqrt(B1 / B0) (the square-root rule).
        b_noise: float, the pooled B_noise at the chosen measurement; inf when none was measured (no surge).
        b_noise_ci: interval of ``b_noise`` (NaN ends where the measurement has none).
        validity_batch_size: float, Theorem 3's validity batch size at that measurement (NaN if unknown).
        at_step: int, the step of the measurement used.
        at_loss: float probe loss of that measurement (nats), or None.
        n_examples: int, examples pooled into it.
        curve_step: int, the step of the measurement the direct curve comes from, or None.
        warnings: list of str: B0 or B1 past B_noise or past the validity batch size; no finite B_noise.
    """

    from_batch_size: float
    from_lr: float
    to_batch_size: float
    lr: float  # Theorem 3 curve with the measured (pooled) B_noise
    lr_ci: Interval  # from the B_noise interval
    direct_lr: float | None  # from the direct curve (None where there is none or B0, B1 lie outside its batch sizes)
    direct_lr_ci: Interval | None
    linear_lr: float  # lr0 * B1 / B0
    sqrt_lr: float  # lr0 * sqrt(B1 / B0)
    b_noise: float  # the pooled B_noise at the chosen measurement
    b_noise_ci: Interval
    validity_batch_size: float
    at_step: int  # the measurement used
    at_loss: float | None  # its probe loss
    n_examples: int  # examples pooled into it
    curve_step: int | None  # the measurement the direct curve comes from
    warnings: list[str] = field(default_factory=list)


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _theorem3_ratio(b0: float, b1: float, bn: float) -> float:
    """eps(B1) / eps(B0) for eps(B) ~ sqrt(B) / (1 + B / B_noise) (Eq 13); the square-root rule when B_noise = inf."""
    if math.isinf(bn):
        return math.sqrt(b1 / b0)
    return math.sqrt(b1 / b0) * (1.0 + b0 / bn) / (1.0 + b1 / bn)


def pick_row(series: list[dict], *, at_loss: float | None = None, at_step: int | None = None) -> dict:
    """The measurement at ``at_step`` (nearest), at the first probe loss <= ``at_loss``, or the last one.

    Args:
        series: non-empty list of series rows (dicts with ``step`` and ``loss``), in step order.
        at_loss: float probe loss (nats): pick the first row whose ``loss`` is <= it; None (default): not
            by loss.
        at_step: int step: pick the row whose ``step`` is nearest (the first of ties); None (default): not
            by step.

    Returns:
        dict: the chosen row (the last one when neither ``at_loss`` nor ``at_step`` is given).

    Raises:
        SurgeError: both ``at_loss`` and ``at_step`` given, or no row reaches ``at_loss``.
    """
    if at_loss is not None and at_step is not None:
        raise SurgeError("give at most one of --at-loss and --at-step")
    if at_step is not None:
        at_step = check_int(at_step, "--at-step", minimum=0)
        return min(series, key=lambda r: abs(r["step"] - at_step))
    if at_loss is not None:
        for r in series:
            if r.get("loss") is not None and r["loss"] <= at_loss:
                return r
        losses = [r["loss"] for r in series if r.get("loss") is not None]
        lowest = min(losses) if losses else math.nan
        raise SurgeError(f"--at-loss {at_loss:g}: the run never reached it (its lowest probe loss is {lowest:.4g})")
    return series[-1]


def recommend_from_measure(
    doc: dict,
    from_batch_size: float,
    from_lr: float,
    to_batch_size: float,
    *,
    at_loss: float | None = None,
    at_step: int | None = None,
) -> MeasuredRecommendation:
    """The learning rate at ``to_batch_size`` from ``measure.json`` (a dict from ``load_measure``).

    lr1 = lr0 eps_opt(B1) / eps_opt(B0) on the Theorem 3 curve (Eq 13) with the pooled B_noise of the
    chosen measurement, and on the direct curve (Lemma 1) nearest in step, if any (see the module
    docstring).

    Args:
        doc: the ``measure.json`` object (from :func:`surge.monitor.run.load_measure`), with ``series`` and
            optional ``curves``.
        from_batch_size: float, B0 > 0, the batch size ``from_lr`` was tuned at (the measurement's unit).
        from_lr: float, lr0 > 0, the learning rate at B0.
        to_batch_size: float, B1 > 0, the new batch size.
        at_loss: float probe loss (nats): use the first measurement at or below it; None (default).
        at_step: int step: use the measurement nearest to it; None (default). Neither: the last one.

    Returns:
        MeasuredRecommendation: the learning rates at B1 (Theorem 3, direct, linear, square-root), their
        intervals and warnings.

    Raises:
        SurgeTypeError: a batch size or ``from_lr`` not a real number.
        SurgeError: a batch size or ``from_lr`` not finite and > 0; both ``at_loss`` and ``at_step``; a run
            that never reached ``at_loss``.
    """
    b0 = check_scalar(from_batch_size, "--from-batch-size", positive=True)
    lr0 = check_scalar(from_lr, "--from-lr", positive=True)
    b1 = check_scalar(to_batch_size, "--to-batch-size", positive=True)
    row = pick_row(doc["series"], at_loss=at_loss, at_step=at_step)
    bn = _num(row.get("smooth_b_noise"))
    if row.get("smooth_b_noise") is None:
        bn = math.inf  # JSON null: infinite (no surge seen) or undefined
    lo, hi = _num(row.get("smooth_b_noise_lo")), _num(row.get("smooth_b_noise_hi"))
    hi = math.inf if row.get("smooth_b_noise_hi") is None and row.get("smooth_b_noise_lo") is not None else hi
    validity = _num(row.get("validity_batch_size"))
    lr = lr0 * _theorem3_ratio(b0, b1, bn)
    ends = [lr0 * _theorem3_ratio(b0, b1, x) for x in (lo, hi) if not math.isnan(x) and x > 0]
    lr_ci = (min(ends), max(ends)) if len(ends) == 2 else (math.nan, math.nan)
    # the direct curve nearest in step
    direct, direct_ci, curve_step = None, None, None
    curves = [c for c in doc.get("curves", []) if c.get("direct_lr")]
    if curves:
        c = min(curves, key=lambda c: abs(c["step"] - row["step"]))
        bs = np.asarray(c["batch_sizes"], dtype=float)
        y = np.array([_num(v) for v in c["direct_lr"]])
        ylo = np.array([_num(v) for v in c["direct_lr_lo"]])
        yhi = np.array([_num(v) for v in c["direct_lr_hi"]])
        ok = np.isfinite(y) & (y > 0) & np.isfinite(ylo) & (ylo > 0) & np.isfinite(yhi)
        if ok.sum() >= 2 and bs[ok].min() <= min(b0, b1) and max(b0, b1) <= bs[ok].max():
            # half-widths in log lr combine in quadrature: the interval keeps the curve's own confidence
            # (the quantile used to turn widths into sds and back cancels, whatever it is)
            lb = np.log(bs[ok])
            ly, sd = np.log(y[ok]), (np.log(yhi[ok]) - np.log(ylo[ok])) / (2 * 1.96)
            e0, e1 = (float(np.interp(math.log(b), lb, ly)) for b in (b0, b1))
            s0, s1 = (float(np.interp(math.log(b), lb, sd)) for b in (b0, b1))
            direct = lr0 * math.exp(e1 - e0)
            half = 1.96 * math.sqrt(s0 * s0 + s1 * s1)
            direct_ci = (direct * math.exp(-half), direct * math.exp(half))
            curve_step = int(c["step"])
    warnings = []
    for name, b in (("--from-batch-size", b0), ("--to-batch-size", b1)):
        if math.isfinite(bn) and b > bn:
            warnings.append(
                f"{name} {b:g} lies past the measured B_noise {bn:.4g}: the Adam-style optimal lr falls there as B grows"
            )
        if math.isfinite(validity) and b > validity:
            warnings.append(
                f"{name} {b:g} lies past the validity batch size {validity:.4g} of Theorem 3: the model-based answer is an "
                "extrapolation (the true curve tends to the Eq 17 plateau); prefer the direct curve"
            )
    if math.isinf(bn):
        warnings.append(
            "no finite B_noise was measured at this point (no surge seen): the model-based answer is the square-root rule"
        )
    return MeasuredRecommendation(
        from_batch_size=b0,
        from_lr=lr0,
        to_batch_size=b1,
        lr=lr,
        lr_ci=lr_ci,
        direct_lr=direct,
        direct_lr_ci=direct_ci,
        linear_lr=lr0 * b1 / b0,
        sqrt_lr=lr0 * math.sqrt(b1 / b0),
        b_noise=bn,
        b_noise_ci=(lo, hi),
        validity_batch_size=validity,
        at_step=int(row["step"]),
        at_loss=row.get("loss"),
        n_examples=int(row.get("smooth_n_examples") or row.get("n_examples") or 0),
        curve_step=curve_step,
        warnings=warnings,
    )
