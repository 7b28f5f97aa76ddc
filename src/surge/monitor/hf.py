"""A Hugging Face ``transformers`` ``TrainerCallback`` that measures gradient noise every K steps (extra ``surge[hf]``).

Example::

    from transformers import Trainer
    from surge.monitor.hf import NoiseMonitorHFCallback

    cb = NoiseMonitorHFCallback(every=1000, log_path="noise.jsonl")
    Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb]).train()
    cb.series[-1]["b_noise"]

HF callbacks do not see the step's batch, so each measurement draws the next batch of the Trainer's own
training dataloader (same distribution, same batch size) and measures at the parameters after the step.
The loss is the model's own ``outputs.loss`` on that batch (a dict with ``labels``), so no loss function
is needed; per-example gradients go through torch.func where the model allows it, else per-example
autograd.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover
    raise ImportError("surge.monitor.hf needs transformers: pip install 'surge[hf]'") from exc

from surge.monitor.loop import NoiseMonitor, check_every

__all__ = ["NoiseMonitorHFCallback", "BatchDictModel"]


class BatchDictModel(nn.Module):
    """Adapter: ``forward(index)`` runs ``model(**{k: batch[k][index]})`` and returns its ``loss``.

    The examples of a dict batch are then addressed by an index tensor, which per-example gradients
    (vmap over the index) and Hessian-vector products can take like any input tensor.

    Args:
        model: a transformers model whose output has a ``loss`` when called with the batch (labels in it).

    Attributes:
        batch: dict name -> tensor (examples along dim 0), set before each measurement.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.batch: dict[str, torch.Tensor] = {}

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        """The model's mean loss on the examples ``index`` of ``batch``.

        Args:
            index: integer tensor (k,) of example indices into the tensors of ``batch``.

        Returns:
            torch.Tensor: the scalar ``loss`` of the model's output on those examples (nats).
        """
        return self.model(**{k: v[index] for k, v in self.batch.items()}).loss


def _loss_is_output(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return outputs


class NoiseMonitorHFCallback(TrainerCallback):
    """transformers callback around :class:`surge.monitor.NoiseMonitor` (same keyword arguments).

    Measures after optimizer steps 1, 1 + K, 1 + 2K, ... (``state.global_step``), on the next batch of the
    training dataloader (a separate iterator over it, restarted when exhausted). Torch's random state is
    restored after each measurement, so the training itself is the same bits as without the callback.

    Args:
        every: int >= 1, K: optimizer steps between measurements (default 1000).
        **monitor_kwargs: keyword arguments of :class:`surge.monitor.NoiseMonitor` (not ``model``,
            ``loss_fn`` or ``every``); the monitor is built at the first measurement.

    Raises:
        SurgeTypeError: ``every`` is not an integer.
        SurgeError: ``every`` < 1.
    """

    def __init__(self, every: int = 1000, **monitor_kwargs: Any) -> None:
        self.every = check_every(every)
        self.monitor_kwargs = monitor_kwargs
        self.monitor: NoiseMonitor | None = None
        self.adapter: BatchDictModel | None = None
        self._iter = None

    @property
    def series(self) -> list[dict]:
        """The monitor's series rows (empty before the first measurement)."""
        return [] if self.monitor is None else self.monitor.series

    def _next_batch(self, dataloader) -> dict:
        for _ in range(2):
            if self._iter is None:
                self._iter = iter(dataloader)
            try:
                return next(self._iter)
            except StopIteration:
                self._iter = None
        raise RuntimeError("the training dataloader yields no batches")

    def on_step_end(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        """Measure after the step when ``state.global_step - 1`` is a multiple of ``every``.

        The series row records ``state.global_step`` and the last logged training loss, if any.

        Args:
            args: the Trainer's ``TrainingArguments`` (unused).
            state: the Trainer's ``TrainerState`` (``global_step``, ``log_history``).
            control: the Trainer's ``TrainerControl``, returned unchanged.
            model: the model being trained; None: no measurement.
            train_dataloader: the Trainer's training dataloader (dict batches); None: no measurement.
            **kwargs: other callback arguments (unused).

        Returns:
            ``control``, unchanged.

        Raises:
            RuntimeError: the training dataloader yields no batches.
            SurgeError: as :meth:`surge.monitor.NoiseMonitor.measure`, or a bad ``monitor_kwargs``.
        """
        if model is None or train_dataloader is None or (state.global_step - 1) % self.every != 0:
            return control
        if self.monitor is None:
            self.adapter = BatchDictModel(model)
            self.monitor = NoiseMonitor(self.adapter, _loss_is_output, self.every, **self.monitor_kwargs)
        device = next(model.parameters()).device
        # a new iterator over the dataloader draws its seed from torch's global generator: without the fork,
        # training after a measurement (its shuffles, its dropout) would differ from training without the callback
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            batch = {
                k: v.to(device) for k, v in self._next_batch(train_dataloader).items() if isinstance(v, torch.Tensor)
            }
            self.adapter.batch = batch
            n = len(next(iter(batch.values())))
            index = torch.arange(n, device=device)
            loss = state.log_history[-1].get("loss") if state.log_history else None
            self.monitor.measure(index, index, step=state.global_step, loss=loss)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        """Close the monitor's log (its TensorBoard writer).

        Args:
            args: the Trainer's ``TrainingArguments`` (unused).
            state: the Trainer's ``TrainerState`` (unused).
            control: the Trainer's ``TrainerControl``, returned unchanged.
            **kwargs: other callback arguments (unused).

        Returns:
            ``control``, unchanged.
        """
        if self.monitor is not None:
            self.monitor.close()
        return control
