"""``surge sweep run|status|export|plan|advise|presets``: grid sweeps over learning rate and batch size.

Why one module of ~560 lines: the six commands share the spec/preset/store options and their checks; each
command is a thin layer over ``surge.sweep`` (spec, plan, store, executors) and ``surge.analysis.planner``,
and ``run`` alone is long because it wires the progress display, Ctrl-C/SIGTERM and the resume hint.
"""

from __future__ import annotations

import shlex
import signal
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from surge._validation import check_int
from surge.cli._output import LineProgress, console, emit_json, err_console, fmt
from surge.errors import SurgeError
from surge.sweep.presets import PRESETS, get_preset, list_presets
from surge.sweep.spec import SweepSpec, load_spec

app = typer.Typer(
    help="Grid sweeps of learning rate x batch size (the paper's Table 1), resumable.", no_args_is_help=True
)

SPEC = typer.Argument(
    None, metavar="SPEC.toml", help="Sweep spec, a TOML file (see docs/sweeps.md, 'The spec file').", show_default=False
)
PRESET = typer.Option(None, "--preset", "-p", help=f"A named sweep instead of a file: {', '.join(PRESETS)}.")
STORE = typer.Option(..., "--store", "-s", help="SQLite store file (created if missing).")
ROUNDS = typer.Option(None, "--rounds", help="Override the spec's number of rounds (seeds).")
JSON = typer.Option(False, "--json", help="Print one JSON object instead of tables.")
GPU_FRACTION = typer.Option(
    None,
    "--gpu-memory-fraction",
    help="On CUDA: the share of a GPU's memory a group may use (default 0.8); groups are cut to the lanes that fit.",
)
GPU_MEMORY = typer.Option(
    None,
    "--gpu-memory",
    metavar="GB",
    help="Size the groups for GPUs of this many GiB (default: "
    "this machine's GPU; needed when it has none, e.g. a Ray driver).",
)
GPUS_PER_GROUP = typer.Option(
    None,
    "--gpus-per-group",
    help="Ray: GPUs each group's task asks for (default 1 on CUDA; "
    "a fraction such as 0.25 lets groups share a GPU and its memory).",
)
WORKLOAD_PATH = typer.Option(
    None,
    "--workload-path",
    help="A folder to import a 'module:attribute' workload from, besides the current folder (repeat for several).",
)
DATA_DIR = typer.Option(
    None,
    "--data-dir",
    help="Where the workload finds (or downloads) its data (overrides the spec; "
    "default: $SURGE_DATA_DIR or ~/.cache/surge/data).",
)


def _add_workload_path(folders: list[Path] | None) -> None:
    """Put --workload-path folders on $SURGE_WORKLOAD_PATH, where this process and its workers look."""
    import os

    from surge.workloads import WORKLOAD_PATH_ENV

    for folder in folders or []:
        if not folder.is_dir():
            raise SurgeError(f"--workload-path {str(folder)!r} is not a folder")
    if folders:
        old = os.environ.get(WORKLOAD_PATH_ENV, "")
        os.environ[WORKLOAD_PATH_ENV] = os.pathsep.join([*(str(f.resolve()) for f in folders), *([old] if old else [])])


def _spec(
    spec_file: Path | None,
    preset: str | None,
    rounds: int | None,
    device: str | None = None,
    workload: str | None = None,
    data_dir: Path | None = None,
) -> SweepSpec:
    if (spec_file is None) == (preset is None):
        raise SurgeError(
            f"give a SPEC.toml file or --preset NAME (one of {', '.join(PRESETS)}), "
            f"not {'both' if spec_file else 'neither'}"
        )
    spec = load_spec(spec_file) if spec_file is not None else get_preset(preset)
    changes = {}
    if rounds is not None:
        changes["rounds"] = rounds
    if device is not None:
        changes["device"] = device
    if workload is not None:
        changes["workload"] = workload
    if data_dir is not None:
        changes["data_dir"] = str(data_dir)
    return spec.replace(**changes) if changes else spec


def _resume_command(
    spec_file, preset, store, rounds, device, workers, workload, data_dir=None, extra=(), workload_path=None
) -> str:
    parts = ["surge", "sweep", "run"]
    parts += [str(spec_file)] if spec_file is not None else ["--preset", preset]
    parts += ["--store", str(store)]
    if rounds is not None:
        parts += ["--rounds", str(rounds)]
    if device is not None:
        parts += ["--device", device]
    if workers != 1:
        parts += ["--workers", str(workers)]
    if workload is not None:
        parts += ["--workload", workload]
    if data_dir is not None:
        parts += ["--data-dir", str(data_dir)]
    parts += list(extra)
    for folder in workload_path or []:
        parts += ["--workload-path", str(folder)]
    return shlex.join(parts)


