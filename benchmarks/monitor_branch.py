"""The monitor's optimal-lr curve over batch size at a branch sweep's checkpoints, beside the measured one.

For each trunk checkpoint of a branch-protocol store (``surge.engine.branch``: the trunk's parameters at
each target loss), load the workload's model with those parameters, take ``--examples`` training examples
(a fixed seed), their per-example gradients and a Hessian-vector product on them, and run
``surge.monitor.estimate_noise(..., batch_sizes=...)``: the model-based curve ``model_lr`` (exact Eq 9
with the measured statistics) and the direct curve ``direct_lr`` (Lemma 1, Eq 6, on resampled batches of
the measured gradients; one sign step). Beside them the branch-measured optimal lr per batch size: the
fitted optimum of N = ``extra_steps`` steps from the same checkpoint with its bootstrap interval
(``surge.analysis.analyze(..., lr_estimate="fitted")``, rows' ``fitted_lr``, ``fitted_lr_ci``).

A one-step optimum and an N-step optimum differ in absolute scale, so the table also gives each curve
normalised at the smallest batch size where all of them exist (B = 4 when it does; its ratios): the shapes are what can be compared.

Usage::

    python benchmarks/monitor_branch.py [--store [LABEL=]STORE ...] [--examples 512] [--seed 0] [--n-draws 64]
                                        [--json] [--figure docs/monitor-branch.png]

Progress on stderr; the tables (or ``--json``) on stdout.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from surge.errors import SurgeError

DEFAULT_STORE = "/tmp/mb-sign/sweep.sqlite"


def curve_table(batch_sizes, branch_lr, branch_ci, model_lr, direct_lr, direct_ci, shuffled_lr=None) -> list[dict]:
    """One row per batch size: the three optimal-lr curves, raw and normalised at the first batch size.

    Parameters
    ----------
    batch_sizes : sequence of float, shape (k,)
        Batch sizes (examples), ascending.
    branch_lr : sequence of float, shape (k,)
        Branch-measured optimal lr (N-step fitted optimum) per batch size; NaN where missing.
    branch_ci : sequence of (low, high), shape (k, 2)
        Its interval.
    model_lr, direct_lr : sequence of float, shape (k,)
        The monitor's model-based (Eq 9) and direct (Lemma 1) one-step optimal lr.
    direct_ci : sequence of (low, high), shape (k, 2)
        The direct curve's pointwise interval.
    shuffled_lr : sequence of float, shape (k,), optional
        The direct curve on the same gradients with each coordinate's column shuffled independently
        across examples (same marginals, no correlation between coordinates); adds ``shuffled_lr`` and
        ``shuffled_ratio``.

    Returns
    -------
    list of dict
        Keys ``batch_size``, ``branch_lr``, ``branch_lr_ci``, ``model_lr``, ``direct_lr``,
        ``direct_lr_ci`` and the ratios ``branch_ratio``, ``model_ratio``, ``direct_ratio`` (each curve
        divided by its own value at the reference batch size ``ref_batch_size``: the smallest batch size
        at which every curve is finite and positive; its interval divided by the same point value:
        ``branch_ratio_ci``, ``direct_ratio_ci``). The ratios are NaN when no batch size has every curve.

    Raises
    ------
    SurgeError
        When the inputs have different lengths, or the batch sizes are empty or not strictly increasing.
    """
    b = np.asarray(batch_sizes, dtype=float)
    k = len(b)
    if k == 0:
        raise SurgeError("batch_sizes must not be empty")
    if np.any(np.diff(b) <= 0):
        raise SurgeError(f"batch_sizes must be strictly increasing, got {list(b)}")
    cols = {
        "branch_lr": np.asarray(branch_lr, dtype=float),
        "model_lr": np.asarray(model_lr, dtype=float),
        "direct_lr": np.asarray(direct_lr, dtype=float),
    }
    if shuffled_lr is not None:
        cols["shuffled_lr"] = np.asarray(shuffled_lr, dtype=float)
    cis = {
        "branch_lr_ci": np.asarray(branch_ci, dtype=float).reshape(-1, 2) if len(branch_ci) else np.zeros((0, 2)),
        "direct_lr_ci": np.asarray(direct_ci, dtype=float).reshape(-1, 2) if len(direct_ci) else np.zeros((0, 2)),
    }
    for name, arr in list(cols.items()) + list(cis.items()):
        if len(arr) != k:
            raise SurgeError(f"{name} has {len(arr)} entries, batch_sizes has {k}")

    stacked = np.array(list(cols.values()))
    ok = np.all(np.isfinite(stacked) & (stacked > 0), axis=0)
    ref = int(np.argmax(ok)) if ok.any() else 0
    scale = {name: float(v[ref]) if ok.any() else math.nan for name, v in cols.items()}
    rows = []
    for i in range(k):
        row = {"batch_size": float(b[i]), "ref_batch_size": float(b[ref])}
        for name, v in cols.items():
            row[name] = float(v[i])
            row[name.replace("_lr", "_ratio")] = float(v[i]) / scale[name]
        for name, v in cis.items():
            lr_name = name[: -len("_ci")]
            row[name] = (float(v[i, 0]), float(v[i, 1]))
            row[lr_name.replace("_lr", "_ratio") + "_ci"] = (
                float(v[i, 0]) / scale[lr_name],
                float(v[i, 1]) / scale[lr_name],
            )
        rows.append(row)
    return rows


def load_checkpoints(store: str) -> list[dict]:
    """The reached trunk checkpoints of a branch store: ``<store>.checkpoints/trunk-*.pt``.

    Returns dicts with ``target_loss``, ``step``, ``loss``, ``params`` (flat [P]), ``buffers``, ``file``,
    sorted by descending target loss. SurgeError when there is no checkpoint file.
    """
    import torch

    files = sorted(glob.glob(f"{store}.checkpoints/trunk-*.pt"))
    if not files:
        raise SurgeError(f"no trunk checkpoint found at {store}.checkpoints/trunk-*.pt (is --store a branch store?)")
    out = []
    for f in files:
        saved = torch.load(f, weights_only=False)
        for d in saved["checkpoints"]:
            if d["reached"]:
                out.append({**d, "file": f})
    return sorted(out, key=lambda d: -d["target_loss"])


def load_model(workload, params, buffers):
    """The workload's model with the flat parameters (``named_parameters`` order) and buffers, in eval mode."""
    import torch

    model = workload.make_model()
    named = list(model.named_parameters())
    size = sum(p.numel() for _, p in named)
    if params.numel() != size:
        raise SurgeError(f"checkpoint has {params.numel()} parameters, the model {size}")
    with torch.no_grad():
        start = 0
        for _, p in named:
            p.copy_(params[start : start + p.numel()].view_as(p))
            start += p.numel()
        own = dict(model.named_buffers())
        for name, value in (buffers or {}).items():
            own[name].copy_(value)
    return model.eval()


