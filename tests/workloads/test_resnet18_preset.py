"""The ``resnet18-sign`` preset: Table 1's ResNet-18 row, grid values listed one by one."""

from __future__ import annotations

import numpy as np

from surge.sweep import get_preset, list_presets
from surge.workloads import tiny_imagenet

# Table 1 prints lr 1e-4 .. 7.876e-4 step 7.65e-5 and batch 16 .. 376 step 33. Ranges include stop
# when it lies on the grid; neither does (1e-4 + 9 x 7.65e-5 = 7.885e-4 > 7.876e-4; 16 + 11 x 33 =
# 379 > 376), so each ends at the last point not past its stop.
LRS = (1e-4, 1.765e-4, 2.53e-4, 3.295e-4, 4.06e-4, 4.825e-4, 5.59e-4, 6.355e-4, 7.12e-4)
BATCH_SIZES = (16, 49, 82, 115, 148, 181, 214, 247, 280, 313, 346)


def test_grid_values_are_table_1_as_printed():
    spec = get_preset("resnet18-sign")
    assert spec.lrs == LRS
    assert spec.batch_sizes == BATCH_SIZES
    assert spec.lr.to_dict() == {"start": 1e-4, "stop": 7.876e-4, "step": 7.65e-5}
    assert spec.batch_size.to_dict() == {"start": 16, "stop": 376, "step": 33}
    assert np.allclose(np.diff(spec.lrs), 7.65e-5, rtol=1e-9, atol=0) and spec.lrs[-1] + 7.65e-5 > 7.876e-4
    assert set(np.diff(spec.batch_sizes)) == {33} and spec.batch_sizes[-1] + 33 > 376
    assert spec.n_trials == 9 * 11 * 100


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