def _group_label(group) -> str:
    r = group.rounds
    rounds = f"round {r[0]}" if len(r) == 1 else f"rounds {r[0]}-{r[-1]}"
    return f"B={group.batch_size}, {rounds}, {len(group.trials)} trials"


def _raise_keyboard_interrupt(signum, frame):  # SIGTERM stops like Ctrl-C
    raise KeyboardInterrupt


@app.command("run")
def run(
    spec_file: Path | None = SPEC,
    preset: str | None = PRESET,
    store: Path = STORE,
    rounds: int | None = ROUNDS,
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or cuda:N (overrides the spec)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes, each training one group at a time."),
    workload: str | None = typer.Option(None, "--workload", help="Override the spec's workload (same grid)."),
    workload_path: list[Path] | None = WORKLOAD_PATH,
    data_dir: Path | None = DATA_DIR,
    retry_failed: bool = typer.Option(
        True, "--retry-failed/--no-retry-failed", help="Retrain trials whose earlier attempt failed."
    ),
    runner: str | None = typer.Option(
        None, "--runner", hidden=True, help="'package.module:attribute' trainer instead of surge.engine.run_group."
    ),
    executor: str = typer.Option(
        "local", "--executor", help="local (this machine's processes) or ray (a Ray cluster)."
    ),
    address: str | None = typer.Option(
        None,
        "--address",
        help="Ray: 'auto' (the cluster this machine joined), "
        "'ray://HOST:PORT' (Ray Client) or HOST:PORT; default: a Ray instance started here.",
    ),
    gpus_per_group: float | None = GPUS_PER_GROUP,
    cpus_per_group: float | None = typer.Option(
        None,
        "--cpus-per-group",
        help="Ray: CPUs each group's task asks for (default 1; the engine uses that many processes on the CPU).",
    ),
    max_retries: int | None = typer.Option(
        None, "--max-retries", help="Ray: reruns of a group whose worker died (default 3)."
    ),
    gpu_memory_fraction: float | None = GPU_FRACTION,
    gpu_memory: float | None = GPU_MEMORY,
    as_json: bool = JSON,
) -> None:
    """Train the sweep's pending trials into the store; rerun the same command to resume."""
    from surge.sweep.executor import run_sweep
    from surge.sweep.plan import plan_sweep

    _add_workload_path(workload_path)
    spec = _spec(spec_file, preset, rounds, device, workload, data_dir)
    check_int(workers, "--workers", minimum=1)
    if executor not in ("local", "ray"):
        raise SurgeError(f"--executor must be 'local' or 'ray', got {executor!r}")
    ray_flags = {
        "--address": address,
        "--gpus-per-group": gpus_per_group,
        "--cpus-per-group": cpus_per_group,
        "--max-retries": max_retries,
    }
    if executor == "local" and any(v is not None for v in ray_flags.values()):
        given = ", ".join(k for k, v in ray_flags.items() if v is not None)
        raise SurgeError(f"{given}: only with --executor ray")
    if executor == "ray" and workers != 1:
        raise SurgeError(
            f"--workers {workers}: with --executor ray the cluster's resources decide the parallelism; "
            f"use --cpus-per-group / --gpus-per-group"
        )
    plan = plan_sweep(spec)
    extra: list[str] = []
    if executor == "ray":
        extra += ["--executor", "ray"]
    for flag, value in [
        *ray_flags.items(),
        ("--gpu-memory-fraction", gpu_memory_fraction),
        ("--gpu-memory", gpu_memory),
    ]:
        if value is not None:
            extra += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    resume = _resume_command(
        spec_file, preset, store, rounds, device, workers, workload, data_dir, extra, workload_path
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("trials"),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        disable=as_json or not err_console.is_terminal,
        transient=False,
        speed_estimate_period=3600.0,
    )
    task = progress.add_task(spec.name, total=plan.n_trials, note="")
    # progress goes to stderr in every mode: plain lines where the bar cannot be drawn (--json, a log file)
    lines = LineProgress(f"sweep {spec.name}", plan.n_trials) if progress.disable else None

    def on_event(ev) -> None:
        running = ev.group_fraction * len(ev.group.trials) if ev.event == "step" and ev.group is not None else 0.0
        note = _group_label(ev.group) if ev.group is not None and ev.event in ("group_start", "step") else ""
        if ev.trials_failed:
            note = f"[red]{ev.trials_failed} failed[/red] " + note
        progress.update(task, completed=ev.trials_done + ev.trials_failed + running, note=note)
        if lines is not None and ev.event != "step":
            plain = f"{ev.trials_failed} failed" if ev.trials_failed else ""
            lines.update(ev.trials_done + ev.trials_failed, plain)

    old_term = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    except ValueError:  # not the main thread
        old_term = None
    try:
        with progress:
            summary = run_sweep(
                plan,
                store,
                runner=runner,
                workers=workers,
                progress=on_event,
                retry_failed=retry_failed,
                executor=executor,
                address=address,
                gpus_per_group=gpus_per_group,
                cpus_per_group=cpus_per_group,
                max_retries=max_retries,
                gpu_memory_fraction=gpu_memory_fraction,
                gpu_memory_gb=gpu_memory,
            )
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)

    result = {
        "store": summary.store,
        "sweep": summary.sweep,
        "total": summary.total,
        "skipped": summary.skipped,
        "ran": summary.ran,
        "ok": summary.ok,
        "diverged": summary.diverged,
        "failed": summary.failed,
        "done": summary.done,
        "failed_total": summary.failed_total,
        "pending": summary.pending,
        "interrupted": summary.interrupted,
        "wall_seconds": summary.wall_seconds,
        "resume": resume,
        "executor": executor,
    }
    if summary.interrupted:
        if as_json:
            emit_json(result)
        err_console.print(
            f"interrupted: {summary.done} of {summary.total} trials are done and "
            f"saved in {store}; the groups in training were dropped.",
            soft_wrap=True,
        )
        err_console.print(f"resume with: {resume}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(130)
    if as_json:
        emit_json(result)
        return
    console.print(
        f"sweep [bold]{summary.sweep}[/bold]: {summary.total} trials, {summary.done} done "
        f"({summary.skipped} from earlier runs); this run trained {summary.ran}: {summary.ok} ok, "
        f"{summary.diverged} diverged, {summary.failed} failed, in {fmt(summary.wall_seconds, 3)} s. Store: {store}"
    )
    if summary.done < summary.total:
        console.print(
            f"[yellow]{summary.total - summary.done} trials are not finished[/yellow] "
            f"({summary.failed_total} failed, with their error: "
            f"see 'surge sweep status --store {store}'); retry with: {resume}",
            highlight=False,
            soft_wrap=True,
        )


@app.command("status")
def status(store: Path = STORE, as_json: bool = JSON) -> None:
    """Progress of the store's sweeps: total, done, failed and pending trials, per batch size too."""
    from surge.sweep.store import SweepStore

    with SweepStore(store, create=False) as st:
        info = st.status()
        info["errors"] = st.failure_summary()
    if as_json:
        emit_json(info)
        return
    console.print(
        f"store {store}: {info['total']} trials, {info['done']} done ({info['ok']} ok, "
        f"{info['diverged']} diverged), {info['failed']} failed, {info['pending']} pending"
    )
    table = Table(title="per batch size")
    for col in ("batch size", "total", "done", "ok", "diverged", "failed", "pending"):
        table.add_column(col, justify="right")
    for row in info["by_batch_size"]:
        table.add_row(*(str(row[k]) for k in ("batch_size", "total", "done", "ok", "diverged", "failed", "pending")))
    console.print(table)
    for s in info["sweeps"]:
        console.print(
            f"sweep {s['name']!r} ({s['workload']}): {s['done']}/{s['total']} done, created "
            f"{s['created_at']}, last run {s['last_run_at']}",
            highlight=False,
        )
    for e in info["errors"]:
        console.print(f"[red]failed[/red] x{e['trials']}: {e['error']}", highlight=False)


@app.command("export")
def export(
    store: Path = STORE,
    out: Path = typer.Option(..., "--out", "-o", help="Output file: FILE.csv or FILE.parquet."),
    as_json: bool = JSON,
) -> None:
    """Write the store's trials as a tidy table, one row per (trial, target loss)."""
    from surge._validation import check_output_file
    from surge.sweep.store import SweepStore

    if out.suffix.lower() not in (".csv", ".parquet"):
        raise SurgeError(f"--out must end in .csv or .parquet, got {str(out)!r}")
    check_output_file(out)
    with SweepStore(store, create=False) as st:
        path = st.export(out)
        frame = st.trials_frame()
    info = {
        "out": str(path),
        "rows": len(frame),
        "trials": int(frame["trial_key"].nunique()),
        "columns": list(frame.columns),
    }
    if as_json:
        emit_json(info)
        return
    console.print(f"wrote {info['rows']} rows ({info['trials']} trials) to {path}", highlight=False, soft_wrap=True)


@app.command("plan")
def plan(
    spec_file: Path | None = SPEC,
    preset: str | None = PRESET,
    rounds: int | None = ROUNDS,
    workload: str | None = typer.Option(None, "--workload", help="Override the spec's workload (same grid)."),
    workload_path: list[Path] | None = WORKLOAD_PATH,
    data_dir: Path | None = DATA_DIR,
    device: str | None = typer.Option(
        None,
        "--device",
        help="cpu, cuda or cuda:N (overrides the spec); on CUDA the groups are sized to the GPU's memory.",
    ),
    gpu_memory_fraction: float | None = GPU_FRACTION,
    gpu_memory: float | None = GPU_MEMORY,
    gpus_per_group: float | None = GPUS_PER_GROUP,
    as_toml: bool = typer.Option(False, "--toml", help="Print the spec as TOML (a starting point for a file)."),
    as_json: bool = JSON,
) -> None:
    """Show the grid, the targets and the trial groups without training (a dry run)."""
    from surge.sweep.plan import plan_sweep

    _add_workload_path(workload_path)
    spec = _spec(spec_file, preset, rounds, device=device, workload=workload, data_dir=data_dir)
    if as_toml:
        print(spec.to_toml(), end="")
        return
    p = plan_sweep(spec, strict=False)
    sizing_note = None
    if spec.device.startswith("cuda") or gpu_memory is not None:
        if p.workload.unavailable:
            sizing_note = "GPU sizing needs the workload's model, which cannot load here"
        else:
            from surge.sweep.gpu_sizing import size_plan_for_device

            p = size_plan_for_device(
                p, memory_fraction=gpu_memory_fraction, gpu_memory_gb=gpu_memory, gpus_per_group=gpus_per_group
            )
    info = p.summary()
    info["by_batch_size"] = [
        {
            "batch_size": b,
            "trials": sum(len(g) for g in p.groups if g.batch_size == b),
            "groups": sum(1 for g in p.groups if g.batch_size == b),
        }
        for b in p.batch_sizes
    ]
    if as_json:
        emit_json(info)
        return
    o = spec.optimizer
    console.print(
        f"sweep [bold]{spec.name}[/bold]: workload {spec.workload} ({p.batch_unit} per batch), "
        f"{o.name} betas=({fmt(o.betas[0])}, {fmt(o.betas[1])}) eps={fmt(o.eps)}"
        + (f" weight_decay={fmt(o.weight_decay)}" if o.weight_decay else "")
        + (f" momentum={fmt(o.momentum)}" if o.momentum else ""),
        highlight=False,
    )
    console.print(f"learning rates ({len(p.lrs)}): {', '.join(fmt(x, 6) for x in p.lrs)}", highlight=False)
    console.print(f"batch sizes ({len(p.batch_sizes)}): {', '.join(str(b) for b in p.batch_sizes)}", highlight=False)
    console.print(
        f"rounds: {spec.rounds} (seeds {spec.seed}..{spec.seed + spec.rounds - 1}); target losses "
        f"({info['target_loss_source']}): {', '.join(fmt(t) for t in p.target_losses)}; N = {p.extra_steps} "
        f"extra steps; budget {spec.max_steps} steps"
        + (f" / {spec.max_examples} examples" if spec.max_examples else "")
        + f"; {spec.device}, {spec.dtype}, strategy {spec.strategy}",
        highlight=False,
    )
    if spec.protocol == "branch":
        t = spec.trunk
        console.print(
            f"protocol branch: a trunk (B = {t.batch_size}, lr {fmt(t.lr, 6)}, seed {t.seed}) is checkpointed "
            f"{p.extra_steps} steps after it first reaches each target; every trial trains {p.extra_steps} "
            f"steps from each checkpoint (optimizer state: {spec.branch_optimizer_state})",
            highlight=False,
        )
    table = Table(title=f"{p.n_trials} trials in {len(p.groups)} groups (at most {spec.group_size} trials each)")
    for col in ("batch size", "learning rates", "rounds", "trials", "groups"):
        table.add_column(col, justify="right")
    for row in info["by_batch_size"]:
        table.add_row(str(row["batch_size"]), str(len(p.lrs)), str(spec.rounds), str(row["trials"]), str(row["groups"]))
    console.print(table)
    if p.sizing is not None:
        z = p.sizing
        gtable = Table(
            title=f"GPU sizing: {fmt(z.gpu_bytes / 2**30, 4)} GiB ({z.source}) x {fmt(z.memory_fraction)}"
            + (f" x {fmt(z.gpus_per_group)} GPU per group" if z.gpus_per_group else "")
            + f" = {fmt(z.budget_bytes / 2**30, 4)} GiB per group"
        )
        for col in ("batch size", "strategy", "trials per group", "GiB per group", "groups", "why"):
            gtable.add_column(col, justify="right" if col != "why" else "left")
        for sz in z.sizes:
            gtable.add_row(
                str(sz.batch_size),
                sz.strategy,
                str(sz.max_lanes),
                fmt(sz.group_bytes / 2**30, 3),
                str(sum(1 for g in p.groups if g.batch_size == sz.batch_size)),
                sz.reason,
            )
        console.print(gtable)
    if sizing_note:
        console.print(f"[yellow]note:[/yellow] {sizing_note}", highlight=False)
    if p.workload.unavailable:
        console.print(
            f"[yellow]note:[/yellow] {p.workload.unavailable} (the plan uses the spec's targets; "
            f"'surge sweep run' needs the workload)",
            highlight=False,
        )


def _short_note(note: str) -> str:
    parts = [p.strip() for p in note.split(";") if p.strip()]
    return "; ".join("flat optimum" if p.startswith("flat optimum") else p for p in parts)


@app.command("advise")
def advise_cmd(
    store: Path = typer.Argument(..., metavar="PILOT_STORE", help="The store of a pilot sweep (a few rounds)."),
    width: float = typer.Option(1.5, "--width", help="Wanted width of the optimal-lr 95% intervals (hi/lo factor)."),
    b_noise_width: float = typer.Option(2.0, "--b-noise-width", help="Wanted width of the B_noise interval (factor)."),
    sweep: str | None = typer.Option(
        None, "--sweep", help="Use only the trials of this sweep (its name in the store)."
    ),
    config: str | None = typer.Option(
        None, "--config", help="The optimizer configuration, when the store has several."
    ),
    as_json: bool = JSON,
) -> None:
    """From a pilot sweep: the rounds that give the wanted interval widths, and the grid extensions it needs."""
    from surge.analysis.planner import advise
    from surge.sweep.store import SweepStore

    with SweepStore(store, create=False) as st:
        frame = st.trials_frame()
    if sweep is not None:
        names = sorted(frame["sweep"].dropna().unique())
        if sweep not in names:
            raise SurgeError(f"--sweep {sweep!r} is not in {str(store)!r}; it holds: {', '.join(names) or 'no trials'}")
        frame = frame[frame["sweep"] == sweep]
    if frame.empty:
        raise SurgeError(f"store {str(store)!r} holds no trials: run a pilot first")
    adv = advise(frame, width=width, b_noise_width=b_noise_width, config=config)
    if as_json:
        emit_json(adv.to_dict())
        return
    table = Table(title=f"Rounds for {width:g}x optimal-lr intervals and a {b_noise_width:g}x B_noise interval")
    for col in ("target loss", "estimate", "B", "value", "width now", "rounds now", "rounds needed", "note"):
        table.add_column(col, justify="right" if col != "note" else "left")
    for r in adv.rounds:
        table.add_row(
            fmt(r.target_loss),
            "optimal lr" if r.what == "optimal_lr" else "B_noise",
            "-" if r.batch_size is None else str(r.batch_size),
            fmt(r.estimate, 3),
            f"{r.width_now:.2f}x" if r.width_now == r.width_now else "-",
            str(r.rounds_now),
            "-" if r.rounds_needed is None else str(r.rounds_needed),
            _short_note(r.note),
        )
    console.print(table)
    for w in adv.warnings:
        console.print(f"[yellow]grid:[/yellow] {w}", highlight=False)
    lr_txt = "no basis (see the notes)" if adv.rounds_for_lr is None else str(adv.rounds_for_lr)
    bn_txt = "no basis (see the notes)" if adv.rounds_for_b_noise is None else str(adv.rounds_for_b_noise)
    console.print(
        f"rounds for {width:g}x optimal-lr intervals at every batch size: {lr_txt}; for a "
        f"{b_noise_width:g}x B_noise interval: {bn_txt}",
        highlight=False,
    )


@app.command("presets")
def presets(as_json: bool = JSON) -> None:
    """List the named sweeps."""
    items = [
        {"name": p.name, "description": p.description, "workload": p.spec().workload, "trials": p.spec().n_trials}
        for p in list_presets()
    ]
    if as_json:
        emit_json({"presets": items})
        return
    table = Table(title="presets (surge sweep plan --preset NAME --toml prints one as a spec file)")
    for col in ("name", "workload", "trials", "description"):
        table.add_column(col)
    for it in items:
        table.add_row(it["name"], it["workload"], str(it["trials"]), it["description"])
    console.print(table)
