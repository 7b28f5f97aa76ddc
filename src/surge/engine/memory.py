"""Device memory of one trial (lane): parameters, activations, and a measured lockstep step on CUDA.

Used by :mod:`surge.sweep.gpu_sizing` to choose how many lanes of a batch size train together on a
GPU. Two ways to get a lane's bytes:

- :func:`activation_bytes` (no GPU needed): the tensors autograd saves for one lane's backward pass at
  batch size B, counted with ``torch.autograd.graph.saved_tensors_hooks`` during a forward pass on the
  ``"meta"`` device (shapes only, nothing allocated), or on the CPU at a few examples scaled to B when
  the model does not run on "meta". Each storage is counted once and parameters are left out. The
  backward pass also holds an activation's gradient next to the saved tensors; two copies of the
  largest saved tensor are added for it.
- :func:`measure_lane_bytes` (CUDA): the peak allocated bytes of one lockstep step with 2 and with 4
  lanes; a lane costs half the difference (parameters, gradient, optimizer state and activations).
"""

from __future__ import annotations

import torch

from surge.engine.bisect import REPLAY_BYTES
from surge.engine.trainer import _seeded_model, torch_dtype
from surge.errors import SurgeError
from surge.workloads import Workload, get_workload

CONTEXT_BYTES = 512 * 2**20  # CUDA context, cuBLAS/cuDNN workspaces: counted once per group


def _load(workload: str | Workload, data_dir: str | None) -> Workload:
    return workload if isinstance(workload, Workload) else get_workload(workload, data_dir)


def _inputs(t: torch.Tensor, n: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    want = dtype if t.is_floating_point() else t.dtype
    if device == "meta":
        return torch.empty((n,) + tuple(t.shape[1:]), dtype=want, device="meta")
    return t[:n].to(want).clone()


def _storage_key(t: torch.Tensor):
    try:
        return t.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError):  # tensor subclasses without a storage
        return id(t)


def _saved_bytes(model: torch.nn.Module, wl: Workload, n: int, dtype: torch.dtype, device: str) -> tuple[int, int]:
    """(bytes of the distinct non-parameter tensors saved for backward, bytes of the largest one)."""
    params = {_storage_key(p) for p in model.parameters()}
    seen: dict = {}

    def pack(t: torch.Tensor):
        key = _storage_key(t)
        if key not in params:  # a storage counts once, by its largest saved view
            nbytes = t.numel() * t.element_size()
            try:
                nbytes = min(nbytes, t.untyped_storage().nbytes())
            except (RuntimeError, NotImplementedError):
                pass
            seen[key] = max(seen.get(key, 0), nbytes)
        return t

    x = _inputs(wl.train_inputs, n, dtype, device)
    y = _inputs(wl.train_targets, n, dtype, device)
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = wl.loss_fn(model(x), y)
    del loss
    return sum(seen.values()), max(seen.values(), default=0)


def activation_bytes(
    workload: str | Workload, batch_size: int, *, dtype: str = "float32", data_dir: str | None = None
) -> tuple[int, str]:
    """Bytes one lane's backward pass keeps at ``batch_size``, with headroom, and how they were found.

    The headroom: two copies of the largest saved tensor (the gradient held beside it).

    Args:
        workload: a :class:`~surge.workloads.Workload`, or the name :func:`surge.workloads.get_workload`
            takes.
        batch_size: the batch size B, in examples (>= 1; not checked).
        dtype: the training dtype, one of :data:`surge.records.DTYPES` (``"float32"``, ``"float64"``).
        data_dir: where a named workload finds its data; None: its default.

    Returns:
        A tuple ``(bytes, method)``; ``method`` is ``"meta"`` (exact shapes at B) or ``"cpu"`` (a
        forward pass of min(B, 4, training examples) examples on the CPU, scaled linearly to B).

    Raises:
        SurgeError: ``dtype`` is not one of ``DTYPES``; a named workload cannot be loaded.
    """
    wl = _load(workload, data_dir)
    dt = torch_dtype(dtype)
    try:
        model = _seeded_model(wl, 0).to(device="meta", dtype=dt)
        saved, largest = _saved_bytes(model, wl, batch_size, dt, "meta")
        method = "meta"
    except Exception:  # noqa: BLE001 - a model that does not run on "meta": a small real pass instead
        n = min(batch_size, 4, len(wl.train_inputs))
        model = _seeded_model(wl, 0).to(dtype=dt)
        saved, largest = _saved_bytes(model, wl, n, dt, "cpu")
        saved, largest = saved * batch_size // n, largest * batch_size // n
        method = "cpu"
    return int(saved + 2 * largest), method


