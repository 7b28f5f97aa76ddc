"""Workloads: IDX reading and the Fashion-MNIST layout, the offline MNIST sample, the registry."""

from __future__ import annotations

import gzip
import sys
import textwrap

import numpy as np
import pytest
import torch

from surge import workloads
from surge.engine import GroupConfig, OptimizerConfig, run_group
from surge.workloads import Workload, get_workload, list_workloads
from surge.workloads.data import (
    fashion_mnist_raw_dir,
    load_fashion_mnist,
    load_mnist_sample,
    probe_indices,
    read_idx,
    to_tensors,
    write_idx,
)
from surge.workloads.models import CNN5


@pytest.fixture(autouse=True)
def _fresh_cache():
    workloads.clear_cache()
    yield
    workloads.clear_cache()


def _write_fashion(root, n=40, gz=True, seed=0):
    """A miniature Fashion-MNIST in torchvision's raw layout, in the real IDX format."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    suffix = ".gz" if gz else ""
    write_idx(raw / f"train-images-idx3-ubyte{suffix}", images)
    write_idx(raw / f"train-labels-idx1-ubyte{suffix}", labels)
    return images, labels


def test_idx_bytes_are_the_standard_format(tmp_path):
    """Header written by hand from the format description: magic 0x00000803, then big-endian sizes."""
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28) % 251
    path = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + images.tobytes())
    assert np.array_equal(read_idx(path), images)
    labels = np.array([3, 1, 4], dtype=np.uint8)
    (tmp_path / "y").write_bytes(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + labels.tobytes())
    assert np.array_equal(read_idx(tmp_path / "y"), labels)
    write_idx(tmp_path / "z.gz", images)
    with gzip.open(tmp_path / "z.gz", "rb") as f:
        assert f.read(16) == b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x1c\x00\x00\x00\x1c"


def test_idx_errors(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x00\x01")
    with pytest.raises(ValueError, match="expected 5 data bytes for shape \\(5,\\), found 2"):
        read_idx(tmp_path / "short")
    (tmp_path / "type").write_bytes(b"\x00\x00\x07\x01" + (1).to_bytes(4, "big") + b"\x00")
    with pytest.raises(ValueError, match="unknown IDX data type 0x07"):
        read_idx(tmp_path / "type")


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_torchvision_raw_layout(tmp_path, gz):
    images, labels = _write_fashion(tmp_path, gz=gz)
    assert fashion_mnist_raw_dir(tmp_path) == tmp_path / "FashionMNIST" / "raw"
    x, y = load_fashion_mnist(tmp_path, download=False)
    assert np.array_equal(x, images) and np.array_equal(y, labels) and y.dtype == np.int64


def test_fashion_workload_from_files_trains(tmp_path):
    _write_fashion(tmp_path, n=64)
    wl = get_workload("cnn-fashion-mnist", data_dir=str(tmp_path))
    assert wl.train_inputs.shape == (64, 1, 28, 28) and wl.train_inputs.dtype == torch.float32
    assert len(wl.probe_inputs) == 64  # probe capped at the data size
    assert abs(float(wl.train_inputs.mean()) - (127.5 / 255 - 0.2860) / 0.3530) < 0.05
    res = run_group(
        GroupConfig(
            workload="cnn-fashion-mnist",
            optimizer=OptimizerConfig("adam"),
            batch_size=8,
            lrs=(1e-3, 3e-3),
            seeds=(0, 0),
            target_losses=(2.2,),
            extra_steps=2,
            max_steps=60,
            data_dir=str(tmp_path),
            workers=1,
        )
    )
    assert all(r.status == "ok" and r.stages[0].reached for r in res)


def test_fashion_mnist_missing_files_error(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST files missing in .*FashionMNIST/raw: train-images"):
        load_fashion_mnist(tmp_path, download=False)

    class Offline:
        def __init__(self, *a, **k):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)
    with pytest.raises(FileNotFoundError, match="could not be downloaded .*Put train-images-idx3-ubyte\\(.gz\\)"):
        load_fashion_mnist(tmp_path, download=True)


def test_mnist_sample_ships_offline():
    x, y = load_mnist_sample()
    assert x.shape == (5000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [500] * 10
    wl = get_workload("cnn-mnist-sample")
    assert wl.train_inputs.shape == (5000, 1, 28, 28) and len(wl.probe_inputs) == 1024
    assert wl.default_targets == (0.5, 0.4, 0.3) and wl.extra_steps == 10
    # the probe is a fixed subset of the training data
    idx = probe_indices(5000, 1024)
    assert torch.equal(wl.probe_inputs, wl.train_inputs[idx]) and torch.equal(idx, probe_indices(5000, 1024))


def test_offline_real_data_set_trains_to_its_targets():
    wl = get_workload("cnn-mnist-sample")
    res = run_group(
        GroupConfig(
            workload="cnn-mnist-sample",
            optimizer=OptimizerConfig("adam", betas=(0.9, 0.999)),
            batch_size=12,
            lrs=(5e-4, 1e-3),
            seeds=(0, 0),
            target_losses=wl.default_targets,
            extra_steps=wl.extra_steps,
            max_steps=1500,
            workers=1,
        )
    )
    for r in res:
        assert r.status == "ok" and r.strategy == "lockstep"
        assert all(s.reached for s in r.stages)
        assert [s.steps for s in r.stages] == sorted(s.steps for s in r.stages)
        assert r.stages[-1].loss_at_target <= 0.3


def test_cnn5_layout():
    model = CNN5()
    assert sum(p.numel() for p in model.parameters()) == 120_382
    assert [type(m).__name__ for m in model.children()] == ["Conv2d", "Conv2d", "Linear", "Linear", "Linear"]
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert model(torch.zeros(1, 28, 28)).shape == (10,)


# ---- registry -------------------------------------------------------------------------------------


def test_registry_lists_builtins():
    assert {"cnn-fashion-mnist", "cnn-mnist-sample"} <= set(list_workloads())
    assert "offline" in workloads.describe_workloads()["cnn-mnist-sample"]


def test_unknown_workload_lists_known_ones():
    with pytest.raises(ValueError, match="unknown workload 'mnist'; known: cnn-fashion-mnist, cnn-mnist-sample"):
        get_workload("mnist")


def test_user_workload_by_import_path(tmp_path, monkeypatch):
    (tmp_path / "my_surge_wl.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn
            from surge.workloads import Workload

            def make(data_dir=None):
                g = torch.Generator().manual_seed(0)
                x = torch.randn(64, 5, generator=g)
                y = (x[:, 0] > 0).long()
                return Workload(name="mine", make_model=lambda: nn.Linear(5, 2), train_inputs=x, train_targets=y,
                                probe_inputs=x[:16], probe_targets=y[:16], default_targets=(0.6,), extra_steps=2,
                                description=f"dir={data_dir}")

            INSTANCE = make()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    wl = get_workload("my_surge_wl:make", data_dir="/data/here")
    assert wl.name == "mine" and wl.description == "dir=/data/here"
    assert get_workload("my_surge_wl:INSTANCE").name == "mine"
    res = run_group(
        GroupConfig(
            workload="my_surge_wl:make",
            optimizer=OptimizerConfig("sgd", momentum=0.9),
            batch_size=4,
            lrs=(0.05, 0.1),
            seeds=(0, 1),
            target_losses=(0.6,),
            extra_steps=2,
            max_steps=200,
            workers=1,
        )
    )
    assert all(r.stages[0].reached for r in res)
    sys.modules.pop("my_surge_wl", None)


def test_user_workload_errors(monkeypatch):
    with pytest.raises(
        ValueError,
        match=r"workload 'no_such_pkg.mod:make': no module 'no_such_pkg' in the current folder .*--workload-path DIR",
    ):
        get_workload("no_such_pkg.mod:make")
    with pytest.raises(ValueError, match="module 'surge.workloads.models' has no attribute 'Nope'"):
        get_workload("surge.workloads.models:Nope")
    with pytest.raises(ValueError, match="a user workload is named 'package.module:attribute', got 'surge:'"):
        get_workload("surge:")
    with pytest.raises(TypeError, match="'surge:__version__' is a str; expected a surge.workloads.Workload"):
        get_workload("surge:__version__")
    with pytest.raises(TypeError, match="returned PosixPath; expected surge.workloads.Workload"):
        get_workload("surge.workloads.data:default_data_dir")


def test_workload_validation():
    x, y = torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)
    kw = dict(
        name="w",
        make_model=lambda: torch.nn.Linear(3, 2),
        train_inputs=x,
        train_targets=y,
        probe_inputs=x,
        probe_targets=y,
    )
    Workload(**kw)
    with pytest.raises(ValueError, match="default_targets must be strictly decreasing"):
        Workload(**kw, default_targets=(0.5, 0.5))
    with pytest.raises(
        ValueError, match="train_inputs and train_targets must be non-empty with equal lengths; got 4 and 3"
    ):
        Workload(**{**kw, "train_targets": y[:3]})
    with pytest.raises(TypeError, match="Workload.probe_inputs must be a torch.Tensor, got list"):
        Workload(**{**kw, "probe_inputs": [1, 2]})
    with pytest.raises(ValueError, match="Workload.batch_unit must be one of 'examples', 'tokens'"):
        Workload(**kw, batch_unit="sentences")
    with pytest.raises(ValueError, match="Workload.extra_steps must be >= 0"):
        Workload(**kw, extra_steps=-1)
    with pytest.raises(ValueError, match="workload names cannot contain ':'"):
        workloads.register_workload("a:b", lambda: None)


def test_to_tensors_normalises_into_new_memory_for_any_input_dtype():
    for dtype in (np.uint8, np.float32, np.float64):
        images = np.array([[[0, 255], [51, 102]]], dtype=dtype)
        before = images.copy()
        x, y = to_tensors(images, np.array([3]), 0.5, 0.25)
        np.testing.assert_array_equal(images, before)  # a float32 array was normalised in place
        expected = (before.astype(np.float64) / 255 - 0.5) / 0.25
        np.testing.assert_allclose(x.numpy()[:, 0], expected, rtol=1e-6)
        assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
