"""Functional optimizers against torch.optim (float64) and against direct implementations of their rules."""

from __future__ import annotations

import math

import pytest
import torch

from surge.engine import optim
from surge.engine.optim import (
    AdamState,
    adam,
    adamw,
    cat_states,
    lion,
    make_optimizer,
    select_state,
    sgd,
    signsgd,
)

STEPS = 25
LRS = (1e-3, 3e-3, 1e-2)


def _problem(seed: int = 0):
    """Per-trial parameter sets (a dict of tensors) and a deterministic gradient function of the step."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"w": (4, 3), "b": (3,), "c": (2, 2, 2)}
    params = {k: torch.randn(len(LRS), *s, generator=g, dtype=torch.float64) for k, s in shapes.items()}

    def grad(step: int, trial: int, name: str, p: torch.Tensor) -> torch.Tensor:
        # depends on the current parameters (so trajectories that drift apart would show it) and the step
        gg = torch.Generator().manual_seed(1000 * step + 10 * trial + hash(name) % 7)
        return torch.randn(p.shape, generator=gg, dtype=torch.float64) * 0.5 + 0.3 * p

    return params, grad


def _run_functional(opt, params, grad):
    params = {k: v.clone() for k, v in params.items()}
    state = opt.init(params)
    for step in range(STEPS):
        grads = {k: torch.stack([grad(step, t, k, params[k][t]) for t in range(len(LRS))]) for k in params}
        params, state = opt.update(params, grads, state, torch.tensor(LRS, dtype=torch.float64))
    return params


def _run_torch(make, params, grad):
    out = {k: torch.empty_like(v) for k, v in params.items()}
    for t, lr in enumerate(LRS):
        tensors = {k: torch.nn.Parameter(v[t].clone()) for k, v in params.items()}
        opt = make(list(tensors.values()), lr)
        for step in range(STEPS):
            for k, p in tensors.items():
                p.grad = grad(step, t, k, p.detach())
            opt.step()
        for k, p in tensors.items():
            out[k][t] = p.detach()
    return out


def _assert_close(a, b, tol=1e-10):
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=tol), (k, (a[k] - b[k]).abs().max().item())


@pytest.fixture(params=["fused", "plain"])
def kernel(request, monkeypatch):
    """Run Adam/AdamW tests through torch's fused kernel and through the step-by-step kernel."""
    if request.param == "plain":
        monkeypatch.setattr(optim, "USE_FUSED", False)
    elif not optim.USE_FUSED:
        pytest.skip("torch._fused_adam_ not available in this build")
    return request.param


@pytest.mark.parametrize("betas,wd", [((0.9, 0.999), 0.0), ((0.0, 0.0), 0.0), ((0.5, 0.9), 0.1), ((0.95, 0.98), 0.0)])
def test_adam_matches_torch(betas, wd, kernel):
    params, grad = _problem()
    mine = _run_functional(adam(betas, 1e-8, wd), params, grad)
    ref = _run_torch(
        lambda ps, lr: torch.optim.Adam(ps, lr=lr, betas=betas, eps=1e-8, weight_decay=wd, foreach=False), params, grad
    )
    _assert_close(mine, ref)


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_adamw_matches_torch(wd, kernel):
    params, grad = _problem(1)
    mine = _run_functional(adamw((0.9, 0.99), 1e-8, wd), params, grad)
    ref = _run_torch(
        lambda ps, lr: torch.optim.AdamW(ps, lr=lr, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd, foreach=False),
        params,
        grad,
    )
    _assert_close(mine, ref)


@pytest.mark.parametrize("momentum,wd", [(0.0, 0.0), (0.9, 0.0), (0.5, 0.01)])
def test_sgd_matches_torch(momentum, wd):
    params, grad = _problem(2)
    mine = _run_functional(sgd(momentum, wd), params, grad)
    ref = _run_torch(
        lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=momentum, weight_decay=wd, foreach=False), params, grad
    )
    _assert_close(mine, ref)


class _DirectSignSGD:
    """SignSGD written out per parameter, element by element in Python floats."""

    def __init__(self, params, lr, wd=0.0):
        self.params, self.lr, self.wd = params, lr, wd

    def step(self):
        for p in self.params:
            flat = p.data.view(-1)
            gflat = p.grad.view(-1)
            for i in range(flat.numel()):
                x = flat[i].item() * (1 - self.lr * self.wd)
                g = gflat[i].item()
                flat[i] = x - self.lr * ((g > 0) - (g < 0))


class _DirectLion:
    """Lion (Chen et al. 2023, Algorithm 2) per parameter, element by element in Python floats."""

    def __init__(self, params, lr, betas, wd=0.0):
        self.params, self.lr, self.betas, self.wd = params, lr, betas, wd
        self.m = [torch.zeros_like(p) for p in params]

    def step(self):
        b1, b2 = self.betas
        for p, m in zip(self.params, self.m):
            flat, gflat, mflat = p.data.view(-1), p.grad.view(-1), m.view(-1)
            for i in range(flat.numel()):
                g, mi = gflat[i].item(), mflat[i].item()
                c = b1 * mi + (1 - b1) * g
                flat[i] = flat[i].item() * (1 - self.lr * self.wd) - self.lr * ((c > 0) - (c < 0))
                mflat[i] = b2 * mi + (1 - b2) * g


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_signsgd_matches_direct_rule(wd):
    params, grad = _problem(3)
    mine = _run_functional(signsgd(wd), params, grad)
    ref = _run_torch(lambda ps, lr: _DirectSignSGD(ps, lr, wd), params, grad)
    _assert_close(mine, ref)


