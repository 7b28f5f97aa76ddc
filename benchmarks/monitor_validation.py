"""Validation of surge.monitor: known truth on synthetic problems, and in-run against a sweep on real data.

``--synthetic``: Gaussian per-example gradients of the simulator's problems (``surge``, ``equal-snr``,
``diagonal``) and random ones, 20 seeds, 20,000 examples per-example or as 5,000 micro-batches of 4:
median relative error of B_noise, eps_max and B_simple against the closed forms, 95 % interval coverage,
and whether the direct curve's argmax lands within one grid step of the exact Eq 9 argmax.

``--sweep LABEL=analysis.json --measured LABEL=measure.json`` (repeatable): for each target loss of the
sweep (``surge analyze --json`` output), the sweep's Eq 22 B_noise beside the in-run values at the first
measurement at or below that probe loss (``surge measure`` output): B_noise (Eq 14, pooled), the direct
curve's peak, B_simple, the validity batch size. ``--figure PATH`` draws it.

Usage: ``python benchmarks/monitor_validation.py [--synthetic] [--sweep ...] [--measured ...] [--figure F] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from surge.monitor import estimate_noise
from surge.theory.problems import make_problem

GRID = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256], dtype=float)


class _HVP:
    batched = True

    def __init__(self, h):
        self.h = h

    def __call__(self, v):
        return v @ self.h


def synthetic(seeds: int = 20) -> list[dict]:
    rows = []
    builders = {
        "surge": lambda s: make_problem("surge"),
        "equal-snr": lambda s: make_problem("equal-snr"),
        "random": lambda s: make_problem("random", seed=1000 + s),
        "diagonal": lambda s: make_problem("diagonal"),
    }
    for name, build in builders.items():
        for micro in (1, 4):
            t0 = time.perf_counter()
            rel = {k: [] for k in ("b_noise", "eps_max", "b_simple")}
            cover = {k: [] for k in rel}
            hits = []
            for seed in range(seeds):
                p = build(seed)
                rng = np.random.default_rng(seed)
                m = 20_000 // micro
                g = p.mu + p.sigma * rng.standard_normal((m, p.n)) / math.sqrt(micro)
                grid = GRID[GRID >= micro]
                e = estimate_noise(
                    g, _HVP(p.hessian_matrix()), micro_batch_size=micro, batch_sizes=grid, n_draws=400, seed=seed
                )
                truth = {
                    "b_noise": p.model.b_noise,
                    "eps_max": p.model.eps_max,
                    "b_simple": float(p.sigma @ p.sigma / (p.mu @ p.mu)),
                }
                for k in rel:
                    if math.isfinite(truth[k]):
                        rel[k].append(abs(getattr(e, k) / truth[k] - 1))
                    lo, hi = getattr(e, k + "_ci")
                    cover[k].append(bool(lo <= truth[k] <= hi))
                peak = p.model.peak()
                if peak is None:  # no interior maximum: the curve must peak at the grid's top
                    hits.append(e.direct_peak_batch_size == grid[-1])
                else:
                    nearest = int(np.argmin(np.abs(np.log(grid / peak.batch_size))))
                    hits.append(abs(int(np.flatnonzero(grid == e.direct_peak_batch_size)[0]) - nearest) <= 1)
            rows.append(
                {
                    "problem": name,
                    "micro_batch_size": micro,
                    "seeds": seeds,
                    **{f"median_rel_err_{k}": (float(np.median(v)) if v else None) for k, v in rel.items()},
                    **{f"coverage_{k}": float(np.mean(v)) for k, v in cover.items()},
                    "direct_argmax_within_one_step": float(np.mean(hits)),
                    "seconds": time.perf_counter() - t0,
                }
            )
    return rows


def _pair(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for it in items or []:
        label, sep, path = it.partition("=")
        if not sep:
            raise SystemExit(f"{what} must be LABEL=PATH, got {it!r}")
        out[label] = path
    return out


def _f(x):
    return math.nan if x is None else float(x)


def real(sweeps: dict[str, str], measured: dict[str, str]) -> list[dict]:
    rows = []
    for label, path in sweeps.items():
        ana = json.load(open(path))
        doc = json.load(open(measured[label]))
        series = doc["series"]
        curves = doc.get("curves", [])
        for st in ana["stages"]:
            target = float(st["target_loss"])
            row = next((r for r in series if r.get("loss") is not None and r["loss"] <= target), None)
            out = {
                "label": label,
                "target_loss": target,
                "sweep_b_noise": _f(st.get("b_noise")),
                "sweep_b_noise_ci": [_f(x) for x in (st.get("b_noise_ci") or [None, None])],
            }
            if row is None:
                out["reached"] = False
                rows.append(out)
                continue
            curve = next((c for c in curves if target in c.get("target_losses", [])), None)
            out.update(
                {
                    "reached": True,
                    "step": row["step"],
                    "loss": row["loss"],
                    "n_examples": row["smooth_n_examples"],
                    "b_noise": _f(row["smooth_b_noise"]),
                    "b_noise_ci": [_f(row["smooth_b_noise_lo"]), _f(row["smooth_b_noise_hi"])],
                    "b_simple": _f(row["smooth_b_simple"]),
                    "b_simple_ci": [_f(row["smooth_b_simple_lo"]), _f(row["smooth_b_simple_hi"])],
                    "validity_batch_size": _f(row["validity_batch_size"]),
                    "direct_peak_batch_size": _f(curve["direct_peak_batch_size"]) if curve else math.nan,
                    "model_peak_batch_size": _f(curve["model_peak_batch_size"]) if curve else math.nan,
                    "direct_curve": {"batch_sizes": curve["batch_sizes"], "lr": curve["direct_lr"]} if curve else None,
                }
            )
            rows.append(out)
    return rows


def diagnose(workload: str, betas, lr: float, batch: int, to_loss: float, examples: int, seed: int = 0) -> dict:
    """Why Eq 14 and the direct curve disagree on a real network: at one checkpoint, the direct curve on the
    measured per-example gradients against the direct curve on the same gradients with every coordinate's
    column shuffled independently across examples (same marginals, no correlation between coordinates:
    the independence Eq 36 assumes). If the shuffled curve's peak falls to Eq 14's B_noise, correlated
    gradient noise across coordinates is what moves the real peak."""
    import torch

    from surge.monitor.torch_grads import make_hvp, per_example_grads
    from surge.workloads import get_workload

    wl = get_workload(workload)
    torch.manual_seed(seed)
    model = wl.make_model()
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=tuple(betas))
    g = torch.Generator().manual_seed(seed)
    step, loss = 0, math.inf
    while loss > to_loss and step < 5000:
        idx = torch.randint(0, wl.num_train, (batch,), generator=g)
        out = wl.loss_fn(model(wl.train_inputs[idx]), wl.train_targets[idx])
        opt.zero_grad()
        out.backward()
        opt.step()
        step += 1
        if step % 5 == 0:
            with torch.no_grad():
                loss = float(wl.loss_fn(model(wl.probe_inputs), wl.probe_targets))
    model.eval()
    idx = torch.randperm(wl.num_train, generator=g)[:examples]
    x, y = wl.train_inputs[idx], wl.train_targets[idx]
    grads = per_example_grads(model, wl.loss_fn, x, y)[0].double().numpy()
    hvp = make_hvp(model, wl.loss_fn, x, y)
    grid = [float(2**k) for k in range(int(math.log2(examples // 2)) + 1)]
    kw = dict(batch_sizes=grid, n_draws=16, seed=seed)
    real = estimate_noise(grads, hvp, **kw)
    shuffled = np.random.default_rng(seed).permuted(grads, axis=0)
    indep = estimate_noise(shuffled, hvp, **kw)
    return {
        "workload": workload,
        "betas": list(betas),
        "lr": lr,
        "batch_size": batch,
        "step": step,
        "probe_loss": loss,
        "examples": examples,
        "n_params": real.n_params,
        "b_noise": real.b_noise,
        "b_noise_ci": real.b_noise_ci,
        "b_simple": real.b_simple,
        "validity_batch_size": real.validity_batch_size,
        "components": real.components,
        "batch_sizes": grid,
        "direct_lr": real.direct_lr,
        "direct_lr_ci": real.direct_lr_ci,
        "model_lr": real.model_lr,
        "direct_peak": real.direct_peak_batch_size,
        "shuffled_direct_lr": indep.direct_lr,
        "shuffled_direct_peak": indep.direct_peak_batch_size,
        "shuffled_b_noise": indep.b_noise,
        "theorem3_lr": real.lr_at(np.array(grid)),
    }


def figure(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({r["label"] for r in rows})
    fig, axes = plt.subplots(1, len(labels), figsize=(6 * len(labels), 4.3), squeeze=False)
    for ax, label in zip(axes[0], labels):
        rs = [r for r in rows if r["label"] == label]
        x = np.arange(len(rs))
        names = [f"{r['target_loss']:g}" for r in rs]

        def draw(key, ci_key, dx, fmt, lab, color):
            y = np.array([_f(r.get(key)) for r in rs])
            if ci_key:
                lo = np.array([_f(r.get(ci_key, [None, None])[0]) for r in rs])
                hi = np.array([_f(r.get(ci_key, [None, None])[1]) for r in rs])
                hi = np.where(np.isfinite(hi), hi, np.nan)
                err = [np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)]
                ax.errorbar(x + dx, y, yerr=err, fmt=fmt, color=color, capsize=3, label=lab)
            else:
                ax.plot(x + dx, y, fmt, color=color, label=lab)

        draw("sweep_b_noise", "sweep_b_noise_ci", -0.2, "s", "sweep, Eq 22", "k")
        draw("b_noise", "b_noise_ci", -0.07, "o", "in-run, Eq 14", "C0")
        draw("direct_peak_batch_size", None, 0.07, "D", "in-run, direct peak (Lemma 1)", "C3")
        draw("b_simple", "b_simple_ci", 0.2, "^", "in-run, B_simple", "C2")
        draw("validity_batch_size", None, 0.0, "_", "validity batch size", "0.4")
        ax.set_xticks(x, names)
        ax.set_xlabel("target probe loss")
        ax.set_yscale("log")
        ax.set_ylabel("batch size (examples)")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def diagnose_figure(d: dict, path: str) -> None:
    """The direct curve on the real gradients and on column-shuffled ones, with Eq 9 and Theorem 3."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = np.asarray(d["batch_sizes"], dtype=float)
    ci = np.asarray(d["direct_lr_ci"], dtype=float)
    y = np.asarray(d["direct_lr"], dtype=float)
    fig, ax = plt.subplots(figsize=(6.2, 4.3))
    ax.errorbar(
        b,
        y,
        yerr=[np.clip(y - ci[:, 0], 0, None), np.clip(ci[:, 1] - y, 0, None)],
        fmt="o-",
        capsize=3,
        label="direct (Lemma 1), measured gradients",
    )
    ax.plot(b, d["shuffled_direct_lr"], "s--", label="direct, coordinates shuffled independently")
    ax.plot(b, d["model_lr"], ":", label="exact Eq 9, measured statistics")
    ax.plot(b, d["theorem3_lr"], "-.", label=f"Theorem 3 (B_noise = {d['b_noise']:.2g})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size (examples)")
    ax.set_ylabel("optimal learning rate, one sign step")
    ax.set_title(f"{d['workload']}, sign descent, probe loss {d['probe_loss']:.2f} (step {d['step']})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--sweep", action="append")
    ap.add_argument("--measured", action="append")
    ap.add_argument("--figure")
    ap.add_argument("--diagnose", metavar="WORKLOAD")
    ap.add_argument("--betas", default="0,0")
    ap.add_argument("--lr", type=float, default=4.8e-3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--to-loss", type=float, default=0.8)
    ap.add_argument("--examples", type=int, default=512)
    ap.add_argument("--diagnose-json", help="draw --diagnose-figure from an earlier --diagnose --json output")
    ap.add_argument("--diagnose-figure")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.diagnose_json and args.diagnose_figure:
        diagnose_figure(json.load(open(args.diagnose_json))["diagnose"], args.diagnose_figure)
    out = {}
    if args.diagnose:
        out["diagnose"] = diagnose(
            args.diagnose,
            [float(b) for b in args.betas.split(",")],
            args.lr,
            args.batch_size,
            args.to_loss,
            args.examples,
        )
        if args.diagnose_figure:
            diagnose_figure(
                json.loads(json.dumps(out["diagnose"], default=lambda x: np.asarray(x).tolist())), args.diagnose_figure
            )
    if args.synthetic:
        out["synthetic"] = synthetic(args.seeds)
    sweeps, measured = _pair(args.sweep, "--sweep"), _pair(args.measured, "--measured")
    if sweeps:
        out["real"] = real(sweeps, measured)
        if args.figure:
            figure(out["real"], args.figure)
    if args.json:
        print(json.dumps(out, default=lambda x: np.asarray(x).tolist() if hasattr(x, "__len__") else None))
        return 0
    for r in out.get("synthetic", []):
        print(
            f"{r['problem']:>9} b={r['micro_batch_size']}: median rel err B_noise {r['median_rel_err_b_noise']}, eps_max "
            f"{r['median_rel_err_eps_max']}, B_simple {r['median_rel_err_b_simple']:.3f}; coverage {r['coverage_b_noise']:.2f} "
            f"{r['coverage_eps_max']:.2f} {r['coverage_b_simple']:.2f}; direct argmax {r['direct_argmax_within_one_step']:.2f}"
        )
    for r in out.get("real", []):
        print(json.dumps(r, default=lambda x: None))
    if "diagnose" in out:
        print(json.dumps(out["diagnose"], default=lambda x: np.asarray(x).tolist() if hasattr(x, "__len__") else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
