"""The prepared GPU check: everything to measure on one GPU, in at most 8 minutes, as one JSON object.

Steps (each with its own time limit, each reported even when it fails or runs out of time):

1. ``cuda_tests``: the CUDA tests (``pytest -k cuda``: the engine's GPU-against-CPU equality test, the
   GPU sizing tests).
2. ``engine``: ``benchmarks/engine.py --device cuda --quick``: the engine's lockstep group against a
   per-trial loop with fused Adam on the same GPU, trial-steps per second and their ratio at
   B = 1, 16, 256, and the lane counts that saturate the GPU (the smallest reaching 90 % of the best).
3. ``lane_memory``: the bytes per lane that GPU sizing estimates (parameters, optimizer state,
   activations counted on the "meta" device) against a lockstep step measured on the GPU, at B = 16
   and 256: the ratio says how far the estimate is off.
4. ``round``: one round of the ``cnn-small-batch`` preset (``surge sweep run --rounds 1 --device cuda``;
   on ``cnn-fashion-mnist`` when its data are there, else ``cnn-mnist-sample`` with the same grid), its
   wall time; stopped cleanly (SIGTERM) at its time limit, then the trials done say how far it got.

``--cpu`` runs the same steps on the CPU with small sizes (a dry run that the script works; its numbers
are not the GPU's). Progress goes to stderr; stdout gets the JSON object only.

Usage: ``bash benchmarks/gpu_check.sh [--cpu]`` or ``python benchmarks/gpu_check.py [--cpu] [--budget SECONDS]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUDGET = 470.0  # seconds for all steps (the check must end within 8 minutes, start-up included)
# time limits per step (GPU, --cpu), in seconds; the round gets what is left
LIMITS = {"cuda_tests": (90, 120), "engine": (170, 150), "lane_memory": (40, 60)}


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def _run(cmd: list[str], limit: float, *, stop_signal=signal.SIGKILL, grace: float = 30.0) -> dict:
    """Run ``cmd``; at ``limit`` seconds send ``stop_signal`` (then SIGKILL after ``grace``)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=max(1.0, limit))
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.send_signal(stop_signal)
        try:
            out, err = proc.communicate(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    return {
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "seconds": round(time.perf_counter() - start, 1),
        "stdout": out,
        "stderr": err,
    }


def _last_json(text: str):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def _tail(text: str, n: int = 600) -> str:
    return text[-n:] if text else ""


def step_info(device: str) -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_memory_gb=round(props.total_memory / 2**30, 2),
            gpus=torch.cuda.device_count(),
            cuda=torch.version.cuda,
        )
    return info


def step_cuda_tests(limit: float) -> dict:
    tests = ["tests/engine/test_protocol.py", "tests/sweep/test_gpu_sizing.py"]
    r = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda or gpu or sizing", *tests], limit
    )
    summary = r["stdout"].strip().splitlines()[-1] if r["stdout"].strip() else ""
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", summary)}
    return {
        "ok": r["returncode"] == 0,
        "summary": summary,
        "counts": counts,
        "seconds": r["seconds"],
        "timed_out": r["timed_out"],
        "output_tail": None if r["returncode"] == 0 else _tail(r["stdout"] + r["stderr"]),
    }


def step_engine(device: str, cpu: bool, limit: float) -> dict:
    args = [sys.executable, "benchmarks/engine.py", "--quick", "--json", "--no-round", "--device", device]
    args += (
        ["--batch-sizes", "4", "--lanes", "2,4"] if cpu else ["--batch-sizes", "1,16,256", "--lanes", "1,4,16,64,256"]
    )
    r = _run(args, limit)
    result = _last_json(r["stdout"])
    out = {"ok": r["returncode"] == 0 and result is not None, "seconds": r["seconds"], "timed_out": r["timed_out"]}
    if result is None:
        out["output_tail"] = _tail(r["stderr"])
        return out
    out.update(
        workload=result.get("workload"),
        gpu=result.get("gpu"),
        rows=result.get("rows"),
        saturation=result.get("saturation"),
    )
    if cpu:  # the CUDA baseline's code path, run on the CPU for a few steps (it must not crash)
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import engine as bench

        out["inprocess_baseline_trial_steps_per_s_cpu"] = round(
            bench.baseline_rate_cuda(result["workload"], None, 4, 2, "cpu"), 1
        )
    return out


