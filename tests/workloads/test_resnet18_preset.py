"""The ``resnet18-sign`` preset: Table 1's ResNet-18 row, grid values listed one by one."""

from __future__ import annotations

import numpy as np
import pytest

from surge.sweep import get_preset, list_presets
from surge.workloads import tiny_imagenet

# Table 1 prints lr 1e-4 .. 7.876e-4 step 7.65e-5 and batch 16 .. 376 step 33. Every other row is 10 lrs x
# 12 batch sizes, and the printed steps are the rounded spacings of such a grid (issue 11 item 13).
LRS = (1e-4, 1.764e-4, 2.528e-4, 3.292e-4, 4.056e-4, 4.82e-4, 5.584e-4, 6.348e-4, 7.112e-4, 7.876e-4)
BATCH_SIZES = (16, 49, 81, 114, 147, 180, 212, 245, 278, 311, 343, 376)


def test_grid_is_10_lrs_by_12_batch_sizes_whose_rounded_spacings_are_the_printed_steps():
    spec = get_preset("resnet18-sign")
    assert spec.lrs == pytest.approx(LRS, rel=1e-12)
    assert spec.batch_sizes == BATCH_SIZES
    assert float(f"{np.diff(spec.lrs).mean():.3g}") == pytest.approx(7.64e-5)  # printed (rounded up) as 7.65e-5
    assert round(np.diff(spec.batch_sizes).mean()) == 33
    assert (spec.lrs[0], spec.lrs[-1], spec.batch_sizes[0], spec.batch_sizes[-1]) == (1e-4, 7.876e-4, 16, 376)
    assert spec.n_trials == 10 * 12 * 100


def test_optimizer_rounds_targets_and_budget():
    spec = get_preset("resnet18-sign")
    assert spec.workload == "resnet18-tiny-imagenet"
    assert spec.optimizer.name == "adam" and spec.optimizer.betas == (0.0, 0.0)
    assert spec.rounds == 100
    # the workload's default targets and N, written out (the preset plans without torch or the data)
    assert spec.target_loss == tiny_imagenet.DEFAULT_TARGETS == (4.8, 4.4, 4.0)
    assert spec.extra_steps == tiny_imagenet.EXTRA_STEPS == 50
    assert spec.max_steps == 20_000 and spec.max_examples == 2_000_000
    assert "resnet18-sign" in [p.name for p in list_presets()]
