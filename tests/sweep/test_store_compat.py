"""A store written by surge 0.1.0 (before the records moved to surge.records) is read as it was."""

import shutil
from pathlib import Path

import pytest

from surge.analysis import analyze, load_store
from surge.sweep import FRAME_COLUMNS, SweepStore

OLD = Path(__file__).resolve().parents[1] / "data" / "store_v0_1_0.sqlite"  # synthetic_frame, 3 rounds, 2 stages


@pytest.fixture
def old_store(tmp_path):
    path = tmp_path / "old.sqlite"
    shutil.copy(OLD, path)  # opening a store may write its WAL next to it
    return path


def test_an_old_store_reads_and_resumes(old_store):
    with SweepStore(old_store, create=False) as store:
        frame = store.trials_frame()
        status = store.status()
    assert list(frame.columns) == list(FRAME_COLUMNS)
    assert len(frame) == 918 and set(frame["status"]) <= {"ok", "diverged"}
    assert status["total"] == status["done"] == 459 and status["pending"] == 0


def test_an_old_store_analyses_to_its_truth(old_store):
    result = analyze(load_store(old_store), n_boot=200)
    first = result.stage(2.0)
    assert first.b_noise == pytest.approx(64, rel=0.1)  # the synthetic truth at target 2
    assert first.eps_max["adam"] == pytest.approx(1e-3, rel=0.2)