def step_lane_memory(device: str, cpu: bool, workload: str) -> dict:
    from surge.sweep.gpu_sizing import lane_memory

    rows = []
    for b in (16, 256):
        est = lane_memory(workload, b)
        # what one lane of a lockstep step holds: parameters, gradient, optimizer state, activations
        step_bytes = (2 + est.optimizer_slots) * est.n_params * est.dtype_bytes + est.activation_bytes
        row = {
            "batch_size": b,
            "estimated_step_bytes": step_bytes,
            "estimated_activation_bytes": est.activation_bytes,
            "n_params": est.n_params,
        }
        if not cpu:
            from surge.engine.memory import measure_lane_bytes

            measured = measure_lane_bytes(workload, b, device=device)
            row["measured_step_bytes"] = measured
            row["measured_over_estimated"] = round(measured / row["estimated_step_bytes"], 3)
        rows.append(row)
    return {"ok": True, "workload": workload, "rows": rows}


def step_round(device: str, workload: str, limit: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "round.db"
        cmd = [
            sys.executable,
            "-m",
            "surge.cli.main",
            "sweep",
            "run",
            "--preset",
            "cnn-small-batch",
            "--rounds",
            "1",
            "--workload",
            workload,
            "--device",
            device,
            "--store",
            str(store),
            "--json",
        ]
        r = _run(cmd, limit, stop_signal=signal.SIGTERM)  # SIGTERM: the CLI stops like Ctrl-C and prints its JSON
    result = _last_json(r["stdout"])
    out = {
        "ok": result is not None,
        "seconds": r["seconds"],
        "timed_out": r["timed_out"],
        "workload": workload,
        "preset": "cnn-small-batch",
        "rounds": 1,
    }
    if result is None:
        out["output_tail"] = _tail(r["stderr"])
        return out
    out.update(
        complete=not result["interrupted"] and result["done"] == result["total"],
        trials=result["total"],
        trials_done=result["done"],
        failed=result["failed"],
        wall_seconds=round(result["wall_seconds"], 1),
    )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="a dry run on the CPU with small sizes (checks the script)")
    ap.add_argument("--budget", type=float, default=DEFAULT_BUDGET, help="seconds for all steps together")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    device = "cpu" if args.cpu else "cuda"
    column = 1 if args.cpu else 0
    report: dict = {"check": "surge-gpu-check", "mode": "cpu-dry-run" if args.cpu else "gpu"}
    try:
        report["info"] = step_info(device)
    except Exception as exc:  # noqa: BLE001 - torch missing: nothing else can run
        report["info"] = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(report))
        return 1
    if not args.cpu and not report["info"]["cuda_available"]:
        report["error"] = "CUDA is not available here; run with --cpu for a dry run"
        print(json.dumps(report))
        return 1
    from surge.workloads import get_workload

    try:
        get_workload("cnn-fashion-mnist")
        workload = "cnn-fashion-mnist"
    except Exception:  # noqa: BLE001 - no Fashion-MNIST files here: the offline MNIST sample
        workload = "cnn-mnist-sample"

    def left() -> float:
        return args.budget - (time.perf_counter() - started)

    steps = [
        ("cuda_tests", lambda lim: step_cuda_tests(lim)),
        ("engine", lambda lim: step_engine(device, args.cpu, lim)),
        ("lane_memory", lambda lim: step_lane_memory(device, args.cpu, workload)),
        ("round", lambda lim: step_round(device, workload, lim)),
    ]
    for name, fn in steps:
        limit = LIMITS[name][column] if name in LIMITS else left() - 35  # the round: what is left, minus its grace
        limit = min(limit, left() - 35)
        if limit < 10:
            report[name] = {"ok": False, "skipped": f"out of time ({left():.0f} s left)"}
            continue
        log(f"[gpu_check] {name} (limit {limit:.0f} s) ...")
        t0 = time.perf_counter()
        try:
            report[name] = fn(limit)
        except Exception as exc:  # noqa: BLE001 - one failed step does not stop the others
            report[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        log(f"[gpu_check] {name}: {'ok' if report[name].get('ok') else 'FAILED'} in {time.perf_counter() - t0:.0f} s")
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["ok"] = all(report[name].get("ok") for name, _ in steps)
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
