"""``surge measure``'s library side: train one run of a workload and measure gradient noise along it.

:func:`measure_run` trains the workload's model with Adam (any betas; (0, 0) is sign descent) or SGD at
one batch size and learning rate, and every ``every`` steps measures, at the current parameters and
before that step's update: the probe loss (the workload's fixed subset of the training set, the loss the
sweeps' target losses refer to), and :class:`~surge.monitor.NoiseMonitor`'s statistics on
``measure_examples`` training examples. At ``curve_points`` of the measurements it also computes the
optimal-lr curves over ``curve_batch_sizes`` (exact Eq 9 with the estimates, and Lemma 1 direct).

:func:`write_measure` writes ``measure.json`` (the ``MEASURE_KIND`` document :func:`load_measure` reads),
``series.csv`` and ``measure.png``.

Why one module of ~440 lines: the config checks, the training loop and the result's reading and writing are
the one ``surge measure`` run; about 260 lines are code, the rest docstrings.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from surge._json import to_jsonable
from surge._validation import check_array, check_input_file, check_int
from surge.errors import OutputError, SurgeError

MEASURE_KIND = "surge-measure"
MEASURE_VERSION = 1
OPTIMIZERS = ("adam", "sgd")  # what `surge measure` trains with (a subset of surge.records.OPTIMIZERS)


@dataclass
class MeasureConfig:
    """What ``surge measure`` trains and measures (checked and completed by :func:`check_config`).

    Attributes:
        workload: str, a built-in workload name or ``"package.module:attribute"``.
        optimizer: ``"adam"`` (torch.optim.Adam; betas (0, 0) = sign descent) or ``"sgd"``; default adam.
        betas: (b1, b2), Adam's betas, each in [0, 1); default (0.9, 0.999).
        lr: float > 0, the learning rate (default 1e-3).
        batch_size: int >= 2, examples (sequences for a language model) per step (default 32).
        steps: int >= 1, optimizer steps (default 200).
        every: int >= 1, measure every K steps, from step 0 (default 20).
        measure_examples: int >= 8, training examples per measurement; None: max(batch_size, 256).
        curve_points: int >= 0, measurements (evenly spaced) at which the curves over batch size are
            computed (default 3).
        curve_batch_sizes: batch sizes (examples) of the curves; None: 1, 2, 4, ... up to
            measure_examples / 2.
        curve_losses: probe losses (nats) > 0: also compute the curves at the first measurement at or below
            each (stored in decreasing order); default none.
        window: int >= 1, measurements pooled into the smoothed series (default 3).
        n_draws: int >= 2, resampled batches per batch size in the direct curve (default 32).
        seed: int, seed of the model's initialisation, the data order and the estimator (default 0).
        data_dir: str folder of the workload's data, or None (the workload's default).
    """

    workload: str  # built-in name or "package.module:attribute"
    optimizer: str = "adam"  # "adam" (torch.optim.Adam; betas (0, 0) = sign descent) or "sgd"
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's betas
    lr: float = 1e-3  # learning rate
    batch_size: int = 32  # examples (sequences for a language model) per step
    steps: int = 200  # optimizer steps
    every: int = 20  # measure every K steps (from step 0)
    measure_examples: int | None = None  # examples per measurement (default: max(batch_size, 256))
    curve_points: int = 3  # measurements (evenly spaced) at which the curves over batch size are computed
    curve_batch_sizes: tuple[float, ...] | None = None  # default 1, 2, 4, ... up to measure_examples / 2
    curve_losses: tuple[float, ...] = ()  # also compute the curves at the first measurement at or below each probe loss
    window: int = 3  # measurements pooled into the smoothed series
    n_draws: int = 32  # resampled batches per batch size in the direct curve
    seed: int = 0
    data_dir: str | None = None


@dataclass
class MeasureResult:
    """What :func:`measure_run` returns; :func:`write_measure` writes it.

    Attributes:
        config: the MeasureConfig, completed by :func:`check_config`.
        series: list of dict, one row per measurement (``surge.monitor.loop.SERIES_FIELDS``).
        curves: list of dict, the curves over batch size at the chosen measurements (JSON-ready: step,
            probe loss, target_losses, batch_sizes, model_lr, theorem3_lr, direct_lr and its ends,
            direct_update, b_noise and its interval, eps_max, validity and peak batch sizes).
        final: dict, the last ``window`` measurements pooled (``NoiseEstimate.to_dict()``, JSON-ready).
        batch_unit: str, the workload's unit of batch sizes: ``"examples"``, ``"tokens"`` or ``"sequences"``.
        n_params: int, trainable parameters of the model.
        wall_seconds: float, seconds the training loop took (measurements included).
        monitor_seconds: float, seconds spent measuring.
        files: dict name -> path (str) of the written files (filled by :func:`write_measure`).
    """

    config: MeasureConfig
    series: list[dict]  # one row per measurement (surge.monitor.loop.SERIES_FIELDS)
    curves: list[dict]  # the curves over batch size at the chosen measurements
    final: dict  # the last smoothed estimate (NoiseEstimate.to_dict())
    batch_unit: str
    n_params: int
    wall_seconds: float
    monitor_seconds: float
    files: dict = field(default_factory=dict)


def check_config(cfg: MeasureConfig) -> MeasureConfig:
    """Check a MeasureConfig and fill its defaults, in place.

    Sets ``measure_examples`` (max(batch_size, 256)) and ``curve_batch_sizes`` (powers of 2 up to
    measure_examples / 2) when None, converts ``curve_batch_sizes`` to floats and sorts ``curve_losses``
    in decreasing order.

    Args:
        cfg: the MeasureConfig to check (modified).

    Returns:
        MeasureConfig: ``cfg`` itself.

    Raises:
        SurgeError: an optimizer not in ``OPTIMIZERS``, betas not two numbers in [0, 1), an lr not finite
            and > 0, an integer field out of range (every, batch_size >= 2, steps, curve_points >= 0, window,
            n_draws >= 2, measure_examples >= 8), a curve batch size not finite and > 0 or not strictly
            increasing, or a curve loss not finite and > 0.
        SurgeTypeError: an integer field that is not an integer; non-numeric curve batch sizes or losses.
    """

    def pos_int(name, value, low=1):  # named by its `surge measure` option
        check_int(value, {"n_draws": "--draws"}.get(name, f"--{name.replace('_', '-')}"), minimum=low)

    if cfg.optimizer not in OPTIMIZERS:
        raise SurgeError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
    if len(cfg.betas) != 2 or not all(0 <= b < 1 for b in cfg.betas):
        raise SurgeError(f"--betas must be two numbers in [0, 1), got {list(cfg.betas)}")
    if not (isinstance(cfg.lr, (int, float)) and math.isfinite(cfg.lr) and cfg.lr > 0):
        raise SurgeError(f"--lr must be a finite number > 0, got {cfg.lr!r}")
    pos_int("every", cfg.every)
    pos_int("batch_size", cfg.batch_size, 2)
    pos_int("steps", cfg.steps)
    pos_int("curve_points", cfg.curve_points, 0)
    pos_int("window", cfg.window)
    pos_int("n_draws", cfg.n_draws, 2)
    if cfg.measure_examples is None:
        cfg.measure_examples = max(cfg.batch_size, 256)
    pos_int("measure_examples", cfg.measure_examples, 8)
    if cfg.curve_batch_sizes is None:
        top = cfg.measure_examples // 2
        cfg.curve_batch_sizes = tuple(float(2**k) for k in range(int(math.log2(top)) + 1))
    b = check_array(cfg.curve_batch_sizes, "--curve-batch-size", positive=True, increasing=True)
    cfg.curve_batch_sizes = tuple(float(x) for x in b.ravel())
    losses = check_array(cfg.curve_losses, "--curve-at-loss", positive=True, min_size=0).ravel()
    cfg.curve_losses = tuple(sorted((float(x) for x in losses), reverse=True))
    return cfg


def _probe_loss(model, workload, torch) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(workload.probe_inputs), workload.probe_chunk):
            x = workload.probe_inputs[i : i + workload.probe_chunk]
            y = workload.probe_targets[i : i + workload.probe_chunk]
            total += float(workload.loss_fn(model(x), y)) * len(x)
            count += len(x)
    return total / count


def check_workload(cfg: MeasureConfig):
    """Load the workload and check it can be measured (before any progress bar or training starts).

    Seeds torch with ``cfg.seed`` and builds one model to check it has trainable parameters.

    Args:
        cfg: the MeasureConfig (its ``workload``, ``data_dir``, ``measure_examples`` and ``seed``).

    Returns:
        Workload: the loaded workload (:func:`surge.workloads.get_workload`).

    Raises:
        SurgeError: an unknown workload, ``measure_examples`` above the workload's training examples, or a
            model without trainable parameters; errors of loading the workload propagate.
        SurgeTypeError: a workload name that is not a non-empty string.
    """
    import torch

    from surge.workloads import get_workload

    wl = get_workload(cfg.workload, cfg.data_dir)
    if cfg.measure_examples is not None and cfg.measure_examples > wl.num_train:
        raise SurgeError(
            f"--measure-examples {cfg.measure_examples} exceeds the {wl.num_train} training examples of {wl.name} "
            f"(when not given it is max(batch size, 256)); give --measure-examples at most {wl.num_train}"
        )
    torch.manual_seed(cfg.seed)
    if not any(p.requires_grad for p in wl.make_model().parameters()):
        raise SurgeError(f"workload {cfg.workload!r}: the model has no trainable parameters (nothing to measure)")
    return wl


def measure_run(
    cfg: MeasureConfig, *, progress: Callable[[int, int, dict | None], None] | None = None
) -> MeasureResult:
    """Train one run and measure along it (see the module docstring). ``progress(step, steps, row)`` per step.

    Args:
        cfg: the MeasureConfig (checked and completed in place by :func:`check_config`).
        progress: callable ``(steps done, total steps, row or None)`` called after each step (the row when
            the step was measured), or None (default).

    Returns:
        MeasureResult: the series, curves, final pooled estimate and timings (``files`` empty).

    Raises:
        SurgeError: a bad config or workload (:func:`check_config`, :func:`check_workload`), a measurement
            error, or a training loss that became non-finite (the run diverged: lower the lr).
        SurgeTypeError: a config integer field that is not an integer.
    """
    import torch

    from surge.monitor.estimators import pool_estimates
    from surge.monitor.loop import NoiseMonitor

    cfg = check_config(cfg)
    wl = check_workload(cfg)
    torch.manual_seed(cfg.seed)
    model = wl.make_model()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SurgeError(f"workload {cfg.workload!r}: the model has no trainable parameters")
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas))
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr)
    n_meas = len(range(0, cfg.steps, cfg.every))
    curve_at = (
        set(np.unique(np.round(np.linspace(0, n_meas - 1, cfg.curve_points)).astype(int)).tolist())
        if cfg.curve_points
        else set()
    )
    monitor = NoiseMonitor(
        model,
        wl.loss_fn,
        every=cfg.every,
        window=cfg.window,
        optimizer=opt if cfg.optimizer == "adam" else None,
        n_draws=cfg.n_draws,
        seed=cfg.seed,
        hessian_every=1,
        n_groups=16,
        n_probes=8,
        sketch_size=4,
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    mgen = torch.Generator().manual_seed(cfg.seed + 1)
    order, pos = torch.randperm(wl.num_train, generator=gen), 0
    curves: list[dict] = []
    pending = list(cfg.curve_losses)  # decreasing
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        if pos + cfg.batch_size > len(order):
            order, pos = torch.randperm(wl.num_train, generator=gen), 0
        idx = order[pos : pos + cfg.batch_size]
        pos += cfg.batch_size
        x, y = wl.train_inputs[idx], wl.train_targets[idx]
        row = None
        if step % cfg.every == 0:
            k = len(monitor.series)
            loss = _probe_loss(model, wl, torch)
            midx = torch.randperm(wl.num_train, generator=mgen)[: cfg.measure_examples]
            crossed = [t for t in pending if loss <= t]
            pending = [t for t in pending if loss > t]
            bs = list(cfg.curve_batch_sizes) if (k in curve_at or crossed) else None
            row = monitor.measure(wl.train_inputs[midx], wl.train_targets[midx], step=step, loss=loss, batch_sizes=bs)
            if bs is not None:
                est = monitor.latest
                curves.append(
                    {
                        "step": step,
                        "loss": loss,
                        "target_losses": crossed,
                        "batch_sizes": est.batch_sizes,
                        "model_lr": est.model_lr,
                        "theorem3_lr": est.lr_at(est.batch_sizes),
                        "direct_lr": est.direct_lr,
                        "direct_lr_lo": est.direct_lr_ci[:, 0],
                        "direct_lr_hi": est.direct_lr_ci[:, 1],
                        "direct_update": est.direct_update,
                        "b_noise": est.b_noise,
                        "b_noise_ci": est.b_noise_ci,
                        "eps_max": est.eps_max,
                        "validity_batch_size": est.validity_batch_size,
                        "model_peak_batch_size": est.model_peak_batch_size,
                        "direct_peak_batch_size": est.direct_peak_batch_size,
                    }
                )
        model.train()
        out = wl.loss_fn(model(x), y)
        if not torch.isfinite(out):
            raise SurgeError(f"the training loss became {float(out)} at step {step}: lower --lr (the run diverged)")
        opt.zero_grad(set_to_none=True)
        out.backward()
        opt.step()
        if progress is not None:
            progress(step + 1, cfg.steps, row)
    wall = time.perf_counter() - t0
    final = pool_estimates([e for _, e in monitor.estimates[-cfg.window :]]).to_dict()
    return MeasureResult(
        config=cfg,
        series=monitor.series,
        curves=to_jsonable(curves),
        final=to_jsonable(final),
        batch_unit=wl.batch_unit,
        n_params=sum(p.numel() for p in params),
        wall_seconds=wall,
        monitor_seconds=monitor.seconds,
    )


def check_out_dir(out: Path) -> Path:
    """Create ``out`` (before any work) or fail with one line.

    Args:
        out: str or Path of the output folder; created with its parents, checked by writing a test file.

    Returns:
        Path: ``out``.

    Raises:
        OutputError: ``out`` cannot be created or written.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".surge-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"--out {str(out)!r} cannot be written: {exc.strerror or exc}") from None
    return out


