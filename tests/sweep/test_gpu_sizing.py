"""GPU-aware group sizes, on the CPU with a fake memory budget: which groups split, when the loop is
chosen, when nothing fits; the lane-memory estimate against a closed form; sizing through run_sweep
and `surge sweep plan`."""

from __future__ import annotations

import json

import pytest
import surge_sweep_fakes as fakes
from hypothesis import given
from hypothesis import strategies as st

from surge.errors import SurgeError, SurgeTypeError
from surge.sweep import BatchGrid, LRGrid, SweepSpec, plan_sweep, run_sweep
from surge.sweep.gpu_sizing import (
    DEFAULT_MEMORY_FRACTION,
    GIB,
    LaneMemory,
    memory_budget,
    size_group,
    size_plan,
    split_trials,
)

MIB = 2**20


def mem(batch_size, act_mib, *, params=1_000_000, slots=2, fixed_mib=100, replay=16):
    return LaneMemory(
        batch_size=batch_size,
        n_params=params,
        dtype_bytes=4,
        optimizer_slots=slots,
        activation_bytes=int(act_mib * MIB),
        fixed_bytes=fixed_mib * MIB,
        replay_lanes=replay,
    )


def brute_force_lockstep(m: LaneMemory, budget: int, cap: int) -> int:
    """Most lanes L <= cap whose peak fits: the main step (all lanes' state, gradient and activations) and
    a replay (all lanes' state plus min(L, R) replay lanes with their own state and step), written out."""
    P, d, k = m.n_params, m.dtype_bytes, m.optimizer_slots
    best = 0
    for L in range(1, cap + 1):
        params_opt_snapshot = L * (1 + k) * P * d * 2
        main_step = L * (P * d + m.activation_bytes)
        replay = min(L, m.replay_lanes) * ((1 + k) * P * d * 2 + P * d + m.activation_bytes)
        if params_opt_snapshot + max(main_step, replay) + m.fixed_bytes <= budget:
            best = L
    return best


@given(
    act=st.floats(0.01, 500),
    budget_mib=st.integers(150, 20_000),
    replay=st.integers(1, 16),
    slots=st.sampled_from([0, 1, 2]),
)
def test_lockstep_fit_equals_brute_force(act, budget_mib, replay, slots):
    m = mem(8, act, slots=slots, replay=replay)
    budget = budget_mib * MIB
    want = brute_force_lockstep(m, budget, 401)  # 401: past the cap of 400
    if want >= 2:
        size = size_group(m, budget, group_size=400)
        assert size.strategy == "lockstep" and min(size.fit_lanes, 401) == want and size.max_lanes == min(want, 400)
        assert size.group_bytes <= budget and m.lockstep_bytes(size.fit_lanes + 1) > budget
    else:  # lockstep cannot take 2 lanes: the loop, or nothing
        try:
            size = size_group(m, budget, group_size=400)
        except SurgeError:
            assert m.loop_bytes(1) > budget
        else:
            assert size.strategy == "loop" and size.max_lanes >= 1 and size.group_bytes <= budget


