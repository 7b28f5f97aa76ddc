"""Trainers: many trials of one model and batch size, as stacked ("lane") state.

A :class:`Lanes` holds the state of L trials: flat parameters ``[L, P]``, the functional optimizer's
state (whose per-lane step counts are the lanes' positions in their data streams), per-lane buffers,
and each lane's trial index, seed and learning rate. Two runners advance and measure lanes:

- :class:`LockstepRunner`: one ``torch.func.vmap`` of ``grad_and_value`` over ``functional_call`` on a
  ``"meta"`` copy of the model; all lanes take a step in one call. BatchNorm's running statistics go
  through the ``vmap`` as per-lane buffers and come back updated (other buffers and dropout: refused).
- :class:`LoopRunner`: a plain loop, one ordinary forward/backward per lane. It takes any model,
  including ones with buffers or dropout that vmap cannot batch, and is the reference.

Both update parameters with the same functional optimizer (:mod:`surge.engine.optim`).

Lockstep facts measured on this CPU (torch 2.14): a lane's numbers are bitwise independent of which
other lanes share its ``vmap`` and of the thread count, as long as at least 2 lanes are batched (a
``vmap`` over one model takes a different kernel path); so the runner never runs fewer than 2 lanes,
duplicating a lone lane. That makes a trial's trajectory independent of how trials are split into
chunks, and a replay of a few trials (the protocol's bisection) equal to the main run bit for bit.

Why one module of ~460 lines: the two runners (lockstep and loop) share the lane state and the probe; about
230 lines are code, the rest docstrings.
"""

from __future__ import annotations

import abc
import copy
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap
from torch.utils import _pytree as pytree

from surge._validation import check_choice
from surge.engine.optim import FunctionalOptimizer, cat_states, select_state
from surge.errors import SurgeError, SurgeTypeError
from surge.records import DTYPES
from surge.workloads import Workload

TORCH_DTYPES = {name: getattr(torch, name) for name in DTYPES}  # the names of surge.records.DTYPES


def torch_dtype(name: object) -> torch.dtype:
    """The torch dtype of a training dtype's name.

    Args:
        name: one of :data:`surge.records.DTYPES` (``"float32"``, ``"float64"``).

    Returns:
        The ``torch.dtype``.

    Raises:
        SurgeError: ``name`` is not one of ``DTYPES`` (the message lists them).
    """
    return TORCH_DTYPES[check_choice(name, "dtype", DTYPES)]


BATCHNORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def lockstep_supported(model: nn.Module) -> tuple[bool, str]:
    """Whether the lockstep runner can batch ``model``, and if not, why.

    Buffers are allowed only as BatchNorm running statistics (kept per lane) with a fixed momentum:
    ``momentum=None`` turns ``num_batches_tracked`` into a Python number, which vmap cannot batch.
    Dropout with p > 0 and parameters shared between modules (tied weights) are refused too.

    Args:
        model: the model to check (not modified).

    Returns:
        A tuple ``(ok, why)``: ``(True, "")`` when it can, else ``(False, reason)`` with a one-phrase reason.
    """
    for name, m in model.named_modules():
        own = [b for b, _ in m.named_buffers(recurse=False)]
        if own and not (isinstance(m, nn.modules.batchnorm._BatchNorm) and set(own) <= set(BATCHNORM_BUFFERS)):
            where = f"{name}.{own[0]}" if name else own[0]
            return False, f"the model has buffers other than BatchNorm running statistics ({where!r})"
        if own and m.momentum is None:
            return False, f"BatchNorm {name!r} has momentum=None (a cumulative average), which vmap cannot batch"
    for m in model.modules():
        if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)) and m.p > 0:
            return False, "the model uses dropout"
    if sum(1 for _ in model.named_parameters(remove_duplicate=False)) != sum(1 for _ in model.parameters()):
        # e.g. GPT2LMHeadModel's lm_head.weight is wte.weight: the "meta" copy unties it (garbage logits)
        return False, "the model shares a parameter between modules (tied weights)"
    return True, ""


