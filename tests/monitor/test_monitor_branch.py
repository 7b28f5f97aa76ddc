"""benchmarks/monitor_branch.py: the table's normalisation (pure function, synthetic inputs; nothing trains)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from surge.errors import SurgeError

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "monitor_branch.py"
_spec = importlib.util.spec_from_file_location("monitor_branch", _PATH)
mb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mb)

B = [4.0, 16.0, 64.0, 256.0]


def test_ratios_are_each_curve_over_its_own_first_value():
    branch = [1e-4, 2e-4, 3e-4, 3.5e-4]
    bci = [(0.8e-4, 1.3e-4), (1.5e-4, 2.5e-4), (2.8e-4, 3.3e-4), (3e-4, 4e-4)]
    model = [2e-3, 1e-3, 5e-4, 4e-4]
    direct = [2e-4, 3e-4, 4e-4, 5e-4]
    dci = [(1e-4, 3e-4), (2.5e-4, 3.5e-4), (3.5e-4, 4.5e-4), (4.5e-4, 5.5e-4)]
    shuffled = [5e-4, 4e-4, 3e-4, 2e-4]
    rows = mb.curve_table(B, branch, bci, model, direct, dci, shuffled)
    assert [r["batch_size"] for r in rows] == B
    for i, r in enumerate(rows):
        assert r["branch_ratio"] == pytest.approx(branch[i] / branch[0], rel=1e-12)
        assert r["model_ratio"] == pytest.approx(model[i] / model[0], rel=1e-12)
        assert r["direct_ratio"] == pytest.approx(direct[i] / direct[0], rel=1e-12)
        assert r["shuffled_ratio"] == pytest.approx(shuffled[i] / shuffled[0], rel=1e-12)
        # an interval is scaled by its curve's point value at the first batch size, not by its own end
        assert r["branch_ratio_ci"] == pytest.approx((bci[i][0] / branch[0], bci[i][1] / branch[0]), rel=1e-12)
        assert r["direct_ratio_ci"] == pytest.approx((dci[i][0] / direct[0], dci[i][1] / direct[0]), rel=1e-12)
        assert r["branch_lr_ci"] == bci[i] and r["direct_lr"] == direct[i]
    assert rows[0]["branch_ratio"] == rows[0]["model_ratio"] == rows[0]["direct_ratio"] == 1.0
    assert all(r["ref_batch_size"] == 4.0 for r in rows)
    # scale-free: multiplying one curve by a constant leaves its ratios unchanged
    again = mb.curve_table(B, np.array(branch) * 7.0, np.array(bci) * 7.0, model, direct, dci)
    assert [r["branch_ratio"] for r in again] == pytest.approx([r["branch_ratio"] for r in rows], rel=1e-12)
    assert "shuffled_lr" not in again[0]


def test_reference_is_the_first_batch_size_where_every_curve_exists():
    nan = math.nan
    branch = [nan, 2e-4, 3e-4, 4e-4]
    rows = mb.curve_table(
        B, branch, [(nan, nan)] * 4, [1e-3, 2e-3, 4e-3, 8e-3], [1e-4, 2e-4, 3e-4, 4e-4], [(nan, nan)] * 4
    )
    assert all(r["ref_batch_size"] == 16.0 for r in rows)
    assert math.isnan(rows[0]["branch_ratio"])
    assert [r["branch_ratio"] for r in rows[1:]] == pytest.approx([1.0, 1.5, 2.0], rel=1e-12)
    assert [r["model_ratio"] for r in rows] == pytest.approx([0.5, 1.0, 2.0, 4.0], rel=1e-12)
    # no batch size with every curve: NaN ratios, not an error
    none = mb.curve_table(B, [nan] * 4, [(nan, nan)] * 4, [1e-3] * 4, [1e-4] * 4, [(nan, nan)] * 4)
    assert all(math.isnan(r["model_ratio"]) and math.isnan(r["branch_ratio"]) for r in none)


def test_bad_input_names_the_argument():
    good = dict(
        branch_lr=[1.0] * 4,
        branch_ci=[(1.0, 2.0)] * 4,
        model_lr=[1.0] * 4,
        direct_lr=[1.0] * 4,
        direct_ci=[(1.0, 2.0)] * 4,
    )
    with pytest.raises(SurgeError, match="model_lr has 3 entries, batch_sizes has 4"):
        mb.curve_table(B, **{**good, "model_lr": [1.0] * 3})
    with pytest.raises(SurgeError, match="strictly increasing"):
        mb.curve_table([4.0, 4.0, 16.0, 64.0], **good)
    with pytest.raises(SurgeError, match="must not be empty"):
        mb.curve_table([], [], [], [], [], [])
