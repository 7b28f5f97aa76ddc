"""Small synthetic workloads for the engine tests (importable as 'engine_tiny_workload:<name>' in workers)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from surge.workloads import Workload


def _data(n: int = 768, seed: int = 7):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, 1, 8, 8, generator=g)
    labels = torch.arange(n) % 4
    x = centers[labels] + 1.2 * torch.randn(n, 1, 8, 8, generator=g)
    return x, labels


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2)
        self.fc = nn.Linear(36, 4)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).flatten(-3))


class TinyBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 16)
        self.bn = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x.flatten(1)))))


def make(data_dir=None) -> Workload:
    x, y = _data()
    return Workload(
        name="tiny-cnn",
        make_model=TinyCNN,
        train_inputs=x,
        train_targets=y,
        probe_inputs=x[:128],
        probe_targets=y[:128],
        default_targets=(1.2, 0.9),
        extra_steps=5,
        description="tiny synthetic CNN for tests",
        lockstep_max_batch=16,
        probe_chunk=64,
    )


def make_bn() -> Workload:
    x, y = _data()
    return Workload(
        name="tiny-bn",
        make_model=TinyBN,
        train_inputs=x,
        train_targets=y,
        probe_inputs=x[:128],
        probe_targets=y[:128],
        default_targets=(1.2,),
        extra_steps=3,
    )


TINY = make()
not_a_workload = 42


def returns_wrong_type():
    return "nope"