class ModelLayout:
    """Where each named parameter sits in the flat parameter vector of one trial.

    Args:
        model: the model whose parameters (in ``named_parameters()`` order) and buffers define the layout.

    Attributes:
        names: the parameter names, in flat order.
        shapes: each parameter's shape.
        numels: each parameter's number of elements.
        size: the flat vector's length P (the model's parameter count).
        buffer_names: the model's buffer names (``named_buffers()`` order).
    """

    def __init__(self, model: nn.Module) -> None:
        self.names: list[str] = []
        self.shapes: list[torch.Size] = []
        self.numels: list[int] = []
        for name, p in model.named_parameters():
            self.names.append(name)
            self.shapes.append(p.shape)
            self.numels.append(p.numel())
        self.size = sum(self.numels)
        self.buffer_names = [name for name, _ in model.named_buffers()]

    def flatten(self, model: nn.Module) -> torch.Tensor:
        """The parameters of ``model`` as one flat vector, in the layout's order.

        Args:
            model: a model with this layout's parameter names and shapes.

        Returns:
            A new 1-D tensor ``[P]`` (detached) of the model's dtype and device.
        """
        params = dict(model.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """The named parameters in a flat vector, as views (writes to them write ``flat``).

        Args:
            flat: a tensor ``[P]`` in this layout.

        Returns:
            A dict: parameter name -> a view of ``flat`` of that parameter's shape.
        """
        return {n: piece.view(s) for n, piece, s in zip(self.names, flat.split(self.numels), self.shapes)}


@dataclass
class Lanes:
    """State of L trials, one per lane (see the module docstring).

    Attributes:
        trial: each lane's trial index in its group.
        seed: each lane's seed (initial weights and data order).
        lr: each lane's learning rate.
        params: flat parameters, a tensor ``[L, P]``.
        opt: the optimizer state NamedTuple (:mod:`surge.engine.optim`); ``opt.step[i]`` = steps lane i has
            taken (its position in its data stream).
        buffers: the model's buffers per lane, name -> tensor ``[L, ...]``.
    """

    trial: list[int]  # index of the trial in its group
    seed: list[int]
    lr: list[float]
    params: torch.Tensor  # [L, P]
    opt: Any  # optimizer state NamedTuple; opt.step[i] = steps lane i has taken
    buffers: dict[str, torch.Tensor]  # name -> [L, ...]

    def __len__(self) -> int:
        return len(self.trial)

    @property
    def pos(self) -> tuple[int, ...]:
        """Each lane's position in its data stream: the steps it has taken (``opt.step``)."""
        return self.opt.step

    def select(self, rows: Sequence[int]) -> "Lanes":
        """A copy of the lanes ``rows`` in that order.

        Args:
            rows: lane indices in 0..L-1; repeats allowed.

        Returns:
            New Lanes of ``len(rows)`` lanes (tensors copied by ``index_select``).
        """
        rows = list(rows)
        idx = torch.tensor(rows, dtype=torch.long, device=self.params.device)
        return Lanes(
            trial=[self.trial[i] for i in rows],
            seed=[self.seed[i] for i in rows],
            lr=[self.lr[i] for i in rows],
            params=self.params.index_select(0, idx),
            opt=select_state(self.opt, idx),
            buffers={k: v.index_select(0, idx) for k, v in self.buffers.items()},
        )

    def clone(self) -> "Lanes":
        """A copy of all the lanes.

        Returns:
            New Lanes with copies of every tensor.
        """
        return self.select(range(len(self)))

    @staticmethod
    def cat(parts: Sequence["Lanes"]) -> "Lanes":
        """The lanes of ``parts`` one after the other.

        Args:
            parts: a non-empty sequence of Lanes of one model and optimizer.

        Returns:
            New Lanes holding every part's lanes, in order (tensors concatenated along dimension 0).
        """
        return Lanes(
            trial=[t for p in parts for t in p.trial],
            seed=[s for p in parts for s in p.seed],
            lr=[r for p in parts for r in p.lr],
            params=torch.cat([p.params for p in parts], 0),
            opt=cat_states([p.opt for p in parts]),
            buffers={k: torch.cat([p.buffers[k] for p in parts], 0) for k in parts[0].buffers},
        )


def _seeded_model(workload: Workload, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = workload.make_model()
    if not isinstance(model, nn.Module):
        raise SurgeTypeError(
            f"workload {workload.name!r}: make_model() returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


class _Runner(abc.ABC):
    strategy = ""

    def __init__(
        self,
        workload: Workload,
        optimizer: FunctionalOptimizer,
        *,
        device: str,
        dtype: str,
        probe_examples: int | None = None,
    ) -> None:
        self.workload = workload
        self.optimizer = optimizer
        self.device = torch.device(device)
        self.dtype = torch_dtype(dtype)
        template = _seeded_model(workload, 0)
        self.layout = ModelLayout(template)
        self.template = template
        self.loss_fn = workload.loss_fn
        self.probe_x = self._cast_inputs(workload.probe_inputs[:probe_examples])
        self.probe_y = self._cast_targets(workload.probe_targets[:probe_examples])
        self.module = copy.deepcopy(template).to(device=self.device, dtype=self.dtype)
        named = dict(self.module.named_parameters())
        self._params = [named[n] for n in self.layout.names]
        self._buffer_slots = []
        for name in self.layout.buffer_names:
            owner_name, _, short = name.rpartition(".")
            owner = self.module.get_submodule(owner_name) if owner_name else self.module
            self._buffer_slots.append((owner, short, name))
        self._bound: tuple = (None, -1)

    # -- data ---------------------------------------------------------------------------------------

    def _cast_inputs(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        return x.to(self.dtype) if x.is_floating_point() else x

    def _cast_targets(self, y: torch.Tensor) -> torch.Tensor:
        y = y.to(self.device)
        return y.to(self.dtype) if y.is_floating_point() else y

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets ``[L, B, ...]`` for the training indices ``index`` ``[L, B]``.

        Args:
            index: int64 tensor ``[L, B]`` of training-example indices (one row per lane).

        Returns:
            A tuple ``(x, y)`` of the training inputs and targets at ``index``, on the runner's device,
            floating-point ones cast to its dtype.
        """
        x = self.workload.train_inputs[index]
        y = self.workload.train_targets[index]
        return self._cast_inputs(x), self._cast_targets(y)

    # -- state --------------------------------------------------------------------------------------

    def init_lanes(self, trials: Sequence[tuple[int, int, float]]) -> Lanes:
        """Fresh lanes for ``(trial index, seed, lr)``; lanes of equal seed start from equal weights.

        Args:
            trials: one ``(trial index, seed, learning rate)`` per lane.

        Returns:
            Lanes with each seed's initial weights and buffers and the optimizer's zero state.

        Raises:
            SurgeTypeError: the workload's ``make_model()`` does not return a ``torch.nn.Module``.
        """
        flat_by_seed: dict[int, torch.Tensor] = {}
        bufs_by_seed: dict[int, dict[str, torch.Tensor]] = {}
        for _, seed, _ in trials:
            if seed not in flat_by_seed:
                model = _seeded_model(self.workload, seed).to(device=self.device, dtype=self.dtype)
                flat_by_seed[seed] = self.layout.flatten(model)
                bufs_by_seed[seed] = {n: b.detach().clone() for n, b in model.named_buffers()}
        params = torch.stack([flat_by_seed[s] for _, s, _ in trials]).contiguous()
        buffers = {
            n: torch.stack([bufs_by_seed[s][n] for _, s, _ in trials]).contiguous() for n in self.layout.buffer_names
        }
        return Lanes(
            trial=[t for t, _, _ in trials],
            seed=[s for _, s, _ in trials],
            lr=[float(r) for _, _, r in trials],
            params=params,
            opt=self.optimizer.init(params),
            buffers=buffers,
        )

    @abc.abstractmethod
    def step(self, lanes: Lanes, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step for every lane on its batch ``x[i], y[i]``; returns the training losses.

        Args:
            lanes: the lanes; their parameters, buffers and optimizer state are updated in place.
            x: inputs ``[L, B, ...]``.
            y: targets ``[L, B, ...]``.

        Returns:
            A float64 CPU tensor ``[L]``: each lane's mean training loss on its batch, before the step.
        """

    def _bind(self, lanes: Lanes, i: int) -> None:
        """Point the module's parameters (and buffers) at lane ``i``'s rows (views: updates write through)."""
        if self._bound[0] is lanes.params and self._bound[1] == i and not self._buffer_slots:
            return  # still bound (the reference held here keeps the tensor, so ``is`` is exact)
        for p, view in zip(self._params, self.layout.unflatten(lanes.params[i]).values()):
            p.data = view
        for owner, short, name in self._buffer_slots:
            owner._buffers[short] = lanes.buffers[name][i]
        self._bound = (lanes.params, i)

    def probe(self, lanes: Lanes) -> torch.Tensor:
        """Mean probe loss of each lane, by a plain forward pass per lane (both runners).

        Measured: 5x cheaper than a vmapped forward of the probe set, and the same bits whichever
        runner trained the lane. The module runs in eval mode, in chunks of ``workload.probe_chunk``.

        Args:
            lanes: the lanes to measure (not changed).

        Returns:
            A float64 tensor ``[L]``: each lane's mean loss over the probe examples, in nats for the
            cross-entropy workloads.
        """
        out = torch.empty(len(lanes), dtype=torch.float64)
        count = len(self.probe_x)
        self.module.eval()
        with torch.no_grad():
            for i in range(len(lanes)):
                self._bind(lanes, i)
                total = 0.0
                for start in range(0, count, self.workload.probe_chunk):
                    xs = self.probe_x[start : start + self.workload.probe_chunk]
                    ys = self.probe_y[start : start + self.workload.probe_chunk]
                    total += float(self.loss_fn(self.module(xs), ys).to(torch.float64)) * len(xs)
                out[i] = total / count
        self.module.train()
        return out


class LockstepRunner(_Runner):
    """All lanes in one vmapped call (see the module docstring).

    Args:
        workload: the workload to train.
        optimizer: the functional optimizer every lane uses.
        **kw: ``device`` (``"cpu"`` or ``"cuda[:i]"``), ``dtype`` (one of ``DTYPES``) and
            ``probe_examples`` (the first this-many probe examples; None: all).

    Raises:
        SurgeError: the model cannot be vmapped (see :func:`lockstep_supported`).
    """

    strategy = "lockstep"

    def __init__(self, workload: Workload, optimizer: FunctionalOptimizer, **kw) -> None:
        super().__init__(workload, optimizer, **kw)
        ok, why = lockstep_supported(self.template)
        if not ok:
            raise SurgeError(f"strategy 'lockstep' cannot run workload {workload.name!r}: {why}; use strategy 'loop'")
        self.base = copy.deepcopy(self.template).to("meta")
        layout, base, loss_fn = self.layout, self.base, self.loss_fn

        def loss(flat: torch.Tensor, buffers: dict, x: torch.Tensor, y: torch.Tensor):
            # BatchNorm updates its running statistics in place: on this lane's copies, returned as aux
            buffers = {k: v.clone() for k, v in buffers.items()}
            out = functional_call(base, (layout.unflatten(flat), buffers), (x,))
            return loss_fn(out, y), buffers

        self._grad = vmap(grad_and_value(loss, has_aux=True), in_dims=(0, 0, 0, 0))

    @staticmethod
    def _pad(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t, t], 0) if t.shape[0] == 1 else t

    def step(self, lanes: Lanes, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step for every lane in one vmapped call (a lone lane is run twice).

        Args:
            lanes: the lanes; their parameters, buffers and optimizer state are updated in place.
            x: inputs ``[L, B, ...]``.
            y: targets ``[L, B, ...]``.

        Returns:
            A float64 CPU tensor ``[L]``: each lane's mean training loss on its batch, before the step.
        """
        n = len(lanes)
        self.base.train()
        buffers = {k: self._pad(v) for k, v in lanes.buffers.items()}
        grads, (losses, buffers) = self._grad(self._pad(lanes.params), buffers, self._pad(x), self._pad(y))
        grads, losses = grads[:n], losses[:n]
        for k, v in buffers.items():
            lanes.buffers[k].copy_(v[:n])
        lanes.opt = self.optimizer.update_(lanes.params, grads, lanes.opt, lanes.lr)
        return losses.detach().to("cpu", torch.float64)


class LoopRunner(_Runner):
    """One ordinary forward/backward per lane, on one module whose tensors are rebound to each lane.

    Args:
        workload: the workload to train.
        optimizer: the functional optimizer every lane uses.
        device: ``"cpu"`` or ``"cuda[:i]"``.
        dtype: the training dtype, one of ``DTYPES``.
        probe_examples: measure on the first this-many probe examples; None: all.
    """

    strategy = "loop"

    def step(self, lanes: Lanes, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step for every lane, one forward/backward per lane.

        Args:
            lanes: the lanes; their parameters, buffers and optimizer state are updated in place.
            x: inputs ``[L, B, ...]``.
            y: targets ``[L, B, ...]``.

        Returns:
            A float64 CPU tensor ``[L]``: each lane's mean training loss on its batch, before the step.
        """
        losses = torch.empty(len(lanes), dtype=torch.float64)
        steps = list(lanes.opt.step)
        self.module.train()
        for i in range(len(lanes)):
            self._bind(lanes, i)
            loss = self.loss_fn(self.module(x[i]), y[i])
            grads = torch.autograd.grad(loss, self._params)
            flat = torch.cat([g.reshape(-1) for g in grads])[None]
            lane_state = lanes.opt if len(lanes) == 1 else _lane_view(lanes.opt, i)
            new = self.optimizer.update_(lanes.params[i : i + 1], flat, lane_state, [lanes.lr[i]])
            steps[i] = new.step[0]
            losses[i] = float(loss.detach())
        lanes.opt = lanes.opt._replace(step=tuple(steps))
        return losses


def _lane_view(state: Any, i: int) -> Any:
    """The optimizer state of lane ``i`` as views (so an in-place update writes through)."""
    fields = {}
    for key, value in state._asdict().items():
        if key == "step":
            fields[key] = (value[i],)
        else:
            fields[key] = pytree.tree_map(lambda t: t[i : i + 1], value)
    return type(state)(**fields)


RUNNERS = {"lockstep": LockstepRunner, "loop": LoopRunner}
