"""Planning before spending compute: from a pilot sweep, the rounds that give a chosen interval width for
the optimal learning rate (per batch size) and for B_noise, and whether the grid brackets them.

The rule: a bootstrap interval of a smooth estimator narrows like 1 / sqrt(rounds), so an interval of
width w (a factor, hi / lo) after R rounds becomes width W after ``R (log w / log W)^2`` rounds. It is
an extrapolation from the pilot's own noise: the fewer the pilot's rounds, the rougher it is (a pilot
of at least 4 rounds is advised). An interval that is open (the fit has no maximum in some resamples)
gives no number: the grid or the pilot is the problem, and the advice says which.

Bracketing: the grid argmax at the smallest or largest candidate learning rate means the optimum lies
outside the grid (extend it by factors of 2 on that side); a B_noise estimate past half the largest batch
size or below twice the smallest, or an optimum that still rises at the largest batch size, means the
batch-size grid does not bracket B_noise (extend it by factors of 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from surge._validation import check_scalar
from surge.analysis.analyze import analyze
from surge.errors import SurgeError


@dataclass(frozen=True)
class RoundsAdvice:
    """The rounds one estimate needs for the chosen width.

    Attributes:
        target_loss: the stage's target loss.
        what: ``"optimal_lr"`` (the fitted optimal learning rate of one batch size) or ``"b_noise"``.
        batch_size: the batch size for ``"optimal_lr"``; None for ``"b_noise"``.
        estimate: the pilot's estimate (a learning rate, or B_noise in batch-size units); NaN when none.
        width_now: ``hi / lo`` of the pilot's interval (inf: open; NaN: none).
        rounds_now: the pilot's rounds.
        rounds_needed: the rounds for the wanted width, ``R (log w / log W)^2`` and at least ``rounds_now``;
            None when the pilot's interval gives no basis.
        note: the fit's message (``"optimal_lr"``), or where the B_noise came from (``"Eq 22, jackknife"``,
            ``"Eq 22"``, ``"Adam law fitted to the optima"``, or ``"no B_noise estimate"``).
    """

    target_loss: float
    what: str  # "optimal_lr" or "b_noise"
    batch_size: int | None  # for "optimal_lr"; None for "b_noise"
    estimate: float
    width_now: float  # hi / lo of the pilot's interval (inf: open; NaN: none)
    rounds_now: int
    rounds_needed: int | None  # None when the pilot's interval gives no basis
    note: str


@dataclass(frozen=True)
class Advice:
    """What a pilot says about the rounds and the grid of the real sweep.

    Attributes:
        width: the wanted width of the optimal-lr intervals (a factor hi / lo, > 1).
        b_noise_width: the wanted width of the B_noise interval (a factor, > 1).
        rounds: one :class:`RoundsAdvice` per (stage, batch size) for the optimal lr and one per stage for
            B_noise, in stage order.
        warnings: one sentence per grid that does not bracket the optimum or B_noise, with the extension
            to make.
        rounds_for_lr: the most rounds any batch size needs for ``width`` (None: no basis for some).
        rounds_for_b_noise: the most rounds any stage needs for ``b_noise_width`` (None: no basis for some).
    """

    width: float  # the wanted width of the optimal-lr intervals (a factor)
    b_noise_width: float  # the wanted width of the B_noise interval
    rounds: tuple[RoundsAdvice, ...]
    warnings: tuple[str, ...]  # grid does not bracket the optimum / B_noise, with the extension to make
    rounds_for_lr: int | None  # the most rounds any batch size needs for ``width`` (None: no basis)
    rounds_for_b_noise: int | None

    def to_dict(self) -> dict:
        """The advice as JSON-ready values (:func:`surge._json.to_jsonable`; NaN and inf become None).

        Returns:
            dict: the fields, ``rounds`` as a list of dicts.
        """
        from surge._json import to_jsonable

        return to_jsonable(self)


def _needed(rounds: int, w: float, target: float) -> int | None:
    if not (math.isfinite(w) and w > 1):
        return None
    return max(rounds, int(math.ceil(rounds * (math.log(w) / math.log(target)) ** 2)))


def advise(
    frame,
    *,
    width: float = 1.5,
    b_noise_width: float = 2.0,
    config=None,
    n_boot: int = 500,
    seed: int = 0,
    confidence: float = 0.95,
) -> Advice:
    """Rounds for a ``width`` (hi / lo factor) interval of the fitted optimal lr at every batch size, and for
    a ``b_noise_width`` interval of B_noise, from a pilot's trial frame; and the grid extensions it needs.

    Analyses the pilot with :func:`surge.analysis.analyze` (``lr_estimate="fitted"``) and extrapolates each
    interval's width by the 1 / sqrt(rounds) rule of the module docstring. B_noise is the jackknife's
    corrected value, else the Eq 22 fit, else the B_noise of the Adam law fitted to the optima.

    Args:
        frame: the pilot's trials, one row per trial and stage (raw or tidy; see :func:`surge.analysis.analyze`).
        width: the wanted width of each optimal-lr interval, a factor hi / lo > 1; default 1.5.
        b_noise_width: the wanted width of the B_noise interval, a factor > 1; default 2.
        config: the configuration to analyse (label or index); None when the frame holds one.
        n_boot: bootstrap resamples of the rounds; default 500.
        seed: seed of the bootstrap.
        confidence: coverage of the intervals, in (0, 1); default 0.95.

    Returns:
        Advice: the rounds per estimate, the most rounds needed, and the grid warnings.

    Raises:
        SurgeTypeError: ``width`` or ``b_noise_width`` is not a real number.
        SurgeError: ``width`` or ``b_noise_width`` not a finite factor > 1; and whatever
            :func:`surge.analysis.analyze` raises for the frame and the other arguments.
    """
    width = check_scalar(width, "width", positive=True)
    b_noise_width = check_scalar(b_noise_width, "b_noise_width", positive=True)
    for name, w in (("width", width), ("b_noise_width", b_noise_width)):
        if not w > 1:
            raise SurgeError(f"{name} must be a factor > 1 (hi / lo of the interval), got {w:g}")
    a = analyze(frame, lr_estimate="fitted", config=config, n_boot=n_boot, seed=seed, confidence=confidence)
    items: list[RoundsAdvice] = []
    warnings: list[str] = []
    for st in a.stages:
        lrs = st.grid.lrs
        for r in st.rows:
            note = r.fit_note
            w = r.fitted_width
            if r.at_grid_edge and math.isfinite(r.optimal_lr):
                low = r.optimal_lr <= lrs.min() * (1 + 1e-9)
                ext = (
                    f"add {r.optimal_lr / 2:.3g} and {r.optimal_lr / 4:.3g}"
                    if low
                    else f"add {r.optimal_lr * 2:.3g} and {r.optimal_lr * 4:.3g}"
                )
                warnings.append(
                    f"target {st.target_loss:g}, B = {r.batch_size}: the best learning rate is the "
                    f"{'smallest' if low else 'largest'} of the grid, so the grid does not bracket the "
                    f"optimum; {ext}"
                )
            items.append(
                RoundsAdvice(
                    st.target_loss,
                    "optimal_lr",
                    r.batch_size,
                    r.fitted_lr,
                    w,
                    r.n_rounds,
                    _needed(r.n_rounds, w, width),
                    note,
                )
            )
        # B_noise: the jackknife (scratch), the Eq 22 fit, or the Adam law fitted to the optima (branch)
        rounds_now = max((r.n_rounds for r in st.rows), default=0)
        bn, ci, src = math.nan, (math.nan, math.nan), ""
        jk = st.b_noise_jackknife
        if jk is not None and math.isfinite(jk.b_noise_corrected):
            bn, ci, src = jk.b_noise_corrected, jk.b_noise_ci, "Eq 22, jackknife"
        elif math.isfinite(st.b_noise):
            bn, ci, src = st.b_noise, st.b_noise_ci, "Eq 22"
        elif st.surge_fit is not None and st.surge_fit.success:
            bn, ci, src = st.surge_fit.b_noise, st.surge_fit.b_noise_ci, "Adam law fitted to the optima"
        bw = ci[1] / ci[0] if ci[0] > 0 and math.isfinite(ci[1]) else (math.inf if ci[0] > 0 else math.nan)
        items.append(
            RoundsAdvice(
                st.target_loss,
                "b_noise",
                None,
                bn,
                bw,
                rounds_now,
                _needed(rounds_now, bw, b_noise_width),
                src or "no B_noise estimate",
            )
        )
        bs = st.grid.batch_sizes
        if math.isfinite(bn) and bs.size:
            if bn > bs.max() / 2:
                warnings.append(
                    f"target {st.target_loss:g}: B_noise ~ {bn:.3g} ({src}) is near or past the largest "
                    f"batch size {int(bs.max())}; add batch sizes up to {int(4 * max(bn, bs.max()))}"
                )
            elif bn < 2 * bs.min():
                warnings.append(
                    f"target {st.target_loss:g}: B_noise ~ {bn:.3g} ({src}) is near or below the smallest "
                    f"batch size {int(bs.min())}; add batch sizes down to {max(1, int(bn / 4))}"
                )
        else:
            fitted = np.array([r.fitted_lr for r in st.rows])
            ok = np.isfinite(fitted)
            if ok.sum() >= 2 and fitted[ok][-1] >= np.max(fitted[ok]):
                warnings.append(
                    f"target {st.target_loss:g}: the optimal learning rate still rises at the largest batch "
                    f"size {int(bs.max())} and there is no B_noise estimate; add batch sizes up to "
                    f"{int(4 * bs.max())}"
                )
    lr_need = [i.rounds_needed for i in items if i.what == "optimal_lr"]
    bn_need = [i.rounds_needed for i in items if i.what == "b_noise"]
    most = lambda v: None if not v or any(x is None for x in v) else max(v)  # noqa: E731
    return Advice(
        width=width,
        b_noise_width=b_noise_width,
        rounds=tuple(items),
        warnings=tuple(warnings),
        rounds_for_lr=most(lr_need),
        rounds_for_b_noise=most(bn_need),
    )