def lane_facts(
    workload: str | Workload, batch_size: int, *, dtype: str = "float32", data_dir: str | None = None
) -> dict:
    """What :func:`surge.sweep.gpu_sizing.lane_memory` needs: parameter count and bytes, activation
    bytes at ``batch_size``, the bytes a group pays once and the replay batch width.

    ``fixed_bytes`` = the replay queue's cap (``surge.engine.bisect.REPLAY_BYTES``) + half of
    :func:`activation_bytes` at min(``workload.probe_chunk``, probe examples) examples (a probe forward
    pass) + ``CONTEXT_BYTES``.

    Args:
        workload: a :class:`~surge.workloads.Workload`, or the name :func:`surge.workloads.get_workload`
            takes.
        batch_size: the batch size B, in examples (>= 1; not checked).
        dtype: the training dtype, one of :data:`surge.records.DTYPES`.
        data_dir: where a named workload finds its data; None: its default.

    Returns:
        A dict of ``n_params`` (parameters of one model), ``dtype_bytes`` (bytes per element),
        ``activation_bytes`` and ``activation_method`` (from :func:`activation_bytes` at ``batch_size``),
        ``fixed_bytes`` (bytes, once per group) and ``replay_lanes`` (lanes of a replay batch, 1-16: the
        crossings, 3 x parameter bytes each, that fit under ``REPLAY_BYTES``, plus one).

    Raises:
        SurgeError: ``dtype`` is not one of ``DTYPES``; a named workload cannot be loaded.
    """
    wl = _load(workload, data_dir)
    dt = torch_dtype(dtype)
    model = _seeded_model(wl, 0)
    n_params = sum(p.numel() for p in model.parameters())
    dtype_bytes = torch.empty((), dtype=dt).element_size()
    act, method = activation_bytes(wl, batch_size, dtype=dtype)
    probe_act, _ = activation_bytes(wl, min(wl.probe_chunk, len(wl.probe_inputs)), dtype=dtype)
    crossing = 3 * n_params * dtype_bytes  # what the protocol counts per queued crossing
    replay_lanes = min(16, REPLAY_BYTES // max(1, crossing) + 1)
    return {
        "n_params": int(n_params),
        "dtype_bytes": int(dtype_bytes),
        "activation_bytes": int(act),
        "activation_method": method,
        "fixed_bytes": int(REPLAY_BYTES + probe_act // 2 + CONTEXT_BYTES),
        "replay_lanes": int(replay_lanes),
    }


def measure_lane_bytes(
    workload: str | Workload,
    batch_size: int,
    *,
    optimizer: str = "adam",
    dtype: str = "float32",
    data_dir: str | None = None,
    device: str = "cuda",
) -> int:
    """Bytes one lane of a lockstep step takes on ``device`` (CUDA): half the difference of the peak
    allocated memory of a step with 4 lanes and one with 2 (same batches; a fresh runner each).

    Args:
        workload: a :class:`~surge.workloads.Workload`, or the name :func:`surge.workloads.get_workload`
            takes.
        batch_size: the batch size B, in examples (>= 1; not checked).
        optimizer: the optimizer's name, one of :data:`surge.records.OPTIMIZERS` (default settings).
        dtype: the training dtype, one of :data:`surge.records.DTYPES`.
        data_dir: where a named workload finds its data; None: its default.
        device: the CUDA device, ``"cuda"`` or ``"cuda:i"``.

    Returns:
        Bytes per lane, an int >= 0 (parameters, gradient, optimizer state and activations).

    Raises:
        SurgeError: CUDA is not available or ``device`` is not a CUDA device; a named workload cannot be
            loaded; an unknown ``optimizer`` or ``dtype``; the model cannot be vmapped (lockstep).
    """
    from surge.engine.optim import make_optimizer
    from surge.engine.trainer import LockstepRunner

    if not torch.cuda.is_available() or torch.device(device).type != "cuda":
        raise SurgeError(
            f"measure_lane_bytes needs a CUDA device, got {device!r} (CUDA available: {torch.cuda.is_available()})"
        )
    wl = _load(workload, data_dir)
    peaks = {}
    for lanes in (2, 4):
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        runner = LockstepRunner(wl, make_optimizer(optimizer), device=device, dtype=dtype, probe_examples=1)
        state = runner.init_lanes([(i, 0, 1e-4) for i in range(lanes)])
        index = torch.arange(batch_size).remainder(wl.num_train).repeat(lanes, 1)
        x, y = runner.batch(index)
        runner.step(state, x, y)
        torch.cuda.synchronize(device)
        peaks[lanes] = torch.cuda.max_memory_allocated(device) - base
        del runner, state, x, y
    return int(max(0, peaks[4] - peaks[2]) // 2)
