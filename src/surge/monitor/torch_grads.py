"""Per-example gradients and Hessian-vector products of a PyTorch model, flattened for the estimators.

- :func:`per_example_grads`: torch.func ``vmap(grad(...))`` over the examples of a batch (one row per
  example), or, where the model does not allow it (ops without a batching rule, in-place buffers), plain
  autograd over micro-batches (one row per micro-batch mean gradient).
- :func:`make_hvp`: v -> H v for the Hessian H of the mean loss over a batch, by forward-over-reverse
  (``torch.func.jvp`` of ``grad``), ``vmap``-ed over blocks of vectors; double backward where forward-mode
  AD is not implemented.

Parameters are the model's trainable ones (``requires_grad``) in ``model.named_parameters()`` order; a
flat vector concatenates them. The estimators get float64 NumPy arrays.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from surge._validation import check_int
from surge.errors import SurgeError


def _math_attention():
    """Scaled-dot-product attention on its math kernel: the fused CPU/GPU kernels implement neither
    forward-mode AD (jvp) nor double backward, which Hessian-vector products need."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel([SDPBackend.MATH])
    except ImportError:  # pragma: no cover - older torch
        import contextlib

        return contextlib.nullcontext()


__all__ = ["trainable", "per_example_grads", "make_hvp", "flatten", "HVP"]


def trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters by name; SurgeError if there are none.

    Args:
        model: the torch.nn.Module whose parameters with ``requires_grad`` are wanted.

    Returns:
        dict name -> parameter tensor, in ``model.named_parameters()`` order, trainable ones only.

    Raises:
        SurgeError: ``model`` is not a torch.nn.Module, or it has no parameter with ``requires_grad``.
    """
    if not isinstance(model, nn.Module):
        raise SurgeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = {k: v for k, v in model.named_parameters() if v.requires_grad}
    if not params:
        raise SurgeError(
            f"model {type(model).__name__} has no trainable parameters (none with requires_grad=True): nothing to measure"
        )
    return params


def flatten(tensors: dict[str, torch.Tensor], names: list[str], lead: int = 0) -> torch.Tensor:
    """Concatenate tensors (each with ``lead`` leading batch dims kept) into (..., n).

    Args:
        tensors: dict name -> tensor; all share the same ``lead`` leading dimensions.
        names: the keys of ``tensors`` to concatenate, in this order.
        lead: int >= 0, leading (batch) dimensions kept as they are (default 0: flatten everything).

    Returns:
        torch.Tensor of shape (*lead dims, n), n the total number of elements per leading index.
    """
    return torch.cat([tensors[k].reshape(*tensors[k].shape[:lead], -1) for k in names], dim=-1)


def _unflatten(flat: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for k, v in like.items():
        out[k] = flat[..., start : start + v.numel()].reshape(*flat.shape[:-1], *v.shape)
        start += v.numel()
    return out


def _check_batch(inputs, targets) -> int:
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise SurgeError(
            f"inputs and targets must be torch tensors, got {type(inputs).__name__} and {type(targets).__name__}"
        )
    if len(inputs) != len(targets):
        raise SurgeError(f"inputs and targets must have the same length, got {len(inputs)} and {len(targets)}")
    if len(inputs) < 2:
        raise SurgeError(f"a measurement needs a batch of at least 2 examples (no variance in one), got {len(inputs)}")
    return len(inputs)


def per_example_grads(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    micro_batch_size: int | None = None,
    chunk: int | None = None,
) -> tuple[torch.Tensor, int, str]:
    """Gradients of ``loss_fn(model(x), y)`` per example (or per micro-batch) at the current parameters.

    Args:
        model: the torch.nn.Module, evaluated as it is (call ``model.eval()`` first to switch dropout off);
            its trainable parameters (``requires_grad``) are differentiated.
        loss_fn: callable (outputs, targets) -> scalar mean loss (e.g. nats per example).
        inputs: tensor with B >= 2 examples along dim 0.
        targets: tensor with the same B examples along dim 0.
        micro_batch_size: None (default): per example with vmap, falling back to micro-batches of 1 example
            by autograd when vmap fails (RuntimeError, NotImplementedError or ValueError). An int b >= 1:
            mean gradients of consecutive micro-batches of b examples by autograd (B // b >= 2 rows; the
            last B mod b examples are left out).
        chunk: examples per vmap call (memory bound), or None (default): as many as keep chunk x n below
            2^24 floats; at least 1.

    Returns:
        tuple ``(grads, micro_batch_size, method)``: grads, a detached tensor (rows, n) in the parameters'
        dtype (float32 for a float32 model) on the model's device, one row per example or micro-batch, in
        loss units per parameter unit; micro_batch_size, the examples per row (int); method, ``"vmap"``
        or ``"autograd"``.

    Raises:
        SurgeError: ``model`` not a Module or without trainable parameters; ``inputs`` / ``targets`` not
            tensors, of different lengths or with fewer than 2 examples; ``micro_batch_size`` < 1 or
            leaving fewer than 2 micro-batches. Errors of the model or ``loss_fn`` in the autograd path
            propagate.
    """
    params = trainable(model)
    names = list(params)
    n_ex = _check_batch(inputs, targets)
    detached = {k: v.detach() for k, v in params.items()}
    n = sum(v.numel() for v in params.values())
    chunk = max(1, min(n_ex, (1 << 24) // n)) if chunk is None else max(1, int(chunk))
    if micro_batch_size is None:

        def loss_one(p, x, y):
            out = functional_call(model, p, (x.unsqueeze(0),))
            return loss_fn(out, y.unsqueeze(0))

        g1 = vmap(grad(loss_one), in_dims=(None, 0, 0))
        try:
            with _math_attention():
                rows = [
                    flatten(g1(detached, inputs[i : i + chunk], targets[i : i + chunk]), names, lead=1)
                    for i in range(0, n_ex, chunk)
                ]
            return torch.cat(rows).detach(), 1, "vmap"
        except (RuntimeError, NotImplementedError, ValueError):
            micro_batch_size = 1
    b = check_int(micro_batch_size, "micro_batch_size", minimum=1)
    m = n_ex // b
    if m < 2:
        raise SurgeError(f"micro_batch_size={b} leaves {m} micro-batch(es) of a batch of {n_ex}; need at least 2")
    out = []
    plist = [params[k] for k in names]
    for j in range(m):
        loss = loss_fn(model(inputs[j * b : (j + 1) * b]), targets[j * b : (j + 1) * b])
        gs = torch.autograd.grad(loss, plist, allow_unused=True)
        out.append(torch.cat([(gg if gg is not None else torch.zeros_like(p)).reshape(-1) for gg, p in zip(gs, plist)]))
    return torch.stack(out).detach(), b, "autograd"


class HVP:
    """v -> H v for the Hessian of the mean loss on one batch; ``batched``: takes (k, n) float arrays.

    Forward-over-reverse (``torch.func.jvp`` of ``grad``) vmapped over ``block`` vectors at a time; if
    forward-mode AD is not implemented for an op of the model, double backward, one vector at a time.
    ``calls`` counts the Hessian-vector products done. Build it with :func:`make_hvp`.

    Args:
        model: the torch.nn.Module; the Hessian is taken at its trainable parameters (detached views of
            them, which share their storage: in-place updates are seen).
        loss_fn: callable (outputs, targets) -> scalar mean loss.
        inputs: tensor of the batch's inputs (examples along dim 0).
        targets: tensor of the batch's targets.
        block: vectors per vmapped jvp call, default 16; values < 1 count as 1.

    Attributes:
        n: int, the number of trainable parameters (length of a vector).
        calls: int, Hessian-vector products done so far.
        method: ``"jvp"`` (forward-over-reverse) or ``"double-backward"`` (after a fallback).
    """

    batched = True

    def __init__(self, model, loss_fn, inputs, targets, *, block: int = 16) -> None:
        self.params = {k: v.detach() for k, v in trainable(model).items()}
        self.names = list(self.params)
        self.model, self.loss_fn, self.inputs, self.targets = model, loss_fn, inputs, targets
        self.block = max(1, int(block))
        self.dtype = next(iter(self.params.values())).dtype
        self.device = next(iter(self.params.values())).device
        self.n = sum(v.numel() for v in self.params.values())
        self.calls = 0
        self.method = "jvp"

        def loss_all(p):
            return loss_fn(functional_call(model, p, (inputs,)), targets)

        grad_fn = grad(loss_all)

        def one(v):
            return jvp(grad_fn, (self.params,), (v,))[1]

        self._one = one
        self._many = vmap(one)

    def _double_backward(self, v: torch.Tensor) -> torch.Tensor:
        params = {k: p.clone().requires_grad_(True) for k, p in self.params.items()}
        loss = self.loss_fn(functional_call(self.model, params, (self.inputs,)), self.targets)
        gs = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        flat_g = torch.cat([g.reshape(-1) for g in gs])
        hv = torch.autograd.grad(flat_g @ v, list(params.values()), allow_unused=True)
        return torch.cat(
            [(h if h is not None else torch.zeros_like(p)).reshape(-1) for h, p in zip(hv, params.values())]
        )

    def torch_apply(self, vectors: torch.Tensor) -> torch.Tensor:
        """H applied to each row of a (k, n) tensor (model dtype/device); returns (k, n).

        Falls back for good to double backward (one vector at a time) when forward-mode AD fails;
        ``calls`` grows by k.

        Args:
            vectors: torch.Tensor (k, n) in the model's dtype and on its device, n the number of trainable
                parameters (flattened in ``named_parameters()`` order).

        Returns:
            torch.Tensor (k, n), detached: row j is H vectors[j], H the Hessian of the mean loss on the batch.
        """
        with _math_attention():
            return self._apply(vectors)

    def _apply(self, vectors: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, vectors.shape[0], self.block):
            blk = vectors[start : start + self.block]
            if self.method == "jvp":
                try:
                    tang = _unflatten(blk, self.params)
                    res = (
                        self._many(tang)
                        if blk.shape[0] > 1
                        else {k: v.unsqueeze(0) for k, v in self._one({k: t[0] for k, t in tang.items()}).items()}
                    )
                    out.append(flatten(res, self.names, lead=1).detach())
                    self.calls += blk.shape[0]
                    continue
                except (RuntimeError, NotImplementedError):
                    self.method = "double-backward"
            out.append(torch.stack([self._double_backward(v).detach() for v in blk]))
            self.calls += blk.shape[0]
        return torch.cat(out) if out else vectors.new_zeros((0, self.n))

    def __call__(self, v) -> np.ndarray:
        arr = np.asarray(v, dtype=np.float64)
        single = arr.ndim == 1
        t = torch.as_tensor(np.atleast_2d(arr), dtype=self.dtype, device=self.device)
        res = self.torch_apply(t).double().cpu().numpy()
        return res[0] if single else res


def make_hvp(model: nn.Module, loss_fn, inputs: torch.Tensor, targets: torch.Tensor, *, block: int = 16) -> HVP:
    """The Hessian-vector product of the mean ``loss_fn`` over (inputs, targets), for ``estimate_noise``.

    Args:
        model: the torch.nn.Module, at the parameters where the Hessian is taken (its trainable ones).
        loss_fn: callable (outputs, targets) -> scalar mean loss.
        inputs: tensor with B >= 2 examples along dim 0.
        targets: tensor with the same B examples along dim 0.
        block: vectors per vmapped jvp call (memory bound), default 16; values < 1 count as 1.

    Returns:
        HVP: a callable v -> H v on float64 NumPy arrays (n,) or (k, n) with ``batched = True``.

    Raises:
        SurgeError: ``inputs`` / ``targets`` not tensors, of different lengths or with fewer than 2
            examples; ``model`` not a Module or without trainable parameters.
    """
    _check_batch(inputs, targets)
    return HVP(model, loss_fn, inputs, targets, block=block)


def adam_state_of(optimizer, model: nn.Module) -> dict | None:
    """Flat Adam state (m, v, step, betas, eps) of a ``torch.optim.Adam``/``AdamW`` for the direct curve.

    None when the optimizer is not Adam-like or has no state yet (then the update is the sign anyway).

    Args:
        optimizer: a torch optimizer (Adam-like: a param group with ``betas`` and per-parameter
            ``exp_avg`` / ``exp_avg_sq`` state), or None.
        model: the torch.nn.Module it trains; its trainable parameters set the order of the flat vectors.

    Returns:
        dict ``{"m": (n,), "v": (n,), "step": int, "betas": (b1, b2), "eps": float}`` with float64 NumPy
        ``m`` and ``v`` (``estimate_noise``'s ``adam_state``), betas and eps of the first group that has
        betas; or None when ``optimizer`` is None, not Adam-like, or some trainable parameter has no
        state yet.

    Raises:
        SurgeError: ``model`` not a Module or without trainable parameters (when ``optimizer`` has state).
    """
    if optimizer is None or not hasattr(optimizer, "state"):
        return None
    params = list(trainable(model).values())
    group = next((g for g in optimizer.param_groups if "betas" in g), None)
    if group is None:
        return None
    ms, vs, step = [], [], 0
    for p in params:
        st = optimizer.state.get(p, {})
        if "exp_avg" not in st:
            return None
        ms.append(st["exp_avg"].detach().reshape(-1).double().cpu())
        vs.append(st["exp_avg_sq"].detach().reshape(-1).double().cpu())
        step = int(float(st.get("step", 0)))
    return {
        "m": torch.cat(ms).numpy(),
        "v": torch.cat(vs).numpy(),
        "step": step,
        "betas": tuple(group["betas"]),
        "eps": float(group.get("eps", 1e-8)),
    }
