"""Benchmark: trial-steps per second of a workload's training step, lockstep against loop.

For each batch size, the same trials (``--lrs`` learning rates from the workload's Table 1 grid, one
round) take ``--steps`` steps through each of the engine's runners (``LockstepRunner``: one vmapped
call for all trials; ``LoopRunner``: one forward/backward per trial), in this process, with the
engine's allocator settings and thread count (one thread, as in its worker processes; ``--threads``).
Each figure is the best of ``--repeats`` runs, the two runners alternating (the machine is shared).
Throughput is trials x steps / seconds; also the seconds of one probe measurement of one trial.

Workloads (one function each, below): ``resnet18-tiny-imagenet``, on its real data when
``--data-dir`` (or ``$SURGE_DATA_DIR``) holds them or they can be downloaded, else on random ``uint8``
images of the same shape (a step costs the same whatever the pixels).
``distilgpt2-eli5``: on ELI5-Category when ``--data-dir`` holds it (no download), else on random token
ids over GPT-2's vocabulary; ``gpt2-pydoc``: the offline language-model workload.

Usage: ``python benchmarks/workloads.py --workload resnet18-tiny-imagenet [--batch-sizes 16,32]
[--lrs 4] [--steps 3] [--repeats 3] [--device cuda] [--json]``. Prints numbers, asserts none.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from surge.engine import DataOrder, OptimizerConfig, build_optimizer, configure_allocator
from surge.engine.trainer import LockstepRunner, LoopRunner
from surge.workloads import Workload, get_workload


def resnet18_tiny_imagenet(data_dir: str | None) -> tuple[Workload, OptimizerConfig, list[float], str]:
    """ResNet-18 / Tiny-ImageNet with Table 1's sign-Adam (betas 0, 0) and its lr grid."""
    from surge.sweep import get_preset
    from surge.workloads.tiny_imagenet import LOCKSTEP_MAX_BATCH, PROBE_SIZE, TinyImageNetResNet18

    spec = get_preset("resnet18-sign")
    opt = OptimizerConfig(spec.optimizer.name, betas=spec.optimizer.betas)
    try:
        return get_workload("resnet18-tiny-imagenet", data_dir), opt, list(spec.lrs), "Tiny-ImageNet"
    except FileNotFoundError:
        pass
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4096, 3, 64, 64), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 200, (4096,), generator=g)
    wl = Workload(
        name="resnet18-tiny-imagenet",
        make_model=TinyImageNetResNet18,
        train_inputs=x,
        train_targets=y,
        probe_inputs=x[:PROBE_SIZE],
        probe_targets=y[:PROBE_SIZE],
        epoch_size=4096,
        lockstep_max_batch=LOCKSTEP_MAX_BATCH,
    )
    return wl, opt, list(spec.lrs), "random uint8 images [4096, 3, 64, 64] (no data found)"


def _adam_grid(preset: str) -> tuple[OptimizerConfig, list[float]]:
    from surge.sweep import get_preset

    spec = get_preset(preset)
    return OptimizerConfig(spec.optimizer.name, betas=spec.optimizer.betas), list(spec.lrs)


def distilgpt2_eli5(data_dir: str | None) -> tuple[Workload, OptimizerConfig, list[float], str]:
    """distilgpt2-eli5 as registered (GPT-2 'small', 128-token sequences) with Table 1's Adam 0.9/0.999 grid:
    on ELI5-Category when ``data_dir`` holds it, else on random ids over GPT-2's 50,257-id vocabulary (a
    step costs the same whatever the ids)."""
    from surge.workloads import eli5

    opt, lrs = _adam_grid("distilgpt2-adam")
    try:
        return eli5.distilgpt2_eli5(data_dir, download=False), opt, lrs, "ELI5-Category"
    except FileNotFoundError:
        pass
    g = torch.Generator().manual_seed(0)
    stream = torch.randint(0, 50257, (1024 * eli5.ELI5_SEQ_LEN + 1,), generator=g).numpy()
    wl = eli5.gpt2_workload(
        "distilgpt2-eli5",
        stream,
        size="small",
        seq_len=eli5.ELI5_SEQ_LEN,
        vocab_size=50257,
        eos_id=50256,
        probe_size=eli5.ELI5_PROBE,
        targets=eli5.ELI5_TARGETS,
        description="",
        metadata={},
        lockstep_max_batch=eli5.ELI5_LOCKSTEP_MAX_BATCH,
        probe_chunk=eli5.ELI5_PROBE_CHUNK,
    )
    return wl, opt, lrs, "random token ids [1024 x 128] over 50,257 ids (no ELI5-Category found)"


