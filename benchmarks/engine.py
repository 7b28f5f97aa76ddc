"""Benchmark: the engine against the per-trial runner a user would otherwise write, in the same run.

For each batch size (1, 4, 16, 64, 256) the same 100 trials (the 5-layer CNN, 10 learning rates x 10
rounds, Adam 0.9/0.999):

- engine: ``run_group`` with its automatic strategy, on one single-threaded worker process per core;
- baseline: a plain training loop per trial with ``torch.optim.Adam(fused=True)``, the trials spread
  over one single-threaded process per core (what a per-trial sweep runner does with this machine),
  the same allocator settings and the same batches.

Both are timed on the training steps: the baseline inside its processes after start-up (imports,
data loading, model creation excluded); the engine as the wall time of ``run_group`` with its worker
processes already started, the loss measured only at the start and the end, on one probe example
(so model creation and dispatch are included). Throughput is trial-steps per second.

Then the wall time of one round of ``cnn-small-batch`` (lr 1e-4..1e-3 step 1e-4, batch 1..12, Adam
0.9/0.999, N = 10) with the full protocol: all the workload's default targets and a 20,000-step budget,
or with ``--quick`` the first target only and a 2,500-step budget.

Usage: ``python benchmarks/engine.py [--quick] [--json] [--workload NAME] [--device cuda] [--lanes 1,2,4]``.
Prints times, asserts none.

On CUDA (``--device cuda``) both run in this process on the GPU: the engine's group (lockstep) against a
per-trial loop with ``torch.optim.Adam(fused=True)``, the data on the GPU, timed after a
``torch.cuda.synchronize``; ``--lanes`` then times lockstep groups of that many trials per batch size
and reports the smallest that reaches 90 % of the best throughput (the lanes that saturate the GPU). The machine is shared, so numbers vary from run to run; compare the ratio, measured side by side.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time

import torch

from surge.engine import DataOrder, GroupConfig, OptimizerConfig, configure_allocator, run_group, shutdown_workers
from surge.engine.schedule import _cores, choose_strategy
from surge.workloads import get_workload

BATCH_SIZES = (1, 4, 16, 64, 256)
LRS = tuple(round(1e-4 * i, 6) for i in range(1, 11))
ROUNDS = 10
STEPS_QUICK = {1: 64, 4: 48, 16: 32, 64: 24, 256: 12}
REPEATS = 3  # engine and baseline alternate; the best of each counts (the machine is shared); --quick: 2


def _trials(n: int | None = None):
    lrs = tuple(lr for _ in range(ROUNDS) for lr in LRS)
    seeds = tuple(r for r in range(ROUNDS) for _ in LRS)
    if n is not None:  # n trials: the learning rates cycled, a new seed every len(LRS)
        lrs = tuple(LRS[i % len(LRS)] for i in range(n))
        seeds = tuple(i // len(LRS) for i in range(n))
    return lrs, seeds


def _config(
    workload: str,
    batch_size: int,
    steps: int,
    workers: int,
    device: str = "cpu",
    n_trials: int | None = None,
    strategy: str = "auto",
) -> GroupConfig:
    lrs, seeds = _trials(n_trials)
    return GroupConfig(
        workload=workload,
        optimizer=OptimizerConfig("adam", betas=(0.9, 0.999)),
        batch_size=batch_size,
        lrs=lrs,
        seeds=seeds,
        target_losses=(1e-9,),  # never reached: every trial runs all its steps
        extra_steps=0,
        max_steps=steps,
        workers=workers,
        device=device,
        strategy=strategy,
        probe_interval=1 << 30,  # measure only at the start and the end,
        probe_examples=1,  # on one example: the timing is of the training steps
    )


def engine_rate(
    workload: str,
    batch_size: int,
    steps: int,
    workers: int,
    device: str = "cpu",
    n_trials: int | None = None,
    strategy: str = "auto",
) -> tuple[float, str]:
    config = _config(workload, batch_size, steps, workers, device, n_trials, strategy)
    _sync(device)
    start = time.perf_counter()
    res = run_group(config)
    _sync(device)
    return config.n_trials * steps / (time.perf_counter() - start), res[0].strategy


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def baseline_rate_cuda(workload: str, data_dir, batch_size: int, steps: int, device: str) -> float:
    """The per-trial loop on the GPU in this process: fused Adam, data on the device, same batches."""
    wl = get_workload(workload, data_dir)
    x_all = wl.train_inputs.to(device)
    y_all = wl.train_targets.to(device)
    x_all = x_all.float() if x_all.is_floating_point() else x_all
    lrs, seeds = _trials()
    models = []
    for lr, seed in zip(lrs, seeds):
        torch.manual_seed(seed)
        model = wl.make_model().to(device)
        models.append((model, torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), fused=True), seed))
    orders = {seed: DataOrder(seed, wl.num_train) for seed in set(seeds)}
    batches = {(seed, t): orders[seed].batch(t, batch_size).to(device) for seed in orders for t in range(1, steps + 1)}
    _sync(device)
    start = time.perf_counter()
    for model, opt, seed in models:
        for step in range(1, steps + 1):
            idx = batches[(seed, step)]
            loss = wl.loss_fn(model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    _sync(device)
    return len(models) * steps / (time.perf_counter() - start)


def saturation(workload: str, batch_size: int, steps: int, lanes: list[int], device: str) -> dict:
    """Lockstep trial-steps/s for each lane count; the smallest reaching 90 % of the best saturates."""
    rates = {}
    for n in lanes:
        try:
            rates[n] = round(engine_rate(workload, batch_size, steps, 1, device, n_trials=n, strategy="lockstep")[0], 1)
        except torch.cuda.OutOfMemoryError:
            rates[n] = None
            torch.cuda.empty_cache()
            break
    ok = {n: r for n, r in rates.items() if r}
    best = max(ok.values()) if ok else None
    saturating = min((n for n, r in ok.items() if r >= 0.9 * best), default=None) if best else None
    return {
        "batch_size": batch_size,
        "trial_steps_per_s_by_lanes": {str(n): r for n, r in rates.items()},
        "saturating_lanes": saturating,
    }


_BASELINE = {}


def _baseline_init() -> None:
    configure_allocator()
    torch.set_num_threads(1)


def _baseline_worker(workload, data_dir, batch_size, steps, trials):
    """One process's share of the baseline: plain loops with fused Adam; returns its training seconds."""
    wl = get_workload(workload, data_dir)
    x_all, y_all = wl.train_inputs, wl.train_targets
    models = []
    for lr, seed in trials:
        torch.manual_seed(seed)
        model = wl.make_model()
        models.append((model, torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), fused=True), seed))
    start = time.perf_counter()
    for model, opt, seed in models:
        order = DataOrder(seed, wl.num_train)
        for step in range(1, steps + 1):
            idx = order.batch(step, batch_size)
            loss = wl.loss_fn(model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def baseline_rate(workload: str, data_dir, batch_size: int, steps: int, workers: int) -> float:
    if "pool" not in _BASELINE:
        _BASELINE["pool"] = mp.get_context("spawn").Pool(workers, initializer=_baseline_init)
        _BASELINE["pool"].starmap(get_workload, [(workload, data_dir)] * workers)  # load the data once
    lrs, seeds = _trials()
    trials = list(zip(lrs, seeds))
    shares = [(workload, data_dir, batch_size, steps, trials[w::workers]) for w in range(workers)]
    elapsed = _BASELINE["pool"].starmap(_baseline_worker, shares, chunksize=1)
    return len(trials) * steps / max(elapsed)


def round_seconds(workload: str, targets: tuple[float, ...], max_steps: int, device: str = "cpu") -> float:
    wl = get_workload(workload)
    start = time.perf_counter()
    for b in range(1, 13):
        run_group(
            GroupConfig(
                workload=workload,
                optimizer=OptimizerConfig("adam", betas=(0.9, 0.999)),
                batch_size=b,
                lrs=LRS,
                seeds=(0,) * len(LRS),
                target_losses=targets,
                extra_steps=wl.extra_steps,
                max_steps=max_steps,
                device=device,
            )
        )
    _sync(device)
    return time.perf_counter() - start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps per trial (finishes in a few minutes)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument(
        "--workload", default=None, help="default: cnn-fashion-mnist if its data are there, else cnn-mnist-sample"
    )
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)))
    ap.add_argument("--no-round", action="store_true", help="skip the cnn-small-batch round")
    ap.add_argument(
        "--device", default="cpu", help="cpu, cuda or cuda:N (CUDA: both runners on the GPU, in this process)"
    )
    ap.add_argument(
        "--lanes",
        default=None,
        help="CUDA: lane counts for the saturation scan, e.g. 1,4,16,64,256 "
        "(default on CUDA: 1,2,4,...,256; none on the CPU)",
    )
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available here")
    configure_allocator()
    workload = args.workload
    if workload is None:
        try:
            get_workload("cnn-fashion-mnist", args.data_dir)
            workload = "cnn-fashion-mnist"
        except (FileNotFoundError, ValueError):
            workload = "cnn-mnist-sample"
    wl = get_workload(workload, args.data_dir)
    workers = 1 if cuda else _cores()
    scale = 1 if args.quick else 4
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    log(f"workload {workload}, {workers} single-threaded processes, {len(LRS) * ROUNDS} trials per batch size")
    run_group(_config(workload, 1, 2, workers, args.device))  # start the engine's worker processes (or CUDA) once
    rows = []
    for b in [int(x) for x in args.batch_sizes.split(",")]:
        steps = STEPS_QUICK.get(b, 8) * scale
        eng = base = 0.0
        for _ in range(2 if args.quick else REPEATS):
            rate, strategy = engine_rate(workload, b, steps, workers, args.device)
            eng = max(eng, rate)
            if cuda:
                base = max(base, baseline_rate_cuda(workload, args.data_dir, b, steps, args.device))
            else:
                base = max(base, baseline_rate(workload, args.data_dir, b, steps, workers))
        rows.append(
            {
                "batch_size": b,
                "strategy": strategy,
                "engine_trial_steps_per_s": round(eng, 1),
                "baseline_trial_steps_per_s": round(base, 1),
                "ratio": round(eng / base, 3),
            }
        )
        log(f"B={b:4d}  {strategy:8s}  engine {eng:8.1f}  baseline {base:8.1f} trial-steps/s  ratio {eng / base:5.2f}")
    if "pool" in _BASELINE:
        _BASELINE.pop("pool").terminate()
    lanes = args.lanes if args.lanes is not None else ("1,2,4,8,16,32,64,128,256" if cuda else "")
    saturating = []
    for b in [int(x) for x in args.batch_sizes.split(",")] if lanes else []:
        row = saturation(workload, b, STEPS_QUICK.get(b, 8) * scale, [int(x) for x in lanes.split(",")], args.device)
        saturating.append(row)
        log(
            f"B={b:4d}  lockstep trial-steps/s by lanes {row['trial_steps_per_s_by_lanes']}  "
            f"saturating at {row['saturating_lanes']} lanes"
        )
    seconds = None
    round_targets = wl.default_targets[:1] if args.quick else wl.default_targets
    round_steps = 2500 if args.quick else 20000
    if not args.no_round:
        seconds = round_seconds(workload, round_targets, round_steps, args.device)
        log(
            f"one round of cnn-small-batch on {workload} (targets {round_targets}, budget {round_steps} steps): {seconds:.1f} s"
        )
    shutdown_workers()
    result = {
        "workload": workload,
        "device": args.device,
        "gpu": torch.cuda.get_device_name(args.device) if cuda else None,
        "workers": workers,
        "rows": rows,
        "round_seconds": None if seconds is None else round(seconds, 1),
        "round_targets": list(round_targets),
        "round_max_steps": round_steps,
        "lockstep_max_batch": wl.lockstep_max_batch,
        "auto_strategy": {
            str(b): choose_strategy(_config(workload, b, 2, workers, args.device), wl) for b in BATCH_SIZES
        },
        "saturation": saturating,
    }
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
