"""Benchmark: the cost of NoiseMonitor in a training loop, against the same loop without it, in the same run.

For each workload (the 5-layer CNN on the MNIST sample at batch 64, GPT-2 tiny on pydoc at batch 16
sequences), a plain training loop with ``torch.optim.Adam(fused=True)`` runs S steps twice, alternating:
once bare, once with ``NoiseMonitor(model, loss_fn, every=K)`` measuring on the loop's own batch (its
defaults: no curves; B_noise, eps_max, B_simple and the validity batch size every K steps). Both loops
see the same batches. Reported: seconds per step of each, the overhead (monitored / bare - 1) in percent
at the default interval K, and the cost of one measurement in bare steps, so the overhead at any other
interval is (cost of one measurement) / K.

Usage: ``python benchmarks/monitor.py [--json] [--steps S] [--every K] [--threads T]``. Prints times,
asserts none. The machine is shared: compare the ratio, measured side by side (best of 2 repeats each).
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


def _loop(wl, batches, monitor_every: int | None) -> tuple[float, float, int]:
    torch.manual_seed(0)
    model = wl.make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    mon = NoiseMonitor(model, wl.loss_fn, every=monitor_every) if monitor_every else None
    t0 = time.perf_counter()
    for x, y in batches:
        loss = wl.loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if mon is not None:
            mon.step(x, y, loss=loss)
    wall = time.perf_counter() - t0
    return wall, (mon.seconds if mon else 0.0), (len(mon.series) if mon else 0)


def bench(name: str, batch: int, steps: int, every: int, repeats: int = 2) -> dict:
    wl = get_workload(name)
    batches = _batches(wl, batch, steps)
    _loop(wl, batches[: min(5, steps)], None)  # warm-up
    bare, mon, meas_s, n_meas = [], [], [], 0
    for _ in range(repeats):
        bare.append(_loop(wl, batches, None)[0])
        w, s, n_meas = _loop(wl, batches, every)
        mon.append(w)
        meas_s.append(s / max(n_meas, 1))
    b, m = min(bare), min(mon)
    step_s = b / steps
    return {
        "workload": name, "batch_size": batch, "batch_unit": wl.batch_unit, "steps": steps, "every": every,
        "measurements": n_meas, "bare_seconds_per_step": step_s, "monitored_seconds_per_step": m / steps,
        "overhead_percent": 100.0 * (m / b - 1.0), "ratio": m / b,
        "seconds_per_measurement": min(meas_s), "measurement_in_steps": min(meas_s) / step_s,
        "overhead_percent_at_every_1000": 100.0 * min(meas_s) / step_s / 1000,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--steps", type=int, default=None, help="steps per loop (default: 2 x every, so 2 measurements)")
    ap.add_argument("--every", type=int, default=DEFAULT_EVERY)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=2, help="alternating repeats; the best of each counts")
    ap.add_argument("--workload", action="append", default=None, help="default: cnn-mnist-sample and gpt2-pydoc")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or 2 * args.every
    rows = []
    for name in args.workload or list(WORKLOADS):
        print(f"benchmarking {name} ...", file=sys.stderr)
        rows.append(bench(name, WORKLOADS.get(name, 32), steps, args.every, args.repeats))
    if args.json:
        print(json.dumps({"torch_threads": torch.get_num_threads(), "results": rows}))
        return 0
    print(f"torch threads: {torch.get_num_threads()}")
    for r in rows:
        print(f"{r['workload']} (batch {r['batch_size']} {r['batch_unit']}, {r['steps']} steps, every {r['every']}): "
              f"bare {1e3 * r['bare_seconds_per_step']:.2f} ms/step, monitored {1e3 * r['monitored_seconds_per_step']:.2f} ms/step, "
              f"ratio {r['ratio']:.3f} (overhead {r['overhead_percent']:+.1f} %); one measurement {r['seconds_per_measurement']:.2f} s "
              f"= {r['measurement_in_steps']:.0f} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
