"""Grid sweeps over learning rate and batch size (the paper's Section 3 protocol), resumable.

spec (TOML or preset) -> plan (trial groups) -> executor (runs the engine) -> store (SQLite) -> DataFrame.

Nothing here imports torch; the executor imports the engine only when a group is about to train.
"""

from surge.records import OptimizerConfig
from surge.sweep.executor import RunSummary, SweepProgress, resolve_runner, run_sweep
from surge.sweep.plan import SweepPlan, Trial, TrialGroup, WorkloadInfo, plan_sweep, resolve_workload, trial_key
from surge.sweep.presets import PRESETS, Preset, get_preset, list_presets
from surge.sweep.spec import (
    BatchGrid,
    LRGrid,
    OptimizerSpec,  # the earlier name of OptimizerConfig, kept for one release
    SweepSpec,
    load_spec,
    spec_from_dict,
    spec_from_toml,
)
from surge.sweep.store import FRAME_COLUMNS, SweepStore

__all__ = [
    "FRAME_COLUMNS",
    "PRESETS",
    "BatchGrid",
    "LRGrid",
    "OptimizerConfig",
    "OptimizerSpec",
    "Preset",
    "RunSummary",
    "SweepPlan",
    "SweepProgress",
    "SweepSpec",
    "SweepStore",
    "Trial",
    "TrialGroup",
    "WorkloadInfo",
    "get_preset",
    "list_presets",
    "load_spec",
    "plan_sweep",
    "resolve_runner",
    "resolve_workload",
    "run_sweep",
    "spec_from_dict",
    "spec_from_toml",
    "trial_key",
]
