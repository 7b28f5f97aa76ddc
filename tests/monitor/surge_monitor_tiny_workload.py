"""A tiny user workload (``surge_monitor_tiny_workload:workload``) for end-to-end tests of ``surge measure``.

A 3-class softmax classifier on 2,048 synthetic points (a small MLP, cross-entropy): it loads in
milliseconds and a measurement takes a fraction of a second.
"""

import torch
from torch import nn
from torch.nn import functional as F

from surge.workloads import Workload


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))


def workload() -> Workload:
    g = torch.Generator().manual_seed(99)
    x = torch.randn(2048, 6, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    return Workload(
        name="tiny-classifier",
        make_model=_model,
        train_inputs=x,
        train_targets=y,
        probe_inputs=x[:256].contiguous(),
        probe_targets=y[:256].contiguous(),
        loss_fn=F.cross_entropy,
        default_targets=(1.0, 0.8),
        description="tiny 3-class MLP (monitor tests)",
    )


def no_parameters() -> Workload:
    """The same data with a model that has nothing to train."""
    wl = workload()
    return Workload(
        name="frozen",
        make_model=lambda: _model().requires_grad_(False),
        train_inputs=wl.train_inputs,
        train_targets=wl.train_targets,
        probe_inputs=wl.probe_inputs,
        probe_targets=wl.probe_targets,
        loss_fn=F.cross_entropy,
    )
