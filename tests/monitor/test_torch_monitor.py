"""The torch side of surge.monitor: per-example gradients, Hessian-vector products, NoiseMonitor.

Known truth through torch: a module whose per-example loss is 1/2 theta^T H theta - xi_k^T theta has
per-example gradient H theta - xi_k and Hessian H, so with xi_k drawn to make the gradients N(mu, sigma^2)
the monitor must recover the sign-gradient problem's B_noise, eps_max and B_simple.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from surge.errors import SurgeError  # noqa: E402
from surge.monitor import NoiseMonitor  # noqa: E402
from surge.monitor.torch_grads import make_hvp, per_example_grads  # noqa: E402
from surge.theory.problems import make_problem  # noqa: E402


class Quadratic(nn.Module):
    """Per-example loss 1/2 theta^T H theta - xi^T theta (input xi); ``mean_loss`` averages it."""

    def __init__(self, h: np.ndarray) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(h.shape[0], dtype=torch.float64))
        self.register_buffer("h", torch.as_tensor(h, dtype=torch.float64))

    def forward(self, xi: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.theta @ self.h @ self.theta - xi @ self.theta


def mean_loss(out: torch.Tensor, _targets: torch.Tensor) -> torch.Tensor:
    return out.mean()


def tiny_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def test_per_example_grads_and_hvp_against_autograd_and_the_full_hessian():
    model = tiny_mlp()
    x, y = torch.randn(12, 5, dtype=torch.float64), torch.randint(0, 3, (12,))
    g, b, how = per_example_grads(model, F.cross_entropy, x, y)
    assert (g.shape, b, how) == ((12, 66), 1, "vmap")
    params = list(model.parameters())
    for i in (0, 7):
        ref = torch.autograd.grad(F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]), params)
        torch.testing.assert_close(g[i], torch.cat([t.reshape(-1) for t in ref]))
    gm, bm, how = per_example_grads(model, F.cross_entropy, x, y, micro_batch_size=4)
    assert (gm.shape, bm, how) == ((3, 66), 4, "autograd")
    torch.testing.assert_close(gm[1], g[4:8].mean(0))
    # H from torch.autograd.functional.hessian of the flat-parameter loss
    names = [k for k, _ in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_of(theta):
        chunks, i = {}, 0
        for k, p in zip(names, params):
            chunks[k] = theta[i : i + p.numel()].reshape(p.shape)
            i += p.numel()
        return F.cross_entropy(torch.func.functional_call(model, chunks, (x,)), y)

    h_full = torch.autograd.functional.hessian(loss_of, flat).numpy()
    hvp = make_hvp(model, F.cross_entropy, x, y)
    v = np.random.default_rng(0).normal(size=(3, flat.numel()))
    np.testing.assert_allclose(hvp(v), v @ h_full, atol=1e-12)
    np.testing.assert_allclose(hvp(v[0]), h_full @ v[0], atol=1e-12)
    hvp.method = "double-backward"
    np.testing.assert_allclose(hvp(v), v @ h_full, atol=1e-12)


def test_noise_monitor_recovers_the_known_truth_through_torch(tmp_path):
    p = make_problem("surge")
    h = p.hessian_matrix()
    model = Quadratic(h)
    rng = np.random.default_rng(0)
    log = tmp_path / "series.jsonl"
    mon = NoiseMonitor(
        model, mean_loss, every=2, window=5, log_path=log, batch_sizes=[4, 16, 64], n_draws=64, hessian_every=1
    )
    for step in range(10):
        g = p.mu + p.sigma * rng.standard_normal((4000, p.n))  # per-example gradients at theta = 0: -xi
        xi = torch.as_tensor(-g)
        mon.step(xi, torch.zeros(len(xi)), loss=float(step))
    assert [r["step"] for r in mon.series] == [0, 2, 4, 6, 8]
    last = mon.series[-1]
    assert last["smooth_n_examples"] == 20_000 and last["n_examples"] == 4000
    assert last["smooth_b_noise"] == pytest.approx(p.model.b_noise, rel=0.15)
    assert last["smooth_b_noise_lo"] <= last["smooth_b_noise"] <= last["smooth_b_noise_hi"]
    assert last["smooth_b_simple"] == pytest.approx(float(p.sigma @ p.sigma / (p.mu @ p.mu)), rel=0.1)
    assert mon.smoothed.eps_max == pytest.approx(p.model.eps_max, rel=0.1)
    # the interval of the pooled measurement is narrower than that of one measurement
    assert last["smooth_b_noise_hi"] / last["smooth_b_noise_lo"] < last["b_noise_hi"] / last["b_noise_lo"]
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 5 and rows[-1]["step"] == 8 and rows[-1]["loss"] == 8.0
    assert mon.latest.direct_lr.shape == (3,)


def test_noise_monitor_csv_log_and_a_real_training_loop(tmp_path):
    model = tiny_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    mon = NoiseMonitor(model, F.cross_entropy, every=3, log_path=tmp_path / "s.csv", optimizer=opt, batch_sizes=[2, 8])
    gen = torch.Generator().manual_seed(1)
    for _ in range(7):
        x = torch.randn(256, 5, dtype=torch.float64, generator=gen)
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(x, y, loss=loss)
    assert [r["step"] for r in mon.series] == [0, 3, 6]
    assert model.training  # restored after the measurement
    assert mon.latest.direct_update == "adam"
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0].startswith("step,loss,n_examples,b_simple") and len(lines) == 4
    assert all(r["n_examples"] == 256 and r["b_simple_lo"] > 0 for r in mon.series)


def test_bad_input_to_the_monitor():
    with pytest.raises(SurgeError, match="no trainable parameters"):
        NoiseMonitor(nn.Linear(2, 2).requires_grad_(False), F.mse_loss)
    for every in (0, -3, 1.5):
        with pytest.raises(SurgeError, match=r"every \(measure every K steps\) must be (positive|an integer), got"):
            NoiseMonitor(nn.Linear(2, 2), F.mse_loss, every=every)
    mon = NoiseMonitor(nn.Linear(2, 2), F.mse_loss, every=1)
    with pytest.raises(SurgeError, match="at least 2 examples"):
        mon.step(torch.randn(1, 2), torch.randn(1, 2))
    with pytest.raises(SurgeError, match="same length, got 4 and 3"):
        mon.step(torch.randn(4, 2), torch.randn(3, 2))
    with pytest.raises(SurgeError, match=r"must end in \.jsonl or \.csv"):
        NoiseMonitor(nn.Linear(2, 2), F.mse_loss, log_path="x.txt")
    model = nn.Linear(2, 1)
    x = torch.tensor([[float("nan"), 0.0]] * 8)
    with pytest.raises(SurgeError, match="must be finite"):
        NoiseMonitor(model, F.mse_loss, every=1).step(x, torch.zeros(8, 1))


def test_lightning_trainer_runs_the_callback(tmp_path):
    L = pytest.importorskip("lightning")
    from surge.monitor.lightning import NoiseMonitorCallback

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _):
            x, y = batch
            return F.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)

    def fit(cb, **kwargs):
        quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        trainer = L.Trainer(
            max_steps=6, accelerator="cpu", default_root_dir=tmp_path, callbacks=[cb], **quiet, **kwargs
        )
        trainer.fit(Module(), loader)
        return cb

    cb = fit(NoiseMonitorCallback(F.cross_entropy, every=2, log_path=tmp_path / "l.jsonl"))
    assert [r["step"] for r in cb.series] == [1, 3, 5]
    assert all(r["n_examples"] == 32 and math.isfinite(r["b_simple"]) for r in cb.series)
    assert len((tmp_path / "l.jsonl").read_text().splitlines()) == 3
    # with gradient accumulation the batches of one optimizer step share a global_step: measured once
    acc = fit(NoiseMonitorCallback(F.cross_entropy, every=2), accumulate_grad_batches=2)
    assert [r["step"] for r in acc.series] == [1, 3, 5]


def test_hf_trainer_runs_the_callback_and_trains_the_same_bits(tmp_path):
    transformers = pytest.importorskip("transformers")
    from surge.monitor.hf import NoiseMonitorHFCallback

    def train(callbacks):
        torch.manual_seed(0)
        config = transformers.GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=1, n_head=2)
        model = transformers.GPT2LMHeadModel(config)  # dropout 0.1: training draws from torch's generator
        ids = torch.randint(0, 40, (64, 12))
        data = [{"input_ids": row, "labels": row} for row in ids]
        args = transformers.TrainingArguments(
            output_dir=str(tmp_path),
            max_steps=4,
            per_device_train_batch_size=8,
            report_to=[],
            use_cpu=True,
            save_strategy="no",
            logging_steps=1,
            disable_tqdm=True,
            learning_rate=1e-3,
        )
        transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks).train()
        return model

    cb = NoiseMonitorHFCallback(every=2, log_path=tmp_path / "hf.jsonl")
    model = train([cb])
    assert [r["step"] for r in cb.series] == [1, 3]
    assert all(r["n_examples"] == 8 and math.isfinite(r["b_simple"]) for r in cb.series)
    assert cb.monitor.latest.n_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    # the callback's own iterator over the dataloader must not move the training's random stream
    plain = train([])
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), plain.parameters()))


def test_smoothed_is_none_while_no_measurement_has_a_finite_component():
    p = make_problem("surge")
    mon = NoiseMonitor(Quadratic(p.hessian_matrix()), mean_loss, every=1, window=3, n_draws=8)
    assert mon.smoothed is None
    g = p.mu + p.sigma * np.random.default_rng(0).standard_normal((5, p.n))  # too few examples to estimate
    mon.step(torch.as_tensor(-g), torch.zeros(5), loss=1.0)
    assert mon.latest is not None and math.isnan(mon.latest.b_noise)
    assert mon.smoothed is None  # raised SurgeError from pool_estimates
