"""Benchmark: the cost of NoiseMonitor in a training loop, against the same loop without it, in the same run.

For each workload (the 5-layer CNN on the MNIST sample at batch 64, GPT-2 tiny on pydoc at batch 16
sequences), two copies of a plain training loop with ``torch.optim.Adam(fused=True)`` run S steps on the
same batches, one step of each in turn (so that the load of a shared machine falls on both alike): one
bare, one with ``NoiseMonitor(model, loss_fn, every=K)`` measuring on the loop's own batch with its
defaults (B_simple on every measurement; B_noise, eps_max and the validity batch size on every 4th; no
curves). Reported: seconds per step of each, the overhead (monitored / bare - 1) in percent at the
default interval K, and the cost of one measurement in bare steps, so the overhead at any other interval
is about (cost of one measurement) / K. The first measurement includes torch.func's one-time warm-up.

Usage: ``python benchmarks/monitor.py [--json] [--steps S] [--every K] [--threads T] [--workload NAME]``.
Prints times, asserts none.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from surge.monitor.loop import NoiseMonitor
from surge.workloads import get_workload

DEFAULT_EVERY = NoiseMonitor.__init__.__defaults__[0]  # the monitor's default interval
WORKLOADS = {"cnn-mnist-sample": 64, "gpt2-pydoc": 16}


def _batches(wl, batch: int, steps: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, wl.num_train, (steps, batch), generator=g)
    return [(wl.train_inputs[i], wl.train_targets[i]) for i in idx]


def bench(name: str, batch: int, steps: int, every: int) -> dict:
    """Two copies of the same model and optimizer trained on the same batches, one step of each in turn
    (so a busy machine slows both alike); the second copy calls ``NoiseMonitor.step`` after its update."""
    wl = get_workload(name)
    batches = _batches(wl, batch, steps)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = wl.make_model()
        runs.append((model, torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)))
    mon = NoiseMonitor(runs[1][0], wl.loss_fn, every=every)
    for model, opt in runs:  # warm-up of the plain step
        loss = wl.loss_fn(model(batches[0][0]), batches[0][1])
        loss.backward()
        opt.zero_grad(set_to_none=True)
    t_bare = t_mon = 0.0
    for x, y in batches:
        for i, (model, opt) in enumerate(runs):
            t0 = time.perf_counter()
            loss = wl.loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i == 1:
                mon.step(x, y, loss=loss)
                t_mon += time.perf_counter() - t0
            else:
                t_bare += time.perf_counter() - t0
    step_s = t_bare / steps
    n_meas = len(mon.series)
    n_hess = sum(1 for _, e in mon.estimates if e.n_hvp > 0)
    return {
        "workload": name,
        "batch_size": batch,
        "batch_unit": wl.batch_unit,
        "steps": steps,
        "every": every,
        "measurements": n_meas,
        "with_hessian": n_hess,
        "bare_seconds_per_step": step_s,
        "monitored_seconds_per_step": t_mon / steps,
        "overhead_percent": 100.0 * (t_mon / t_bare - 1.0),
        "ratio": t_mon / t_bare,
        "seconds_per_measurement": mon.seconds / max(n_meas, 1),
        "measurement_in_steps": mon.seconds / max(n_meas, 1) / step_s,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps per loop (default: 4 x every: 4 measurements, 1 with the Hessian)",
    )
    ap.add_argument("--every", type=int, default=DEFAULT_EVERY)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--workload", action="append", default=None, help="default: cnn-mnist-sample and gpt2-pydoc")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or 4 * args.every
    rows = []
    for name in args.workload or list(WORKLOADS):
        print(f"benchmarking {name} ...", file=sys.stderr)
        rows.append(bench(name, WORKLOADS.get(name, 32), steps, args.every))
    if args.json:
        print(json.dumps({"torch_threads": torch.get_num_threads(), "results": rows}))
        return 0
    print(f"torch threads: {torch.get_num_threads()}")
    for r in rows:
        print(
            f"{r['workload']} (batch {r['batch_size']} {r['batch_unit']}, {r['steps']} steps, every {r['every']}): "
            f"bare {1e3 * r['bare_seconds_per_step']:.2f} ms/step, monitored {1e3 * r['monitored_seconds_per_step']:.2f} ms/step, "
            f"ratio {r['ratio']:.3f} (overhead {r['overhead_percent']:+.1f} %); one measurement {r['seconds_per_measurement']:.2f} s "
            f"= {r['measurement_in_steps']:.0f} steps"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