def gpt2_pydoc(data_dir: str | None) -> tuple[Workload, OptimizerConfig, list[float], str]:
    """gpt2-pydoc (GPT-2 'tiny', 128-token sequences, 4,096-id local BPE) with the distilgpt2-adam lr grid."""
    opt, lrs = _adam_grid("distilgpt2-adam")
    return get_workload("gpt2-pydoc", data_dir), opt, lrs, "CPython's pydoc topics"


WORKLOADS = {
    "resnet18-tiny-imagenet": resnet18_tiny_imagenet,
    "distilgpt2-eli5": distilgpt2_eli5,
    "gpt2-pydoc": gpt2_pydoc,
}


def _pick(values: list[float], k: int) -> list[float]:
    """``k`` values spread over the grid, ends included."""
    if k >= len(values):
        return values
    return [values[round(i * (len(values) - 1) / (k - 1))] for i in range(k)] if k > 1 else values[:1]


def steps_per_second(runner, wl: Workload, lrs: list[float], batch_size: int, steps: int) -> float:
    """Trial-steps per second over ``steps`` steps (after one untimed step), one seed for all trials."""
    lanes = runner.init_lanes([(i, 0, lr) for i, lr in enumerate(lrs)])
    order = DataOrder(0, wl.num_train, wl.epoch_size)

    def index(t: int) -> torch.Tensor:
        return torch.stack([order.batch(t, batch_size)] * len(lrs))

    runner.step(lanes, *runner.batch(index(1)))
    start = time.perf_counter()
    for t in range(2, steps + 2):
        runner.step(lanes, *runner.batch(index(t)))
    return len(lrs) * steps / (time.perf_counter() - start)


def probe_seconds(runner, lrs: list[float]) -> float:
    lanes = runner.init_lanes([(0, 0, lrs[0])])
    start = time.perf_counter()
    runner.probe(lanes)
    return time.perf_counter() - start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="resnet18-tiny-imagenet", choices=sorted(WORKLOADS))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--batch-sizes", default="16,32")
    ap.add_argument("--lrs", type=int, default=4, help="trials per group: this many lrs spread over the grid")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--device", default="cpu", help="cpu or cuda (a step ends with its losses on the CPU: synchronised)"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    configure_allocator()
    torch.set_num_threads(args.threads)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    wl, opt_config, grid, data = WORKLOADS[args.workload](args.data_dir)
    lrs = _pick(grid, args.lrs)
    opt = build_optimizer(opt_config)
    runners = {R.strategy: R(wl, opt, device=args.device, dtype="float32") for R in (LockstepRunner, LoopRunner)}
    log(
        f"{args.workload} on {data}; {len(lrs)} trials (lr {', '.join(f'{x:g}' for x in lrs)}), "
        f"{args.steps} steps, best of {args.repeats}, {args.threads} thread(s), {args.device}"
    )
    rows = []
    for b in [int(x) for x in args.batch_sizes.split(",")]:
        best = {name: 0.0 for name in runners}
        for _ in range(args.repeats):
            for name, runner in runners.items():
                best[name] = max(best[name], steps_per_second(runner, wl, lrs, b, args.steps))
        ratio = best["lockstep"] / best["loop"]
        rows.append(
            {
                "batch_size": b,
                "lockstep_trial_steps_per_s": round(best["lockstep"], 3),
                "loop_trial_steps_per_s": round(best["loop"], 3),
                "ratio": round(ratio, 3),
            }
        )
        log(
            f"B={b:4d}  lockstep {best['lockstep']:8.3f}  loop {best['loop']:8.3f} trial-steps/s  "
            f"lockstep/loop {ratio:5.2f}"
        )
    probe = min(probe_seconds(runners["loop"], lrs) for _ in range(2))
    log(f"one probe measurement ({len(wl.probe_inputs)} examples, one trial): {probe:.2f} s")
    if args.json:
        print(
            json.dumps(
                {
                    "workload": args.workload,
                    "data": data,
                    "threads": args.threads,
                    "device": args.device,
                    "lrs": lrs,
                    "steps": args.steps,
                    "repeats": args.repeats,
                    "rows": rows,
                    "probe_examples": len(wl.probe_inputs),
                    "probe_seconds": round(probe, 3),
                    "lockstep_max_batch": wl.lockstep_max_batch,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