def test_which_groups_split_and_when_the_loop_is_chosen():
    # 4 lrs x 4 rounds x 4 batch sizes, group_size 8 (2 rounds of 4 lrs per group); a 2 GiB fake GPU at 0.8
    spec = SweepSpec(
        workload="fake",
        lr=LRGrid(values=(1e-3, 2e-3, 3e-3, 4e-3)),
        batch_size=BatchGrid(values=(1, 16, 256, 1024)),
        rounds=4,
        group_size=8,
        max_steps=100,
    )
    plan = plan_sweep(spec, workload=fakes.INFO)
    assert [len(g) for g in plan.groups] == [8] * 8
    # per lane: s = 6 x 4 MB = 22.9 MiB state, a = 3.8 MiB gradient + activations; fixed 100 MiB
    memory = {1: mem(1, 1), 16: mem(16, 60), 256: mem(256, 150), 1024: mem(1024, 4000)}
    budget = memory_budget(2 * GIB)
    assert budget == int(2 * GIB * DEFAULT_MEMORY_FRACTION)
    with pytest.raises(
        SurgeError,
        match=r"batch size 1024: one lane needs 4.05 GiB \(3.91 GiB of activations\), "
        r"the GPU budget is 1.60 GiB",
    ):
        size_plan(plan, memory, 2 * GIB)
    memory[1024] = mem(1024, 1300)  # one lane fits, two do not: the loop
    sized = size_plan(plan, memory, 2 * GIB)
    by_b = {s.batch_size: s for s in sized.sizing.sizes}
    assert (by_b[1].strategy, by_b[1].max_lanes) == ("lockstep", 8) and by_b[1].fit_lanes > 8  # capped: no split
    assert (by_b[16].strategy, by_b[16].max_lanes) == ("lockstep", 8)
    assert by_b[256].strategy == "lockstep" and 2 <= by_b[256].max_lanes < 8  # split
    assert by_b[1024].strategy == "loop" and by_b[1024].max_lanes >= 8 and "loop" in by_b[1024].reason
    for b, size in by_b.items():
        brute = brute_force_lockstep(memory[b], budget, 400)
        assert size.fit_lanes == brute or size.strategy == "loop"
    # every trial once, in order; parts within the size; the strategy rides on the group and its config
    assert [t.key for g in sized.groups for t in g.trials] == [t.key for g in plan.groups for t in g.trials]
    assert [g.index for g in sized.groups] == list(range(len(sized.groups)))
    for g in sized.groups:
        assert len(g) <= by_b[g.batch_size].max_lanes and g.strategy == by_b[g.batch_size].strategy
        assert g.rounds == tuple(sorted({t.round for t in g.trials}))
    split = [g for g in sized.groups if g.batch_size == 256]
    assert len(split) == 2 * -(-8 // by_b[256].max_lanes)  # each of the 2 groups of B = 256 in ceil(8 / L) parts
    info = sized.summary()["gpu_sizing"]
    assert info["budget_gb"] == pytest.approx(1.6) and [r["strategy"] for r in info["by_batch_size"]] == [
        "lockstep",
        "lockstep",
        "lockstep",
        "loop",
    ]


def test_fractional_gpus_share_the_memory_and_a_forced_lockstep_refuses():
    assert memory_budget(80 * GIB, 0.5, 0.25) == 10 * GIB
    assert memory_budget(80 * GIB, None, 2) == int(64 * GIB)  # more than one GPU: the lanes live on one
    m = mem(64, 800)
    whole, quarter = (
        size_group(m, memory_budget(40 * GIB), 100),
        size_group(m, memory_budget(40 * GIB, None, 0.25), 100),
    )
    assert whole.max_lanes > quarter.max_lanes >= 2
    with pytest.raises(
        SurgeError,
        match=r"strategy 'lockstep' at batch size 64: 2 lanes need 1.76 GiB, the "
        r"budget is 1.60 GiB; use strategy 'auto' or 'loop'",
    ):
        size_group(m, memory_budget(2 * GIB), 100, strategy="lockstep")
    loop = size_group(mem(64, 100), memory_budget(2 * GIB), 100, strategy="loop")
    assert loop.strategy == "loop" and loop.reason.startswith("strategy 'loop'")


@pytest.mark.parametrize("fraction", [0, 1.5, -0.1])
def test_bad_memory_fraction(fraction):
    with pytest.raises(SurgeError, match=r"gpu_memory_fraction must be in \(0, 1\], got"):
        memory_budget(GIB, fraction)
    with pytest.raises(SurgeTypeError, match=r"gpu_memory_fraction must be a real number, got True"):
        memory_budget(GIB, True)


@given(n=st.integers(1, 300), cap=st.integers(1, 64))
def test_split_trials_is_near_equal_and_in_order(n, cap):
    parts = split_trials(tuple(range(n)), cap)
    assert [x for p in parts for x in p] == list(range(n))
    assert max(map(len, parts)) <= cap and max(map(len, parts)) - min(map(len, parts)) <= 1
    assert len(parts) == -(-n // cap)


def test_saved_activation_bytes_of_a_tiny_mlp_match_the_closed_form():
    """Linear(8, 16) - Tanh - Linear(16, 1), MSE: autograd keeps the input [B, 8], the tanh output
    [B, 16] (shared by tanh and the second linear), the prediction and the target [B, 1]: 104 B bytes."""
    torch = pytest.importorskip("torch")
    import surge_sweep_tiny_workload as tiny

    from surge.engine.memory import _saved_bytes, activation_bytes, lane_facts
    from surge.engine.trainer import _seeded_model

    wl = tiny.workload()
    for n in (1, 10, 64):
        meta = _saved_bytes(_seeded_model(wl, 0).to("meta"), wl, n, torch.float32, "meta")
        cpu = _saved_bytes(_seeded_model(wl, 0), wl, n, torch.float32, "cpu")
        assert meta == cpu == (104 * n, 64 * n)
    assert activation_bytes(wl, 100) == (104 * 100 + 2 * 64 * 100, "meta")
    facts = lane_facts(wl, 100, dtype="float64")
    assert facts["n_params"] == 8 * 16 + 16 + 16 + 1 and facts["dtype_bytes"] == 8
    assert facts["activation_bytes"] == 2 * (104 + 128) * 100
    for call in (lambda: lane_facts(wl, 100, dtype="bfloat16"), lambda: activation_bytes(wl, 100, dtype="f32")):
        with pytest.raises(SurgeError, match="dtype must be one of 'float32', 'float64'; got"):
            call()  # was a bare KeyError


def test_sizing_through_run_sweep_on_cpu_with_a_fake_gpu(tmp_path):
    """device 'cuda' with a given GPU size: the groups are cut before training; the runner (a fake: no GPU
    here) sees each group's forced strategy, and the store gets every trial once."""
    pytest.importorskip("torch")
    from surge.engine.memory import lane_facts
    from surge.sweep.gpu_sizing import lane_memory

    spec = SweepSpec(
        workload="surge_sweep_tiny_workload:workload",
        lr=LRGrid(values=(1e-2, 2e-2, 3e-2)),
        batch_size=BatchGrid(values=(4, 32)),
        rounds=4,
        group_size=12,
        max_steps=50,
        device="cuda",
    )
    plan = plan_sweep(spec)
    m = lane_memory(spec.workload, 4)
    facts = lane_facts(spec.workload, 4)
    assert (m.n_params, m.activation_bytes, m.fixed_bytes) == (
        facts["n_params"],
        facts["activation_bytes"],
        facts["fixed_bytes"],
    )
    # a GPU whose budget leaves room for exactly 5 lockstep lanes at B = 4 beyond the fixed bytes
    budget = m.lockstep_bytes(5)
    gpu_gb = (budget + 1) / DEFAULT_MEMORY_FRACTION / GIB
    seen = []

    def runner(config, *, progress=None):
        seen.append((config.batch_size, config.strategy, len(config.lrs), config.device))
        return fakes.run_group(config, progress=progress)

    summary = run_sweep(plan, tmp_path / "s.db", runner=runner, gpu_memory_gb=gpu_gb)
    assert summary.ran == 24 and summary.failed == 0
    at4 = [s for s in seen if s[0] == 4]
    assert all(s[1] == "lockstep" and s[3] == "cuda" for s in at4)
    assert sorted(s[2] for s in at4) == [4, 4, 4]  # 12 trials, at most 5 lanes: 3 near-equal groups
    assert sum(s[2] for s in seen) == 24
    with pytest.raises(SurgeError, match=r"gpu_memory_gb must be > 0, got -1.0"):
        run_sweep(plan, tmp_path / "t.db", runner=runner, gpu_memory_gb=-1)


def test_sweep_plan_prints_the_sizes(capsys):
    pytest.importorskip("torch")
    from surge.cli.main import main

    code = main(
        ["sweep", "plan", "--preset", "smoke", "--rounds", "4", "--device", "cuda", "--gpu-memory", "1.3", "--json"]
    )
    assert code in (0, None)
    info = json.loads(capsys.readouterr().out)
    sizing = info["gpu_sizing"]
    assert sizing["gpu_memory_gb"] == 1.3 and sizing["gpu_memory_fraction"] == DEFAULT_MEMORY_FRACTION
    rows = {r["batch_size"]: r for r in sizing["by_batch_size"]}
    assert set(rows) == {4, 16, 64} and all(r["group_bytes"] <= r["budget_bytes"] for r in rows.values())
    assert info["groups"] == sum(-(-12 // rows[b]["max_lanes"]) for b in rows)  # 12 trials per batch size
    code = main(["sweep", "plan", "--preset", "smoke", "--device", "cuda", "--gpu-memory", "0.5"])
    assert code == 2
    assert "one lane needs" in capsys.readouterr().err
