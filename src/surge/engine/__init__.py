"""The training engine: functional optimizers, lockstep and plain-loop trainers, the trial protocol.

The engine knows nothing of stores, CLIs or executors: ``run_group(GroupConfig) -> list[TrialRecord]``.
The records it takes and returns are defined in :mod:`surge.records` (torch-free) and re-exported here.
"""

from surge.engine._alloc import configure_allocator
from surge.engine.optim import (
    OPTIMIZERS,
    AdamState,
    FunctionalOptimizer,
    MomentumState,
    StepState,
    adam,
    adamw,
    build_optimizer,
    lion,
    make_optimizer,
    sgd,
    signsgd,
)
from surge.engine.protocol import (
    DataOrder,
    choose_strategy,
    probe_interval,
    resolve_workers,
    run_group,
    shutdown_workers,
)
from surge.records import STRATEGIES, GroupConfig, OptimizerConfig, StageRecord, TrialRecord

__all__ = [
    "OPTIMIZERS",
    "STRATEGIES",
    "AdamState",
    "DataOrder",
    "FunctionalOptimizer",
    "GroupConfig",
    "MomentumState",
    "OptimizerConfig",
    "StageRecord",
    "StepState",
    "TrialRecord",
    "adam",
    "adamw",
    "build_optimizer",
    "choose_strategy",
    "configure_allocator",
    "lion",
    "make_optimizer",
    "probe_interval",
    "resolve_workers",
    "run_group",
    "sgd",
    "shutdown_workers",
    "signsgd",
]
