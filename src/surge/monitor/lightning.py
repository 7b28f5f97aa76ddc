"""A PyTorch Lightning ``Callback`` that measures gradient noise every K training steps (extra ``surge[lightning]``).

Example::

    import lightning as L
    from surge.monitor.lightning import NoiseMonitorCallback

    cb = NoiseMonitorCallback(loss_fn=torch.nn.functional.cross_entropy, every=1000, log_path="noise.jsonl")
    L.Trainer(max_steps=1000, callbacks=[cb]).fit(module, loader)
    cb.series[-1]["b_noise"], cb.monitor.latest.lr_at([64, 256])

The batch of each measured step is split by ``batch_to_xy`` (default: ``batch[0], batch[1]``) and
``loss_fn(module(x), y)`` must be the module's mean training loss. The values are also logged with
``module.log`` (``surge/b_noise``, ``surge/b_simple``, ``surge/eps_max`` and their smoothed versions) so
that any Lightning logger records them.
"""

from __future__ import annotations

import math
from typing import Any, Callable

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - the older package name
    try:
        from pytorch_lightning.callbacks import Callback
    except ImportError as exc:
        raise ImportError("surge.monitor.lightning needs PyTorch Lightning: pip install 'surge[lightning]'") from exc

from surge.errors import SurgeTypeError
from surge.monitor.loop import NoiseMonitor, check_every

__all__ = ["NoiseMonitorCallback"]


def _default_xy(batch):
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise SurgeTypeError(
        f"NoiseMonitorCallback: the batch is a {type(batch).__name__}; give batch_to_xy=lambda batch: (inputs, targets)"
    )


class NoiseMonitorCallback(Callback):
    """Lightning callback around :class:`surge.monitor.NoiseMonitor` (same keyword arguments).

    Measures at the end of the training batches where ``trainer.global_step - 1`` is a multiple of
    ``every`` (after optimizer steps 1, 1 + K, ...), on that batch, at the parameters after the step.

    Args:
        loss_fn: callable (outputs, targets) -> scalar mean loss; ``loss_fn(module(x), y)`` must be the
            module's mean training loss.
        every: int >= 1, K: optimizer steps between measurements (default 1000).
        batch_to_xy: callable batch -> (inputs, targets), or None (default: ``batch[0], batch[1]`` of a
            tuple or list batch).
        log_to_module: whether to log the finite values with ``pl_module.log_dict`` under ``surge/``
            (default True).
        **monitor_kwargs: keyword arguments of :class:`surge.monitor.NoiseMonitor` (not ``model``,
            ``loss_fn`` or ``every``).

    Raises:
        SurgeTypeError: ``every`` is not an integer.
        SurgeError: ``every`` < 1.
    """

    def __init__(
        self,
        loss_fn: Callable,
        every: int = 1000,
        *,
        batch_to_xy: Callable | None = None,
        log_to_module: bool = True,
        **monitor_kwargs: Any,
    ) -> None:
        super().__init__()
        self.loss_fn = loss_fn
        self.every = check_every(every)
        self.batch_to_xy = batch_to_xy or _default_xy
        self.log_to_module = log_to_module
        self.monitor_kwargs = monitor_kwargs
        self.monitor: NoiseMonitor | None = None
        self._measured_step = -1  # with gradient accumulation, several batches end at one global_step

    @property
    def series(self) -> list[dict]:
        """The monitor's series rows (empty before the first measurement)."""
        return [] if self.monitor is None else self.monitor.series

    def on_train_start(self, trainer, pl_module) -> None:
        """Build the NoiseMonitor around ``pl_module`` (once).

        Args:
            trainer: the Lightning Trainer (unused).
            pl_module: the LightningModule being trained.

        Raises:
            SurgeError: as :class:`surge.monitor.NoiseMonitor` (no trainable parameters, a bad keyword
                argument value, an unwritable ``log_path``).
        """
        if self.monitor is None:
            self.monitor = NoiseMonitor(pl_module, self.loss_fn, self.every, **self.monitor_kwargs)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Measure on this batch when ``trainer.global_step - 1`` is a multiple of ``every``.

        Once per optimizer step: with gradient accumulation (``accumulate_grad_batches > 1``) only the first
        batch that ends at a given ``global_step`` is measured.

        Args:
            trainer: the Lightning Trainer (``global_step``: optimizer steps taken).
            pl_module: the LightningModule being trained; also receives the values by ``log_dict``.
            outputs: the training step's output (a dict with ``"loss"``, or the loss tensor), recorded as
                the row's loss.
            batch: the training batch, split by ``batch_to_xy``.
            batch_idx: int, the batch's index in the epoch (unused).

        Raises:
            SurgeTypeError: the default ``batch_to_xy`` got a batch that is not a tuple or list of >= 2.
            SurgeError: as :meth:`surge.monitor.NoiseMonitor.measure`.
        """
        if self.monitor is None:
            self.on_train_start(trainer, pl_module)
        step = trainer.global_step
        if (step - 1) % self.every != 0 or step == self._measured_step:  # global_step: optimizer steps taken
            return
        self._measured_step = step
        x, y = self.batch_to_xy(batch)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        row = self.monitor.measure(x, y, step=step, loss=loss)
        if self.log_to_module:
            values = {
                f"surge/{k}": row[k]
                for k in ("b_noise", "b_simple", "eps_max", "smooth_b_noise", "smooth_b_simple")
                if row.get(k) is not None and math.isfinite(row[k])
            }
            if values:
                pl_module.log_dict(values, on_step=True, on_epoch=False)

    def on_train_end(self, trainer, pl_module) -> None:
        """Close the monitor's log (its TensorBoard writer).

        Args:
            trainer: the Lightning Trainer (unused).
            pl_module: the LightningModule (unused).
        """
        if self.monitor is not None:
            self.monitor.close()
