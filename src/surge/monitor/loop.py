"""``NoiseMonitor``: measure B_simple, B_noise, eps_max and the optimal-lr curve every K steps of a PyTorch loop.

Usage::

    monitor = NoiseMonitor(model, F.cross_entropy, every=1000, log_path="noise.jsonl")
    for step, (x, y) in enumerate(loader):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        monitor.step(x, y, loss=loss)          # measures on this batch when step % every == 0

Each measurement takes the batch the loop already has: per-example gradients (torch.func), the Hessian-
vector products the estimators need (about 2 sketch_size + n_probes + n_groups of them, plus one per
batch size of a model curve and n_draws per batch size of a direct curve), at the current parameters,
with the model in eval mode (dropout off) for the duration. Rows of the series are also pooled over the
last ``window`` measurements (ratio of averaged components, ``surge.monitor.pool_estimates``), with
intervals and ``n_examples`` saying how much data went in.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from surge._json import to_jsonable
from surge._validation import check_int
from surge.errors import OutputError, SurgeError
from surge.monitor.estimators import NoiseEstimate, estimate_noise, pool_estimates
from surge.monitor.torch_grads import adam_state_of, make_hvp, per_example_grads, trainable

__all__ = ["NoiseMonitor", "SeriesLogger", "record_of", "SERIES_FIELDS"]

# The columns of a series row (JSONL keys, CSV header); *_lo / *_hi are the interval ends.
SERIES_FIELDS = (
    "step",
    "loss",
    "n_examples",
    "b_simple",
    "b_simple_lo",
    "b_simple_hi",
    "b_noise",
    "b_noise_lo",
    "b_noise_hi",
    "eps_max",
    "eps_max_lo",
    "eps_max_hi",
    "validity_batch_size",
    "within_validity",
    "model_peak_batch_size",
    "direct_peak_batch_size",
    "smooth_n_examples",
    "smooth_b_simple",
    "smooth_b_simple_lo",
    "smooth_b_simple_hi",
    "smooth_b_noise",
    "smooth_b_noise_lo",
    "smooth_b_noise_hi",
    "smooth_eps_max",
    "smooth_eps_max_lo",
    "smooth_eps_max_hi",
    "seconds",
    "message",
)


def record_of(step: int, loss: float | None, est: NoiseEstimate, smooth: NoiseEstimate | None, seconds: float) -> dict:
    """One row of the series from a measurement and its pooled (smoothed) version.

    Args:
        step: int, the training step of the measurement.
        loss: float training (or probe) loss at that step, in the loss's units (nats), or None.
        est: the NoiseEstimate of this measurement.
        smooth: the pooled NoiseEstimate of the last few measurements, or None (then ``est``'s values fill
            the ``smooth_*`` columns).
        seconds: float, wall-clock seconds the measurement took.

    Returns:
        dict with the keys of ``SERIES_FIELDS`` (``*_lo`` / ``*_hi`` the interval ends), JSON-ready values
        (batch sizes in examples, learning rates in sign-update units).
    """
    row: dict[str, Any] = {
        "step": int(step),
        "loss": None if loss is None else float(loss),
        "n_examples": est.n_examples,
    }
    for key in ("b_simple", "b_noise", "eps_max"):
        row[key] = getattr(est, key)
        row[key + "_lo"], row[key + "_hi"] = getattr(est, key + "_ci")
    row["validity_batch_size"] = est.validity_batch_size
    row["within_validity"] = est.within_validity
    row["model_peak_batch_size"] = est.model_peak_batch_size
    row["direct_peak_batch_size"] = est.direct_peak_batch_size
    s = smooth or est
    row["smooth_n_examples"] = s.n_examples
    for key in ("b_simple", "b_noise", "eps_max"):
        row["smooth_" + key] = getattr(s, key)
        row["smooth_" + key + "_lo"], row["smooth_" + key + "_hi"] = getattr(s, key + "_ci")
    row["seconds"] = seconds
    row["message"] = est.message
    return {k: to_jsonable(v) for k, v in row.items()}


class SeriesLogger:
    """Appends series rows to a JSONL (``.jsonl``) or CSV (``.csv``) file, and to TensorBoard when installed.

    The path is checked (and its folder created) before any training starts; an existing file there is
    overwritten (a CSV gets its header line).

    Args:
        path: str or Path of the series file, ending in ``.jsonl`` or ``.csv``; None (default): no file.
        tensorboard_dir: str or Path of a TensorBoard log folder (scalars under ``surge/``), or None
            (default); ignored when ``tensorboard`` is not installed.

    Raises:
        SurgeError: ``path`` does not end in ``.jsonl`` or ``.csv``.
        OutputError: ``path`` (or its folder) cannot be written.
    """

    def __init__(self, path: str | Path | None = None, *, tensorboard_dir: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        if self.path is not None:
            if self.path.suffix not in (".jsonl", ".csv"):
                raise SurgeError(f"log_path must end in .jsonl or .csv, got {str(self.path)!r}")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text("" if self.path.suffix == ".jsonl" else ",".join(SERIES_FIELDS) + "\n")
            except OSError as exc:
                raise OutputError(f"log_path {str(self.path)!r} cannot be written: {exc.strerror or exc}") from None
        self.writer = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: the file log is enough
                self.writer = None
            else:
                self.writer = SummaryWriter(str(tensorboard_dir))

    def write(self, row: dict) -> None:
        """Append one row to the file (a JSON line or a CSV row) and its finite scalars to TensorBoard.

        Args:
            row: dict with (some of) the keys of ``SERIES_FIELDS``, as :func:`record_of` makes it; missing or
                None values are empty CSV cells; ``row["step"]`` is needed when TensorBoard is on.
        """
        if self.path is not None:
            with self.path.open("a", newline="") as f:
                if self.path.suffix == ".jsonl":
                    f.write(json.dumps(row) + "\n")
                else:
                    csv.writer(f).writerow(["" if row.get(k) is None else row.get(k) for k in SERIES_FIELDS])
        if self.writer is not None:
            for key in (
                "b_simple",
                "b_noise",
                "eps_max",
                "smooth_b_simple",
                "smooth_b_noise",
                "smooth_eps_max",
                "validity_batch_size",
            ):
                value = row.get(key)
                if value is not None and math.isfinite(value):
                    self.writer.add_scalar(f"surge/{key}", value, row["step"])

    def close(self) -> None:
        """Close the TensorBoard writer, if any (the file is opened and closed at each write)."""
        if self.writer is not None:
            self.writer.close()


def check_every(every) -> int:
    """Check a measurement interval K (measure every K steps).

    Args:
        every: int >= 1, steps between measurements.

    Returns:
        int: ``every``.

    Raises:
        SurgeTypeError: ``every`` is not an integer.
        SurgeError: ``every`` < 1.
    """
    return check_int(every, "every (measure every K steps)", minimum=1)


class NoiseMonitor:
    """Measure gradient noise every ``every`` steps of a plain PyTorch training loop.

    Args:
        model: the torch.nn.Module being trained (trainable parameters are those with ``requires_grad``).
        loss_fn: callable (outputs, targets) -> scalar mean loss.
        every: int >= 1, measure on every K-th call of :meth:`step`, starting with the first. The default
            (1000) keeps the cost near 5 % of training on the benchmark's CNN and GPT-2
            (benchmarks/monitor.py).
        hessian_every: int >= 0, compute the Hessian quantities (B_noise, eps_max, the validity batch size,
            the curves) on every H-th measurement, starting with the first (the others give B_simple only,
            from the gradients); 0: never. Default 4.
        batch_sizes: sequence of batch sizes (examples) for the model-based (Eq 9) and direct (Lemma 1)
            curves; None (default): no curves (cheaper), B_noise, eps_max, B_simple only.
        micro_batch_size: None (default): per-example gradients (vmap, falling back to per-example
            autograd); an int b: mean gradients of micro-batches of b examples.
        window: int >= 1, measurements pooled into the smoothed values (default 5).
        optimizer: a torch.optim.Adam / AdamW whose state gives the direct curve's update (else the sign),
            or None (default).
        log_path: str or Path of a ``.jsonl`` or ``.csv`` series file (rows: ``SERIES_FIELDS``;
            overwritten), or None (default): no file.
        tensorboard_dir: str or Path: scalars under ``surge/`` when ``tensorboard`` is installed; None
            (default): none.
        hessian_examples: int, examples of the batch used for the Hessian-vector products (the first ones),
            or None (default: all).
        seed: int >= 0, seed of the estimator; measurement j uses ``seed + j``.
        n_groups: int >= 3, as in :func:`surge.monitor.estimate_noise`, with a cheaper default (8).
        n_probes: int >= 2, as in :func:`surge.monitor.estimate_noise`, with a cheaper default (4).
        sketch_size: int >= 0, as in :func:`surge.monitor.estimate_noise`, with a cheaper default (2)
            (8 + 4 + 2 x 2 = 16 Hessian-vector products per measurement).
        **estimator_kwargs: passed to :func:`surge.monitor.estimate_noise` (``n_draws``, ``confidence``,
            ``validity_quantile``).

    Attributes:
        series: list of dict, one row per measurement (``SERIES_FIELDS``).
        estimates: list of (step, NoiseEstimate), one per measurement.
        calls: int, calls of :meth:`step` so far.
        seconds: float, wall-clock seconds spent measuring.

    Raises:
        SurgeError: ``model`` not a Module or without trainable parameters; ``loss_fn`` not callable;
            ``every``, ``window`` or ``hessian_every`` out of range; ``log_path`` not ``.jsonl`` / ``.csv``.
        SurgeTypeError: ``every`` not an integer.
        OutputError: ``log_path`` cannot be written.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable,
        every: int = 1000,
        *,
        hessian_every: int = 4,
        batch_sizes=None,
        micro_batch_size: int | None = None,
        window: int = 5,
        optimizer=None,
        log_path: str | Path | None = None,
        tensorboard_dir: str | Path | None = None,
        hessian_examples: int | None = None,
        seed: int = 0,
        n_groups: int = 8,
        n_probes: int = 4,
        sketch_size: int = 2,
        **estimator_kwargs,
    ) -> None:
        trainable(model)  # no trainable parameters -> SurgeError now, not at the first measurement
        if not callable(loss_fn):
            raise SurgeError(f"loss_fn must be callable (outputs, targets) -> loss, got {type(loss_fn).__name__}")
        self.every = check_every(every)
        window = check_int(window, "window", minimum=1)
        self.model, self.loss_fn, self.window = model, loss_fn, window
        self.batch_sizes = batch_sizes
        self.micro_batch_size = micro_batch_size
        self.optimizer = optimizer
        self.hessian_examples = hessian_examples
        self.seed = seed
        self.hessian_every = check_int(hessian_every, "hessian_every", minimum=0)  # 0: never
        self.estimator_kwargs = {
            "n_groups": n_groups,
            "n_probes": n_probes,
            "sketch_size": sketch_size,
            **estimator_kwargs,
        }
        self.logger = SeriesLogger(log_path, tensorboard_dir=tensorboard_dir)
        self.series: list[dict] = []
        self.estimates: list[tuple[int, NoiseEstimate]] = []
        self.calls = 0
        self.seconds = 0.0

    def step(self, inputs: torch.Tensor, targets: torch.Tensor, *, step: int | None = None, loss=None) -> dict | None:
        """Count one training step; measure on (inputs, targets) when it is due. Returns the new row or None.

        Args:
            inputs: tensor of the step's batch inputs (B >= 2 examples along dim 0).
            targets: tensor of the step's batch targets (same B).
            step: int, the training step recorded in the row; None (default): the count of calls so far
                (0-based).
            loss: the step's training loss (float or 0-d tensor, nats), or None; recorded in the row.

        Returns:
            dict: the new series row (see :meth:`measure`) when a measurement was due (calls 0, K, 2K,
            ...), else None.

        Raises:
            SurgeError: as :meth:`measure`, when a measurement is due.
        """
        due = self.calls % self.every == 0
        at = self.calls if step is None else int(step)
        self.calls += 1
        if not due:
            return None
        return self.measure(inputs, targets, step=at, loss=loss)

    def measure(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        step: int | None = None,
        loss=None,
        batch_sizes=None,
        hessian: bool | None = None,
    ) -> dict:
        """Measure now on (inputs, targets); append and log a series row and return it.

        The model is in eval mode (dropout off) during the measurement and is put back in its mode after.

        Args:
            inputs: tensor of batch inputs (B >= 2 examples along dim 0).
            targets: tensor of batch targets (same B).
            step: int, the training step recorded in the row; None (default): the number of measurements
                so far.
            loss: the loss at this step (float or 0-d tensor, nats), or None; recorded in the row.
            batch_sizes: batch sizes (examples) of the curves for this measurement; None (default): the
                monitor's ``batch_sizes``.
            hessian: whether to compute the Hessian quantities; None (default): on every
                ``hessian_every``-th measurement, starting with the first, and whenever curves are asked
                for. False drops the curves.

        Returns:
            dict: the new series row (keys ``SERIES_FIELDS``, see :func:`record_of`), also appended to
            ``series`` and written to the log.

        Raises:
            SurgeError: from :func:`~surge.monitor.torch_grads.per_example_grads`,
                :func:`~surge.monitor.torch_grads.make_hvp` or :func:`surge.monitor.estimate_noise` (a bad
                batch, bad estimator options or ``batch_sizes``).
        """
        t0 = time.perf_counter()
        was_training = self.model.training
        self.model.eval()
        try:
            grads, b, _ = per_example_grads(
                self.model, self.loss_fn, inputs, targets, micro_batch_size=self.micro_batch_size
            )
            bs = self.batch_sizes if batch_sizes is None else batch_sizes
            if hessian is None:
                hessian = bs is not None or (self.hessian_every > 0 and len(self.estimates) % self.hessian_every == 0)
            k = len(inputs) if self.hessian_examples is None else min(len(inputs), int(self.hessian_examples))
            hvp = make_hvp(self.model, self.loss_fn, inputs[:k], targets[:k]) if hessian else None
            est = estimate_noise(
                grads,
                hvp,
                micro_batch_size=b,
                batch_sizes=bs if hessian else None,
                adam_state=adam_state_of(self.optimizer, self.model) if bs is not None and hessian else None,
                seed=self.seed + len(self.estimates),
                **self.estimator_kwargs,
            )
        finally:
            self.model.train(was_training)
        at = len(self.estimates) if step is None else int(step)
        self.estimates.append((at, est))
        recent = [e for _, e in self.estimates[-self.window :]]
        try:
            smooth = pool_estimates(recent)
        except SurgeError:  # none with finite components yet
            smooth = None
        seconds = time.perf_counter() - t0
        self.seconds += seconds
        loss_value = None if loss is None else float(loss.detach() if isinstance(loss, torch.Tensor) else loss)
        row = record_of(at, loss_value, est, smooth, seconds)
        self.series.append(row)
        self.logger.write(row)
        return row

    @property
    def latest(self) -> NoiseEstimate | None:
        """The last measurement's NoiseEstimate (None before the first)."""
        return self.estimates[-1][1] if self.estimates else None

    @property
    def smoothed(self) -> NoiseEstimate | None:
        """The last ``window`` measurements pooled; None before the first, or while none of them has a
        finite component (e.g. each had too few examples)."""
        recent = [e for _, e in self.estimates[-self.window :]]
        if not any(math.isfinite(v) for e in recent for v in e.components.values()):
            return None
        return pool_estimates(recent)

    def close(self) -> None:
        """Close the log's TensorBoard writer, if any."""
        self.logger.close()