def measure(workload, checkpoint: dict, batch_sizes, *, examples: int, seed: int, n_draws: int, shuffled: bool):
    """``estimate_noise`` at one checkpoint on ``examples`` training examples drawn with ``seed``.

    Returns (estimate, shuffled estimate or None): the second on the same gradients with every
    coordinate's column permuted independently across examples (the independence Eq 36 assumes)."""
    import torch

    from surge.monitor import estimate_noise
    from surge.monitor.torch_grads import make_hvp, per_example_grads

    model = load_model(workload, checkpoint["params"], checkpoint["buffers"])
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(workload.train_inputs), generator=g)[:examples]
    x, y = workload.train_inputs[idx], workload.train_targets[idx]
    grads = per_example_grads(model, workload.loss_fn, x, y)[0].double().numpy()
    hvp = make_hvp(model, workload.loss_fn, x, y)
    est = estimate_noise(grads, hvp, batch_sizes=list(batch_sizes), n_draws=n_draws, seed=seed)
    if not shuffled:
        return est, None
    indep = np.random.default_rng(seed).permuted(grads, axis=0)
    return est, estimate_noise(indep, hvp, batch_sizes=list(batch_sizes), n_draws=n_draws, seed=seed)


def branch_rows(store: str):
    """Per target loss: {batch size: (fitted_lr, fitted_lr_ci)} from the branch analysis, and the spec's N."""
    from surge.analysis import analyze, load_store

    result = analyze(load_store(store), lr_estimate="fitted")
    return {
        float(s.target_loss): {
            int(r.batch_size): (float(r.fitted_lr), tuple(map(float, r.fitted_lr_ci))) for r in s.rows
        }
        for s in result.stages
    }


