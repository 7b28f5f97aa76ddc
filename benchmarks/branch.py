"""Branch sweeps against scratch sweeps: the cost of the optimal lr per batch size to a given interval width.

Both protocols answer "what is the optimal learning rate at batch size B when the training loss is at the
target" on the same workload (``cnn-mnist-sample``, sign-descent Adam, the demo's first target): the
scratch protocol (the paper's) from trials trained from initialisation, the branch protocol from one
trunk checkpoint at the target. Each runs a few rounds, here, in the same process, one after the other;
then per batch size:

- the width of the 95 % bootstrap interval of the fitted optimum (hi / lo, as a factor);
- trial-steps per second (training steps of all trials, replays and the trunk included, over wall time);
- wall time per batch size (its groups' wall time, from the store);
- the rounds each would need for a common width W (``--width``), from width ~ exp(c / sqrt(rounds)),
  i.e. ``rounds(W) = rounds * (log width / log W)^2``, and the wall time that costs at the measured cost
  per round; the headline is the ratio scratch / branch of that wall time.

The extrapolation assumes the interval narrows like 1 / sqrt(rounds), which holds for an unbiased
smooth estimator; it is an estimate, printed as such. Run:

    PYTHONPATH=src python benchmarks/branch.py [--rounds-scratch 4] [--rounds-branch 8] [--width 1.5]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from surge.analysis import analyze
from surge.records import OptimizerConfig
from surge.sweep.executor import run_sweep
from surge.sweep.spec import BatchGrid, LRGrid, SweepSpec, TrunkConfig
from surge.sweep.store import SweepStore

SIGN = OptimizerConfig(name="adam", betas=(0.0, 0.0))


def _geom(lo: float, hi: float, ratio: float = 2**0.5) -> tuple[float, ...]:
    n = int(round(math.log(hi / lo) / math.log(ratio))) + 1
    return tuple(float(f"{lo * ratio**i:.3g}") for i in range(n))


def run(spec: SweepSpec, folder: Path, workers: int) -> dict:
    store = folder / f"{spec.name}.sqlite"
    t0 = time.perf_counter()
    summary = run_sweep(spec, store, workers=workers)
    wall = time.perf_counter() - t0
    with SweepStore(store, create=False) as st:
        frame = st.trials_frame()
    trials = frame.drop_duplicates("trial_key")
    steps = float(trials["steps_run"].sum())
    if spec.protocol == "branch":
        import torch

        for f in (folder / f"{spec.name}.sqlite.checkpoints").glob("trunk-*.pt"):
            cps = torch.load(f, weights_only=False)["checkpoints"]
            steps += max(c["step"] or 0 for c in cps)
    else:  # the N steps after each crossing (replays not counted)
        steps += float(frame["reached"].fillna(False).sum()) * spec.extra_steps
    result = analyze(frame, lr_estimate="fitted")
    st0 = result.stages[0]
    per_b = trials.groupby("batch_size")["wall_seconds"].sum()  # each group's wall, split over its trials
    return {
        "spec": spec,
        "wall": wall,
        "steps": steps,
        "rows": st0.rows,
        "trials": summary.total,
        "wall_b": {int(b): float(v) for b, v in per_b.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds-scratch", type=int, default=4)
    ap.add_argument("--rounds-branch", type=int, default=8)
    ap.add_argument("--batch-sizes", default="4,16,64")
    ap.add_argument("--target", type=float, default=1.2)
    ap.add_argument("--width", type=float, default=1.5, help="the common interval width (a factor) to cost")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--keep", type=Path, default=None, help="keep the two stores in this folder (for figures)")
    args = ap.parse_args()
    bs = tuple(int(b) for b in args.batch_sizes.split(","))
    common = dict(
        workload="cnn-mnist-sample",
        optimizer=SIGN,
        batch_size=BatchGrid(values=bs),
        target_loss=(args.target,),
        extra_steps=10,
        max_steps=3000,
        probe_examples=512,
    )
    scratch = SweepSpec(
        name="bench-scratch",
        lr=LRGrid(values=_geom(2.5e-4, 1.6e-2)),
        rounds=args.rounds_scratch,
        group_size=200,
        **common,
    )
    branch = SweepSpec(
        name="bench-branch",
        protocol="branch",
        trunk=TrunkConfig(batch_size=32, lr=1e-3),
        lr=LRGrid(values=_geom(5e-5, 8e-4)),
        rounds=args.rounds_branch,
        group_size=240,
        **common,
    )
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) if args.keep is None else args.keep
        folder.mkdir(parents=True, exist_ok=True)
        res = {}
        for spec in (scratch, branch):
            res[spec.protocol] = run(spec, folder, args.workers)
            r = res[spec.protocol]
            print(
                f"{spec.protocol:8s}: {r['trials']} trials, {r['wall']:.1f} s wall, {r['steps']:.0f} trial-steps, "
                f"{r['steps'] / r['wall']:.0f} trial-steps/s",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    W = args.width
    print(f"\nB     protocol  fitted lr [95%]              width   rounds->{W}x  wall->{W}x (s)")
    ratios = []
    for i, b in enumerate(bs):
        cost = {}
        for name in ("scratch", "branch"):
            r = res[name]
            row = r["rows"][i]
            rounds = r["spec"].rounds
            w = row.fitted_width
            need = rounds * (math.log(w) / math.log(W)) ** 2 if np.isfinite(w) and w > 1 else math.nan
            per_round = r["wall_b"][b] / rounds  # this batch size's groups' wall time per round
            cost[name] = need * per_round
            print(
                f"{b:<5d} {name:8s}  {row.fitted_lr:.3g} [{row.fitted_lr_ci[0]:.3g}, {row.fitted_lr_ci[1]:.3g}]"
                f"  {w:6.2f}x  {need:10.1f}  {cost[name]:10.1f}"
            )
        ratio = cost["scratch"] / cost["branch"]
        ratios.append(ratio)
        print(f"      cost ratio scratch / branch at {W}x: {ratio:.1f}")
    finite = [x for x in ratios if np.isfinite(x)]
    if finite:
        print(
            f"\nheadline: median cost ratio scratch / branch at equal width {W}x: {float(np.median(finite)):.1f} "
            f"(over {len(finite)} batch sizes)"
        )


if __name__ == "__main__":
    main()