@pytest.mark.parametrize("betas,wd", [((0.9, 0.99), 0.0), ((0.95, 0.98), 0.1)])
def test_lion_matches_direct_rule(betas, wd):
    params, grad = _problem(4)
    mine = _run_functional(lion(betas, wd), params, grad)
    ref = _run_torch(lambda ps, lr: _DirectLion(ps, lr, betas, wd), params, grad)
    _assert_close(mine, ref)


def test_adam_with_zero_betas_is_sign_descent_up_to_eps(kernel):
    """Eq 29: with beta1 = beta2 = 0 each step is lr * g / (|g| + eps), i.e. lr * sign(g) up to eps."""
    params, grad = _problem(5)
    eps = 1e-8
    opt = adam((0.0, 0.0), eps)
    p = {k: v.clone() for k, v in params.items()}
    state = opt.init(p)
    lrs = torch.tensor(LRS, dtype=torch.float64)
    for step in range(STEPS):
        grads = {k: torch.stack([grad(step, t, k, p[k][t]) for t in range(len(LRS))]) for k in p}
        new, state = opt.update(p, grads, state, lrs)
        for k in p:
            shape = (-1,) + (1,) * (p[k].dim() - 1)
            sign_step = p[k] - lrs.view(shape) * torch.sign(grads[k])
            # exact form of the difference, and its bound lr * eps / |g|
            exact = p[k] - lrs.view(shape) * grads[k] / (grads[k].abs() + eps)
            assert torch.allclose(new[k], exact, rtol=0, atol=1e-14)
            bound = lrs.view(shape) * eps / grads[k].abs()
            assert ((new[k] - sign_step).abs() <= bound + 1e-15).all()  # + rounding of p
        p = new


def test_update_is_pure_and_matches_in_place():
    params, grad = _problem(6)
    opt = adam()
    state = opt.init(params)
    before = {k: v.clone() for k, v in params.items()}
    grads = {k: torch.stack([grad(0, t, k, params[k][t]) for t in range(len(LRS))]) for k in params}
    new, new_state = opt.update(params, grads, state, list(LRS))
    for k in params:
        assert torch.equal(params[k], before[k])
        assert torch.equal(state.exp_avg[k], torch.zeros_like(params[k]))
    assert state.step == (0, 0, 0) and new_state.step == (1, 1, 1)
    in_place = {k: v.clone() for k, v in params.items()}
    state2 = opt.update_(in_place, grads, opt.init(in_place), list(LRS))
    for k in params:
        assert torch.equal(in_place[k], new[k])
        assert torch.equal(state2.exp_avg_sq[k], new_state.exp_avg_sq[k])


def test_flat_tensor_params_and_per_trial_lr():
    """A single stacked tensor works as params; a trial with lr 0 does not move."""
    p = torch.randn(3, 10, dtype=torch.float64)
    g = torch.randn(3, 10, dtype=torch.float64)
    opt = make_optimizer("lion", betas=(0.9, 0.99))
    new, state = opt.update(p, g, opt.init(p), torch.tensor([0.0, 1e-3, 1e-2]))
    assert torch.equal(new[0], p[0])
    assert torch.allclose((new[2] - p[2]).abs(), torch.full((10,), 1e-2, dtype=torch.float64))


def test_select_and_cat_states():
    p = torch.randn(4, 5)
    opt = adam()
    state = opt.update_(p, torch.randn(4, 5), opt.init(p), [1e-3] * 4)
    state = state._replace(step=(1, 2, 3, 4))
    sub = select_state(state, [2, 0])
    assert isinstance(sub, AdamState) and sub.step == (3, 1)
    assert torch.equal(sub.exp_avg[0], state.exp_avg[2])
    both = cat_states([sub, select_state(state, [1])])
    assert both.step == (3, 1, 2) and both.exp_avg.shape == (3, 5)


def test_errors():
    with pytest.raises(ValueError, match=r"betas\[0\] must be in \[0, 1\), got 1.0"):
        adam((1.0, 0.999))
    with pytest.raises(ValueError, match="betas must be a pair"):
        lion((0.9,))
    with pytest.raises(ValueError, match="eps must be >= 0"):
        adam(eps=-1.0)
    with pytest.raises(ValueError, match="optimizer name must be one of"):
        make_optimizer("rmsprop")
    opt = sgd(0.9)
    p = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"lr must have one value per trial \(2\), got 3"):
        opt.update(p, p, opt.init(p), [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="lr must be finite"):
        opt.update(p, p, opt.init(p), [0.1, math.inf])
    with pytest.raises(ValueError, match="trial dimension first"):
        opt.init({"a": torch.zeros(2, 3), "b": torch.zeros(3)})
    with pytest.raises(ValueError, match="optimizer state is for 3 trials, params for 2"):
        opt.update(p, p, opt.init(torch.zeros(3, 3)), [0.1, 0.2])