def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.3g}"


def _fmt_ci(ci) -> str:
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


def print_table(entry: dict) -> None:
    print(
        f"\n{entry['label']}, checkpoint target {entry['target_loss']:g}: trunk step {entry['step']}, probe loss {entry['probe_loss']:.4f}; "
        f"{entry['examples']} examples, {entry['n_params']} parameters; Eq 14 B_noise {_fmt(entry['b_noise'])} "
        f"{_fmt_ci(entry['b_noise_ci'])}, B_simple {_fmt(entry['b_simple'])}, validity B {_fmt(entry['validity_batch_size'])}"
    )
    shuf = "shuffled_lr" in entry["rows"][0]
    head = (
        f"{'B':>5} | {'branch lr (N steps) [95 %]':>30} | {'model lr':>9} | {'direct lr [95 %]':>29} | "
        + (f"{'shuffled':>9} | " if shuf else "")
        + f"{'ratio: branch':>13} {'model':>6} {'direct':>6}"
        + (f" {'shuffled':>8}" if shuf else "")
    )
    print(head)
    print("-" * len(head))
    for r in entry["rows"]:
        print(
            f"{r['batch_size']:>5g} | {_fmt(r['branch_lr']) + ' ' + _fmt_ci(r['branch_lr_ci']):>30} | {_fmt(r['model_lr']):>9} | "
            f"{_fmt(r['direct_lr']) + ' ' + _fmt_ci(r['direct_lr_ci']):>29} | "
            + (f"{_fmt(r['shuffled_lr']):>9} | " if shuf else "")
            + f"{_fmt(r['branch_ratio']):>13} {_fmt(r['model_ratio']):>6} {_fmt(r['direct_ratio']):>6}"
            + (f" {_fmt(r['shuffled_ratio']):>8}" if shuf else "")
        )


