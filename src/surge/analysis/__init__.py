"""Sweep analysis: a store of trials -> optimal lr per batch size, S(B) / E(B), B_noise (Eq 22), eps_max
(Eq 23 / 24), the law comparison, whether the lr falls past B_noise, and B_noise against the target loss.

NumPy / SciPy / pandas only (no torch, no matplotlib). Typical use::

    from surge.analysis import load_store, analyze
    result = analyze(load_store("sweep.db"))
    for stage in result.stages:
        print(stage.target_loss, stage.b_noise, stage.eps_max["adam"], stage.best_law, stage.falls.verdict)

The figures are in :mod:`surge.plots.sweep_figures`, the report in :mod:`surge.report`.
"""

from surge.analysis._frame import CONFIG_COLUMNS, REQUIRED, configs, load_store, select_config, tidy_frame
from surge.analysis.analyze import analyze
from surge.analysis.results import (
    EPS_LAWS,
    AnalysisSettings,
    BatchOptimum,
    BNoiseTrend,
    DecreaseGrid,
    FallEvidence,
    StageAnalysis,
    SweepAnalysis,
)
from surge.analysis.synthetic import synthetic_frame, synthetic_laws, write_synthetic_store

__all__ = [
    "AnalysisSettings",
    "BatchOptimum",
    "BNoiseTrend",
    "CONFIG_COLUMNS",
    "DecreaseGrid",
    "EPS_LAWS",
    "FallEvidence",
    "REQUIRED",
    "StageAnalysis",
    "SweepAnalysis",
    "analyze",
    "configs",
    "load_store",
    "select_config",
    "synthetic_frame",
    "synthetic_laws",
    "tidy_frame",
    "write_synthetic_store",
]
