"""The training engine: functional optimizers, lockstep and plain-loop trainers, the trial protocol.

The engine knows nothing of stores, CLIs or executors: ``run_group(GroupConfig) -> list[TrialResult]``.
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
    lion,
    make_optimizer,
    sgd,
    signsgd,
)
from surge.engine.protocol import (
    STRATEGIES,
    DataOrder,
    GroupConfig,
    OptimizerConfig,
    StageResult,
    TrialResult,
    choose_strategy,
    probe_interval,
    resolve_workers,
    run_group,
    shutdown_workers,
)

__all__ = [
    "OPTIMIZERS",
    "STRATEGIES",
    "AdamState",
    "DataOrder",
    "FunctionalOptimizer",
    "GroupConfig",
    "MomentumState",
    "OptimizerConfig",
    "StageResult",
    "StepState",
    "TrialResult",
    "adam",
    "adamw",
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