def draw(entries: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(entries), 2, figsize=(10, 3.8 * len(entries)), squeeze=False)
    for (ax_raw, ax_norm), e in zip(axes, entries):
        b = np.array([r["batch_size"] for r in e["rows"]])
        for ax, suffix, title in (
            (ax_raw, "lr", "optimal lr"),
            (ax_norm, "ratio", "normalised at B = %g" % e["rows"][0]["ref_batch_size"]),
        ):
            br = np.array([r[f"branch_{suffix}"] for r in e["rows"]])
            bci = np.array([r[f"branch_{suffix}_ci"] for r in e["rows"]])
            ax.errorbar(
                b,
                br,
                yerr=[np.clip(br - bci[:, 0], 0, None), np.clip(bci[:, 1] - br, 0, None)],
                fmt="o-",
                color="k",
                capsize=3,
                label=f"branch, N = {e['extra_steps']} steps (fitted, 95 %)",
            )
            dr = np.array([r[f"direct_{suffix}"] for r in e["rows"]])
            dci = np.array([r[f"direct_{suffix}_ci"] for r in e["rows"]])
            ax.plot(b, dr, "s-", color="C0", label="monitor direct (Lemma 1, one step)")
            ax.fill_between(b, dci[:, 0], dci[:, 1], color="C0", alpha=0.2)
            ax.plot(b, [r[f"model_{suffix}"] for r in e["rows"]], "^--", color="C3", label="monitor model-based (Eq 9)")
            if "shuffled_lr" in e["rows"][0]:
                ax.plot(
                    b,
                    [r[f"shuffled_{suffix}"] for r in e["rows"]],
                    "v:",
                    color="C2",
                    label="direct on column-shuffled gradients (independent coordinates)",
                )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("batch size B")
            ax.set_ylabel(title)
            ax.set_title(
                f"{e['label']}, target {e['target_loss']:g} (probe loss {e['probe_loss']:.3f}): {title}", fontsize=8
            )
        ax_raw.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def measure_store(label: str, store: str, args) -> list[dict]:
    """One entry (table) per analysed checkpoint of a branch store."""
    from surge.analysis import load_store
    from surge.workloads import get_workload

    frame = load_store(store)
    names = sorted(set(frame["workload"]))
    if len(names) != 1:
        raise SurgeError(f"the store must hold one workload, it holds {names}")
    extra = sorted({int(v) for v in frame["extra_steps"] if math.isfinite(v)}) if "extra_steps" in frame else []
    branch = branch_rows(store)
    workload = get_workload(names[0])
    entries = []
    for cp in load_checkpoints(store):
        rows_b = branch.get(float(cp["target_loss"]))
        if rows_b is None:
            continue
        bs = sorted(rows_b)
        bs_ok = [B for B in bs if B <= args.examples // 2]
        t0 = time.perf_counter()
        print(f"measuring at target {cp['target_loss']:g} (trunk step {cp['step']}) ...", file=sys.stderr)
        est, indep = measure(
            workload,
            cp,
            bs_ok,
            examples=args.examples,
            seed=args.seed,
            n_draws=args.n_draws,
            shuffled=not args.no_shuffled,
        )
        shuf = None if indep is None else dict(zip(bs_ok, indep.direct_lr))
        model = dict(zip(bs_ok, est.model_lr))
        direct = dict(zip(bs_ok, est.direct_lr))
        dci = dict(zip(bs_ok, map(tuple, est.direct_lr_ci)))
        rows = curve_table(
            bs,
            [rows_b[B][0] for B in bs],
            [rows_b[B][1] for B in bs],
            [model.get(B, math.nan) for B in bs],
            [direct.get(B, math.nan) for B in bs],
            [dci.get(B, (math.nan, math.nan)) for B in bs],
            None if shuf is None else [shuf.get(B, math.nan) for B in bs],
        )
        entries.append(
            {
                "label": label,
                "store": store,
                "target_loss": float(cp["target_loss"]),
                "step": int(cp["step"]),
                "probe_loss": float(cp["loss"]),
                "workload": names[0],
                "extra_steps": extra[0] if len(extra) == 1 else workload.extra_steps,
                "examples": est.n_examples,
                "n_params": est.n_params,
                "b_noise": est.b_noise,
                "b_noise_ci": tuple(est.b_noise_ci),
                "b_simple": est.b_simple,
                "b_simple_ci": tuple(est.b_simple_ci),
                "eps_max": est.eps_max,
                "validity_batch_size": est.validity_batch_size,
                "model_peak_batch_size": est.model_peak_batch_size,
                "direct_peak_batch_size": est.direct_peak_batch_size,
                "shuffled_peak_batch_size": None if indep is None else indep.direct_peak_batch_size,
                "n_draws": est.n_draws,
                "message": est.message,
                "seconds": time.perf_counter() - t0,
                "rows": rows,
            }
        )
        print(f"  done in {entries[-1]['seconds']:.1f} s", file=sys.stderr)
    return entries


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--store",
        action="append",
        help="[LABEL=]branch-protocol sweep store, repeatable (default %s)" % DEFAULT_STORE,
    )
    ap.add_argument("--examples", type=int, default=512, help="training examples measured (M)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the examples and of the estimator")
    ap.add_argument("--n-draws", type=int, default=64, help="resampled batches per batch size (direct curve)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--no-shuffled", action="store_true", help="skip the direct curve on column-shuffled gradients")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument("--figure", default=None, help="write the figure (PNG) here")
    args = ap.parse_args(argv)
    try:
        if args.examples < 16:
            raise SurgeError(f"--examples must be >= 16, got {args.examples}")
        import torch

        torch.set_num_threads(max(1, args.threads))
        entries = []
        for spec in args.store or [DEFAULT_STORE]:
            label, _, store = spec.rpartition("=")
            entries += measure_store(label or store, store, args)
        if not entries:
            raise SurgeError(f"no checkpoint of {args.store or [DEFAULT_STORE]} has an analysed stage")
        if args.figure:
            draw(entries, args.figure)
            print(f"figure: {args.figure}", file=sys.stderr)
        if args.json:
            print(
                json.dumps({"stores": args.store or [DEFAULT_STORE], "checkpoints": entries}, indent=1, default=float)
            )
        else:
            for e in entries:
                print_table(e)
        return 0
    except SurgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
