"""A quadratic problem of the sign-gradient model as an engine workload (importable as
'quadratic_workload:make' in workers), for the branch protocol's known-truth test.

At theta0 = 0 (the model's initial parameters) the per-example loss is
``l_i(theta) = (G + z_i)^T theta + theta^T H theta / 2`` with ``z_i`` the i-th training "input": per-example
gradients at theta0 are ``G + z_i``, Gaussian N(mu, diag sigma^2) across examples, which is the paper's
model (Eq 36). The probe inputs are zero, so the probe loss is the true loss ``G^T theta + theta^T H theta / 2``
(0 at theta0), and one sign-descent step's expected decrease is Eq 31 of
:class:`surge.theory.sign_model.SignGradientModel`, maximal at Eq 9's learning rate.

H is given as ``diag(d) + c 1 1^T`` (the equal-SNR problem's form), so the model costs O(n) per example.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from surge.theory.problems import equal_snr_problem
from surge.workloads import Workload

N_DIM = 256
SNR = 0.1
RATIO = 10.0  # (n - 1) c / h: the exact peak sits near B = 15
N_TRAIN = 8192


def problem():
    return equal_snr_problem(n=N_DIM, snr=SNR, diagonal=1.0, off_diagonal=RATIO / (N_DIM - 1), seed=3)


class Quadratic(nn.Module):
    def __init__(self, mu: torch.Tensor, diag: torch.Tensor, c: float) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(mu.numel()))
        self.mu, self.diag, self.c = mu, diag, c  # plain tensors (not buffers): constants of the problem

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        th = self.theta
        quad = 0.5 * ((self.diag * th * th).sum() + self.c * th.sum() ** 2)
        return (z + self.mu) @ th + quad


def _mean_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return out.mean()


def make(data_dir=None) -> Workload:
    p = problem()
    h = np.asarray(p.hessian)
    c = float(h[0, 1])
    diag = torch.tensor(np.diag(h) - c, dtype=torch.float64)
    mu = torch.tensor(p.mu, dtype=torch.float64)
    gen = np.random.default_rng(11)
    z = gen.standard_normal((N_TRAIN, p.n))
    z = (z - z.mean(0)) / z.std(0) * p.sigma  # exactly mean 0 and std sigma over the training set
    zt = torch.tensor(z, dtype=torch.float32)
    return Workload(
        name="quadratic-equal-snr",
        make_model=lambda: Quadratic(mu.float(), diag.float(), c),
        train_inputs=zt,
        train_targets=torch.zeros(N_TRAIN),
        probe_inputs=torch.zeros(2, p.n),
        probe_targets=torch.zeros(2),
        loss_fn=_mean_loss,
        default_targets=(1.0,),
        extra_steps=1,
        description="equal-SNR quadratic of the sign-gradient model (tests)",
        lockstep_max_batch=4096,
    )