def result_dict(res: MeasureResult) -> dict:
    """The ``measure.json`` object (kind ``MEASURE_KIND``, version ``MEASURE_VERSION``) of a result.

    Args:
        res: the MeasureResult.

    Returns:
        dict, JSON-ready: kind, version, config, batch_unit, n_params, series, curves, final,
        wall_seconds, monitor_seconds, monitor_fraction (monitor / wall seconds, None if wall is 0), files.
    """
    cfg = res.config
    return to_jsonable(
        {
            "kind": MEASURE_KIND,
            "version": MEASURE_VERSION,
            "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
            "batch_unit": res.batch_unit,
            "n_params": res.n_params,
            "series": res.series,
            "curves": res.curves,
            "final": res.final,
            "wall_seconds": res.wall_seconds,
            "monitor_seconds": res.monitor_seconds,
            "monitor_fraction": res.monitor_seconds / res.wall_seconds if res.wall_seconds > 0 else None,
            "files": res.files,
        }
    )


def write_measure(res: MeasureResult, out: Path) -> dict:
    """Write measure.json, series.csv and measure.png into ``out``; returns the measure.json object.

    Sets ``res.files`` to the three paths.

    Args:
        res: the MeasureResult to write (``files`` is filled).
        out: str or Path of the output folder (created); existing files there are overwritten.

    Returns:
        dict: the ``measure.json`` object (:func:`result_dict`).

    Raises:
        OutputError: ``out`` cannot be created or written (checked first); later OS errors propagate.
    """
    import csv

    from surge.monitor.loop import SERIES_FIELDS
    from surge.monitor.plots import plot_measure

    out = check_out_dir(out)
    files = {"measure_json": out / "measure.json", "series_csv": out / "series.csv", "figure": out / "measure.png"}
    with files["series_csv"].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(SERIES_FIELDS)
        for row in res.series:
            w.writerow(["" if row.get(k) is None else row.get(k) for k in SERIES_FIELDS])
    res.files = {k: str(v) for k, v in files.items()}
    doc = result_dict(res)
    plot_measure(doc, files["figure"])
    files["measure_json"].write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def load_measure(path) -> dict:
    """Read a ``measure.json`` written by ``surge measure``; one clear line if it is not one.

    Args:
        path: str or Path of the ``measure.json`` file.

    Returns:
        dict: the document, with a non-empty ``series`` of rows that have a ``step``.

    Raises:
        InputFileError: ``path`` does not exist or is not a file.
        SurgeError: not JSON, not a surge measure document (its ``kind``), another ``version``, no
            measurements, or a value the recommendation reads that is not a number (the message names it).
    """
    p = check_input_file(path, "--measured", "give DIR/measure.json from 'surge measure'")
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SurgeError(
            f"--measured {str(p)!r} is not JSON ({type(exc).__name__}: {exc}); expected measure.json from 'surge measure'"
        ) from None
    if not isinstance(doc, dict) or doc.get("kind") != MEASURE_KIND:
        raise SurgeError(f'--measured {str(p)!r} is not a surge measure.json (its "kind" is not {MEASURE_KIND!r})')
    if doc.get("version") != MEASURE_VERSION:
        raise SurgeError(
            f"--measured {str(p)!r} has version {doc.get('version')!r}; this surge reads version {MEASURE_VERSION}"
        )
    series = doc.get("series")
    if not isinstance(series, list) or not series or not all(isinstance(r, dict) and "step" in r for r in series):
        raise SurgeError(f'--measured {str(p)!r} has no measurements (an empty or malformed "series")')
    curves = doc.get("curves", [])
    if not isinstance(curves, list) or not all(isinstance(c, dict) and "step" in c for c in curves):
        raise SurgeError(f'--measured {str(p)!r} has a malformed "curves" list')
    for where, rows, read in (("series", series, _SERIES_READ), ("curves", curves, _CURVE_READ)):
        for i, row in enumerate(rows):
            for key, kind in read.items():
                value = row.get(key)
                if key in row and not _is(value, kind):
                    raise SurgeError(f'--measured {str(p)!r}: {where}[{i}]["{key}"] is {value!r}, not {kind}')
    return doc


# what the recommendation reads from a measure.json, and what each value must be
_SERIES_READ = {
    "step": "an integer >= 0",
    "loss": "a number or null",
    "smooth_b_noise": "a number or null",
    "smooth_b_noise_lo": "a number or null",
    "smooth_b_noise_hi": "a number or null",
    "validity_batch_size": "a number or null",
}
_CURVE_READ = {
    "step": "an integer >= 0",
    "batch_sizes": "a list of numbers",
    "direct_lr": "a list of numbers or nulls",
    "direct_lr_lo": "a list of numbers or nulls",
    "direct_lr_hi": "a list of numbers or nulls",
}


def _is(value: Any, kind: str) -> bool:
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if kind == "an integer >= 0":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == "a number or null":
        return value is None or number(value)
    if kind == "a list of numbers":
        return isinstance(value, list) and all(number(v) for v in value)
    return isinstance(value, list) and all(v is None or number(v) for v in value)


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)
