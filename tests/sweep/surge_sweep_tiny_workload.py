"""A tiny user workload (``surge_sweep_tiny_workload:workload``) for end-to-end tests of the real engine.

A 2-layer MLP regressing a fixed random linear map of 256 synthetic inputs (MSE loss): it loads in
milliseconds, trains in milliseconds per step, and plain SGD with a large learning rate diverges.
"""

import torch
from torch import nn
from torch.nn import functional as F

from surge.workloads import Workload


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))


def workload() -> Workload:
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(256, 8, generator=g)
    w = torch.randn(8, 1, generator=g)
    y = x @ w + 0.1 * torch.randn(256, 1, generator=g)
    return Workload(
        name="tiny-mlp",
        make_model=_model,
        train_inputs=x,
        train_targets=y,
        probe_inputs=x[:64].contiguous(),
        probe_targets=y[:64].contiguous(),
        loss_fn=F.mse_loss,
        default_targets=(4.0, 2.0),
        extra_steps=3,
        description="tiny MLP regression (tests)",
    )


class _Refuses16(nn.Module):
    """The tiny MLP, except that a training batch of exactly 16 rows raises (a trial that fails)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _model()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 16:
            raise RuntimeError("this model refuses batches of 16")
        return self.net(x)


def workload_refusing_16() -> Workload:
    from dataclasses import replace

    return replace(workload(), name="tiny-mlp-refusing-16", make_model=_Refuses16)
