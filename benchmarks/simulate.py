"""Benchmark: the simulator's default runs, and its one-step Monte Carlo against the baseline a user would write.

1. Wall time of the default ``surge simulate figure1`` computation (``figure1_data()``: 17 batch sizes
   1..65536, 10^5 samples each, n = 64, sign descent and SGD) and of the figure drawn from it.
2. Wall time of the default training simulation (``simulate_training()``: 10 learning rates x 12 batch sizes
   x 16 seeds, 3 targets, sign descent) and, with ``--training-all``, SGD too.
3. The vectorized one-step Monte Carlo against a straightforward baseline with the same samples budget:
   a Python loop over batch sizes that, for each, draws B per-sample gradients N(mu, sigma^2) per sample
   (vectorized over samples, in chunks), averages them to G_est, and records G^T sign(G_est) and
   sign(G_est)^T H sign(G_est). The vectorized version draws G_est ~ N(mu, sigma^2 / B) directly (exact in
   distribution), shares the normals across batch sizes and evaluates all batch sizes at once. The
   baseline's cost grows with B, so this comparison uses batch sizes 1..1024 (11 of them) and 4,000
   samples each; the ratio is the baseline's time over the vectorized time.

Usage: ``python benchmarks/simulate.py [--json] [--skip-training] [--training-all] [--samples N]``.
Prints times and the ratio, asserts none. The machine is shared, so numbers vary from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from surge.plots import plot_figure1
from surge.simulate.montecarlo import figure1_data, one_step_monte_carlo
from surge.simulate.training import simulate_training
from surge.theory.problems import surge_problem


def baseline_sign_monte_carlo(problem, batch_sizes, samples: int, seed: int = 0, max_elements: int = 1 << 22):
    """The straightforward version: per batch size, draw and average B per-sample gradients per sample."""
    rng = np.random.default_rng(seed)
    mu, sigma, h = problem.mu, problem.sigma, problem.hessian
    n = mu.size
    out = []
    for b in batch_sizes:
        b = int(b)
        chunk = max(1, max_elements // (b * n))
        sum_a = sum_c = 0.0
        done = 0
        while done < samples:
            k = min(chunk, samples - done)
            per_sample = mu + sigma * rng.standard_normal((k, b, n))  # (samples, B, n) per-sample gradients
            v = np.sign(per_sample.mean(axis=1))
            sum_a += float((v @ mu).sum())
            sum_c += float(np.einsum("ki,ki->k", v @ h, v).sum())
            done += k
        out.append(sum_a / sum_c)  # E[G^T V] / E[V^T H V] (Eq 6)
    return np.array(out)


def _time(fn):
    t = time.perf_counter()
    value = fn()
    return time.perf_counter() - t, value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--skip-training", action="store_true", help="skip the training simulation")
    ap.add_argument("--training-all", action="store_true", help="also time the SGD training simulation")
    ap.add_argument("--samples", type=int, default=4000, help="samples per batch size in the baseline comparison")
    args = ap.parse_args(argv)
    say = (lambda *a: None) if args.json else print
    result: dict = {"cpu_count": os.cpu_count()}
    try:
        result["load_average"] = list(os.getloadavg())
    except OSError:
        pass

    # 1. Figure 1, default
    fig_s, fig = _time(lambda: figure1_data())
    with tempfile.TemporaryDirectory() as tmp:
        draw_s, _ = _time(lambda: plot_figure1(fig, os.path.join(tmp, "fig1.png")))
    result["figure1_s"] = fig_s
    result["figure1_draw_s"] = draw_s
    say(f"figure1 default (17 batch sizes x 1e5 samples, n = 64, sign + SGD): {fig_s:.2f} s (+ {draw_s:.2f} s drawing)")

    # 2. Training, default
    if not args.skip_training:
        tr_s, tr = _time(lambda: simulate_training())
        result["training_sign_s"] = tr_s
        result["training_sign_trajectory_steps"] = tr.total_steps
        say(
            f"training default (sign, 10 lrs x 12 batch sizes x 16 seeds, 3 targets): {tr_s:.2f} s, "
            f"{tr.total_steps:,} trajectory-steps"
        )
        if args.training_all:
            sgd_s, _ = _time(lambda: simulate_training(optimizer="sgd"))
            result["training_sgd_s"] = sgd_s
            say(f"training default (sgd): {sgd_s:.2f} s")

    # 3. Vectorized Monte Carlo vs the baseline, same samples budget
    p = surge_problem()
    batch = np.array([2.0**k for k in range(11)])
    vec_s, vec = _time(lambda: one_step_monte_carlo(p, batch, samples=args.samples, seed=0))
    base_s, base = _time(lambda: baseline_sign_monte_carlo(p, batch, args.samples, seed=0))
    exact = p.model.optimal_lr(batch)
    result.update(
        comparison_batch_sizes=batch.tolist(),
        comparison_samples=args.samples,
        vectorized_s=vec_s,
        baseline_s=base_s,
        speedup=base_s / vec_s,
        vectorized_max_rel_error=float(np.max(np.abs(vec.mc_optimal_lr / exact - 1))),
        baseline_max_rel_error=float(np.max(np.abs(base / exact - 1))),
        # errors in units of the vectorized standard error (the same budget gives the baseline a similar one)
        vectorized_max_abs_z=float(np.max(np.abs(vec.mc_optimal_lr - exact) / vec.mc_stderr)),
        baseline_max_abs_z=float(np.max(np.abs(base - exact) / vec.mc_stderr)),
    )
    say(
        f"one-step Monte Carlo, batch sizes 1..1024 (11), {args.samples} samples each: vectorized {vec_s:.3f} s, "
        f"baseline {base_s:.2f} s, ratio {base_s / vec_s:.0f}x"
    )
    say(
        f"  max error against Eq 9: vectorized {result['vectorized_max_rel_error']:.2%} "
        f"({result['vectorized_max_abs_z']:.1f} s.e.), baseline {result['baseline_max_rel_error']:.2%} "
        f"({result['baseline_max_abs_z']:.1f} s.e.)"
    )
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
