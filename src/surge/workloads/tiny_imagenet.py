"""The ``resnet18-tiny-imagenet`` workload: torchvision's ResNet-18 on Tiny-ImageNet (the paper's Figure 3).

**Data.** Tiny-ImageNet in its standard folder layout, ``<data_dir>/tiny-imagenet-200/``: ``wnids.txt``
(the 200 class ids; a class's label is its line number), ``train/<wnid>/images/*.JPEG`` (500 per
class) and ``val/val_annotations.txt`` with ``val/images/``. When that folder is missing and
``download`` is on, the archive is fetched from :data:`TINY_IMAGENET_URL`, its digest checked, and
unpacked there; ``data_dir`` may also name the ``tiny-imagenet-200`` folder itself. ``data_dir``
defaults to ``$SURGE_DATA_DIR`` or ``~/.cache/surge/data`` (as for Fashion-MNIST). Decoding the
100,000 JPEGs takes ~15 s, so the decoded ``uint8 [n, 3, 64, 64]`` array (1.2 GB) is saved beside the
data (``tiny-imagenet-200/surge-cache/``) and memory-mapped on later loads: the engine's worker
processes share its pages instead of holding a copy each.

**Model.** :class:`TinyImageNetResNet18` is torchvision's ``resnet18(num_classes=200)`` unchanged,
7x7/stride-2 stem and max-pool included (see its docstring for why), behind a fixed input
normalisation, so the workload's inputs stay ``uint8`` and a batch is just an index into them.

Why one module of ~480 lines: download, checksum, folder reading and the decoded cache are one data pipeline
for one workload; about 220 lines are code, the rest docstrings.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from surge._validation import check_choice
from surge.errors import InputFileError, SurgeError
from surge.workloads import Workload
from surge.workloads.data import default_data_dir, probe_indices

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_ZIP = "tiny-imagenet-200.zip"
TINY_IMAGENET_FOLDER = "tiny-imagenet-200"
# The archive's published digest (an MD5: the one the data set's loaders check, e.g. in the
# `tinyimagenet` package); no SHA-256 of it is published. ``download_tiny_imagenet`` takes any hashlib
# algorithm, so a SHA-256 can be given once it is known.
TINY_IMAGENET_CHECKSUM = ("md5", "90528d7ca1a48142e341f4ef8d21d0de")
# Per-channel mean and std of the training images as published with common Tiny-ImageNet loaders
# (not re-measured here); they only centre and scale the inputs.
TINY_IMAGENET_MEAN = (0.4802, 0.4481, 0.3975)
TINY_IMAGENET_STD = (0.2770, 0.2691, 0.2821)
NUM_CLASSES = 200
IMAGE_SIZE = 64
SPLITS = ("train", "val")
CACHE_FOLDER = "surge-cache"
CACHE_VERSION = 1  # bump when the decoded layout changes

EPOCH_SIZE = 10_000  # the paper: "in each epoch we train the model with random 10k samples"
PROBE_SIZE = 1024  # probe examples (a fixed subset of the training set)
EXTRA_STEPS = 50  # N, the paper's for ResNet-18
# Target probe losses (initial loss ~ln 200 = 5.3); chosen from the usual ResNet-18 / Tiny-ImageNet
# curves, not measured on the data (unavailable where this was written): re-measure with the real data.
DEFAULT_TARGETS = (4.8, 4.4, 4.0)
# Strategy "auto" on the CPU: lockstep up to this batch size. 0 = never: measured with
# benchmarks/workloads.py (4 trials, one thread), lockstep/loop trial-steps/s is 0.93 at B = 1, 0.84
# at B = 2, 0.83 at B = 4, 0.71-0.77 at B = 16, 0.69-0.70 at B = 32; ResNet-18's step is compute-bound
# at every batch size and vmap's grouped convolutions run below the plain ones. CUDA: always lockstep.
LOCKSTEP_MAX_BATCH = 0


# ---- model -----------------------------------------------------------------------------------------


class TinyImageNetResNet18(nn.Module):
    """torchvision's ResNet-18 for 200 classes (``self.net``), taking ``uint8`` images ``[B, 3, 64, 64]``.

    The 7x7/stride-2 stem and the max-pool are kept (feature maps 16, 8, 4, 2 pixels wide), not the
    3x3/stride-1 stem often used for 64x64 inputs: the paper names a plain "ResNet-18 model" with no
    change, and the small-image stem costs 15x the arithmetic (2.2 against 0.15 GMAC per image), a
    factor that every one of the preset's 9,900 trials would pay. The loss-versus-batch-size behaviour
    under study does not need the last points of accuracy.

    The inputs are cast to the parameters' dtype and normalised per channel with constants held as
    plain floats, not buffers, so that the model's only buffers are BatchNorm's running statistics
    (which the engine keeps per trial). torchvision is imported here, not with :mod:`surge.workloads`.

    Args:
        mean: per-channel (R, G, B) mean of the training images on the 0..1 scale.
        std: per-channel (R, G, B) standard deviation on the 0..1 scale, > 0.

    Raises:
        ImportError: torchvision is not installed.
    """

    def __init__(
        self, mean: tuple[float, ...] = TINY_IMAGENET_MEAN, std: tuple[float, ...] = TINY_IMAGENET_STD
    ) -> None:
        super().__init__()
        from torchvision.models import resnet18

        self.net = resnet18(num_classes=NUM_CLASSES)
        self.pixel_mean = tuple(255.0 * float(m) for m in mean)  # on the 0..255 scale of the inputs
        self.pixel_std = tuple(255.0 * float(s) for s in std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of a batch of images.

        Args:
            x: tensor ``[B, 3, 64, 64]`` of pixel values on the 0..255 scale (``uint8`` or any dtype);
                cast to the parameters' dtype and normalised per channel here.

        Returns:
            torch.Tensor ``[B, 200]`` of unnormalised logits.
        """
        x = x.to(self.net.conv1.weight.dtype)
        channels = [(x.select(-3, c) - m) / s for c, (m, s) in enumerate(zip(self.pixel_mean, self.pixel_std))]
        return self.net(torch.stack(channels, dim=-3))


# ---- files -----------------------------------------------------------------------------------------


def tiny_imagenet_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The ``tiny-imagenet-200`` folder: ``<data_dir>/tiny-imagenet-200``, or ``data_dir`` if it has ``wnids.txt``.

    Args:
        data_dir: the data folder, or the ``tiny-imagenet-200`` folder itself (``~`` expanded); None or
            empty = ``$SURGE_DATA_DIR``, else ``~/.cache/surge/data``.

    Returns:
        Path: the data set's folder (it need not exist).
    """
    base = Path(data_dir).expanduser() if data_dir else default_data_dir()
    return base if (base / "wnids.txt").is_file() else base / TINY_IMAGENET_FOLDER


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (any :mod:`hashlib` algorithm), read in 1 MiB blocks.

    Args:
        path: the file.
        algorithm: a :func:`hashlib.new` name, e.g. ``"sha256"`` (default) or ``"md5"``.

    Returns:
        str: the lower-case hex digest.

    Raises:
        ValueError: ``algorithm`` is not known to :mod:`hashlib`.
        OSError: the file cannot be read.
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_checksum(path: str | os.PathLike, expected: str, algorithm: str = "sha256") -> None:
    """Raise ``SurgeError`` naming the file and both digests when ``path``'s digest is not ``expected``.

    Nothing is deleted: the file stays where it is for the user to inspect or remove.

    Args:
        path: the file to check.
        expected: the expected hex digest (compared case-insensitively).
        algorithm: a :func:`hashlib.new` name (default ``"sha256"``).

    Raises:
        SurgeError: the digests differ (a ``ValueError`` subclass).
        ValueError: ``algorithm`` is not known to :mod:`hashlib`.
        OSError: the file cannot be read.
    """
    actual = file_digest(path, algorithm)
    if actual.lower() != expected.lower():
        raise SurgeError(
            f"checksum mismatch for {path}: expected {algorithm} {expected.lower()}, got {actual}. "
            f"The file was left in place; delete it and download again, or check that it is the "
            f"Tiny-ImageNet archive ({TINY_IMAGENET_URL})."
        )


def fetch(url: str, dest: str | os.PathLike) -> None:
    """Copy ``url`` (http(s) or file) to ``dest`` (the download step; tests patch it or pass file URLs).

    Args:
        url: what to fetch, any URL :func:`urllib.request.urlopen` opens (timeout 60 s).
        dest: the file to write (overwritten; a partial file remains if the copy fails).

    Raises:
        OSError: the URL cannot be opened or read (``urllib.error.URLError``, ``HTTPError``,
            ``TimeoutError``), or ``dest`` cannot be written.
    """
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def _extract(archive: Path, data_dir: Path) -> Path:
    """Unpack the archive's ``tiny-imagenet-200/`` folder into ``data_dir`` (all or nothing)."""
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            parts = Path(name).parts
            if not parts or parts[0] != TINY_IMAGENET_FOLDER or ".." in parts or Path(name).is_absolute():
                raise SurgeError(
                    f"{archive} is not the Tiny-ImageNet archive: member {name!r} is outside '{TINY_IMAGENET_FOLDER}/'"
                )
        staging = data_dir / f".{TINY_IMAGENET_FOLDER}.unpacking-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)  # our own leftover from an interrupted unpack
        try:
            zf.extractall(staging)
            os.replace(staging / TINY_IMAGENET_FOLDER, data_dir / TINY_IMAGENET_FOLDER)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return data_dir / TINY_IMAGENET_FOLDER


def download_tiny_imagenet(
    data_dir: str | os.PathLike | None = None,
    *,
    url: str = TINY_IMAGENET_URL,
    checksum: tuple[str, str] | None = TINY_IMAGENET_CHECKSUM,
) -> Path:
    """Fetch ``tiny-imagenet-200.zip`` into ``data_dir`` (unless it is there), check it, unpack it.

    The download goes to ``tiny-imagenet-200.zip.part`` and is renamed only once its digest matches;
    a mismatch raises ``SurgeError`` (see :func:`verify_checksum`) and deletes nothing. An archive
    already in ``data_dir`` is checked, not fetched again. Unpacking is all or nothing (a staging folder,
    then one rename).

    Args:
        data_dir: the folder to download and unpack into (created if missing); None =
            ``$SURGE_DATA_DIR``, else ``~/.cache/surge/data``.
        url: where to fetch the archive (see :func:`fetch`); default the Stanford CS231n copy.
        checksum: ``(algorithm, hex digest)``, e.g. ``("sha256", "...")``; default the published MD5;
            ``None`` skips the check.

    Returns:
        Path: the unpacked ``<data_dir>/tiny-imagenet-200`` folder.

    Raises:
        SurgeError: the digest does not match ``checksum``, or the archive holds a member outside
            ``tiny-imagenet-200/``.
        OSError: the download or a file operation failed (``urllib.error.URLError`` when offline).
        zipfile.BadZipFile: the archive is not a zip file.
    """
    base = Path(data_dir).expanduser() if data_dir else default_data_dir()
    base.mkdir(parents=True, exist_ok=True)
    archive = base / TINY_IMAGENET_ZIP
    if archive.is_file():
        if checksum is not None:
            verify_checksum(archive, checksum[1], checksum[0])
    else:
        part = base / (TINY_IMAGENET_ZIP + ".part")
        fetch(url, part)
        if checksum is not None:
            verify_checksum(part, checksum[1], checksum[0])
        os.replace(part, archive)
    return _extract(archive, base)


def _read_wnids(root: Path) -> list[str]:
    wnids = [line.strip() for line in (root / "wnids.txt").read_text().splitlines() if line.strip()]
    if not wnids:
        raise SurgeError(f"{root / 'wnids.txt'} lists no class ids")
    if len(set(wnids)) != len(wnids):
        raise SurgeError(f"{root / 'wnids.txt'} lists a class id twice")
    if len(wnids) > NUM_CLASSES:
        raise SurgeError(f"{root / 'wnids.txt'} lists {len(wnids)} classes; Tiny-ImageNet has {NUM_CLASSES}")
    return wnids


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))


def list_split(root: Path, split: str, wnids: list[str]) -> tuple[list[Path], np.ndarray]:
    """Image files and labels of a split, in a fixed order (by class, then file name; val: as annotated).

    Args:
        root: the ``tiny-imagenet-200`` folder.
        split: ``"train"`` (``train/<wnid>/images/``); any other value reads the validation split
            (``val/val_annotations.txt``).
        wnids: the class ids in label order (``wnids.txt``'s lines).

    Returns:
        tuple ``(files, labels)``: list of Path to the ``.JPEG`` images and np.ndarray int64 ``[n]`` of
        labels (indices into ``wnids``).

    Raises:
        InputFileError: a class's image folder is missing or holds no ``.JPEG``/``.jpg`` images (train),
            or ``val/val_annotations.txt`` is missing (val).
        SurgeError: an annotation line without a tab-separated class id from ``wnids``.
    """
    if split == "train":
        files, labels = [], []
        for label, wnid in enumerate(wnids):
            folder = root / "train" / wnid / "images"
            if not folder.is_dir():
                raise InputFileError(f"Tiny-ImageNet: {folder} is missing (class {wnid!r} of wnids.txt)")
            found = _images_in(folder)
            if not found:
                raise InputFileError(f"Tiny-ImageNet: no .JPEG images in {folder}")
            files += found
            labels += [label] * len(found)
        return files, np.asarray(labels, dtype=np.int64)
    annotations = root / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise InputFileError(f"Tiny-ImageNet: {annotations} is missing")
    index = {w: i for i, w in enumerate(wnids)}
    files, labels = [], []
    for n, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise SurgeError(f"{annotations}, line {n}: expected '<file>\\t<wnid from wnids.txt>\\t...', got {line!r}")
        files.append(root / "val" / "images" / fields[0])
        labels.append(index[fields[1]])
    return files, np.asarray(labels, dtype=np.int64)


def decode_images(files: list[Path]) -> np.ndarray:
    """Decode 64x64 JPEGs (grayscale ones become RGB) into ``uint8 [n, 3, 64, 64]``.

    Args:
        files: the image files, in output order.

    Returns:
        np.ndarray uint8 ``[n, 3, 64, 64]`` (channels R, G, B; pixel values 0..255).

    Raises:
        InputFileError: an image file is missing.
        SurgeError: an image is not 64x64 pixels.
        ImportError: Pillow is not installed.
        PIL.UnidentifiedImageError: a file is not an image Pillow can read.
    """
    from PIL import Image

    out = np.empty((len(files), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for i, path in enumerate(files):
        if not path.is_file():
            raise InputFileError(f"Tiny-ImageNet: image {path} is missing")
        with Image.open(path) as im:
            if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                raise SurgeError(f"Tiny-ImageNet: {path} is {im.size[0]}x{im.size[1]}; expected 64x64")
            out[i] = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
    return out


def _fingerprint(root: Path, split: str, files: list[Path], labels: np.ndarray) -> str:
    """Digest of the split's file names, sizes and labels: a changed data set gets a fresh cache."""
    h = hashlib.sha256(f"v{CACHE_VERSION}:{split}\n".encode())
    for path, label in zip(files, labels.tolist()):
        h.update(f"{path.relative_to(root)}:{path.stat().st_size}:{label}\n".encode())
    return h.hexdigest()[:16]


def _cache_paths(root: Path, split: str, key: str) -> tuple[Path, Path]:
    folder = root / CACHE_FOLDER
    return folder / f"{split}-{key}-images.npy", folder / f"{split}-{key}-labels.npy"


def _save_cache(images: np.ndarray, labels: np.ndarray, paths: tuple[Path, Path]) -> None:
    """Write both arrays atomically (temporary name, then rename); a read-only folder only warns."""
    try:
        paths[0].parent.mkdir(exist_ok=True)
        for array, path in zip((images, labels), paths):
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, array)
            os.replace(tmp, path)
    except OSError as exc:
        warnings.warn(f"could not cache the decoded Tiny-ImageNet images in {paths[0].parent}: {exc}", stacklevel=3)


def load_tiny_imagenet(
    data_dir: str | os.PathLike | None = None, *, split: str = "train", download: bool = True, cache: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Tiny-ImageNet images ``uint8 [n, 3, 64, 64]``, labels ``int64 [n]`` and the class ids.

    Reads ``tiny_imagenet_root(data_dir)``; downloads the data there first when it is missing and
    ``download`` (see :func:`download_tiny_imagenet`). With ``cache``, the decoded arrays are saved
    beside the data after the first load and memory-mapped (copy-on-write) afterwards.

    Args:
        data_dir: the data folder, or the ``tiny-imagenet-200`` folder itself; None =
            ``$SURGE_DATA_DIR``, else ``~/.cache/surge/data``.
        split: ``"train"`` (100,000 images) or ``"val"`` (10,000).
        download: fetch and unpack the archive when ``wnids.txt`` is missing; False fails instead.
        cache: save the decoded arrays in ``tiny-imagenet-200/surge-cache/`` (a read-only folder only
            warns) and memory-map them on later loads; False decodes every time.

    Returns:
        tuple ``(images, labels, wnids)``: np.ndarray uint8 ``[n, 3, 64, 64]`` (a copy-on-write
        ``np.memmap`` when read from the cache), np.ndarray int64 ``[n]`` of labels, and the class ids
        (list of str, label order).

    Raises:
        SurgeTypeError: ``split`` is not a string.
        SurgeError: ``split`` is not ``"train"`` or ``"val"``; ``wnids.txt`` is empty, repeats a class
            id or lists more than 200; a downloaded archive fails its checksum or is malformed; a
            malformed annotation line or an image not 64x64.
        InputFileError: the data are missing and ``download`` is off or failed (offline, refused, a
            broken archive); an image folder, image or annotation file is missing.
    """
    check_choice(split, "split", SPLITS)
    root = tiny_imagenet_root(data_dir)
    if not (root / "wnids.txt").is_file():
        if not download:
            raise InputFileError(
                f"Tiny-ImageNet is not in {root} (no wnids.txt). Download {TINY_IMAGENET_URL} and unzip it "
                f"into {root.parent}, or pass --data-dir (data_dir in a spec) or set SURGE_DATA_DIR to where it is."
            )
        try:
            root = download_tiny_imagenet(root.parent)
        except (OSError, zipfile.BadZipFile) as exc:  # offline, refused, or a broken archive
            raise InputFileError(
                f"Tiny-ImageNet is not in {root} and could not be downloaded from {TINY_IMAGENET_URL} "
                f"({type(exc).__name__}: {exc}). Download and unzip it into {root.parent} yourself, "
                f"or pass --data-dir (data_dir in a spec) or set SURGE_DATA_DIR to where it is."
            ) from None
    wnids = _read_wnids(root)
    files, labels = list_split(root, split, wnids)
    if not cache:
        return decode_images(files), labels, wnids
    paths = _cache_paths(root, split, _fingerprint(root, split, files, labels))
    if all(p.is_file() for p in paths):
        images = np.load(paths[0], mmap_mode="c")
        if images.shape == (len(files), 3, IMAGE_SIZE, IMAGE_SIZE) and images.dtype == np.uint8:
            return images, np.load(paths[1]), wnids
    images = decode_images(files)
    _save_cache(images, labels, paths)
    return images, labels, wnids


# ---- the workload ----------------------------------------------------------------------------------


def resnet18_tiny_imagenet(data_dir: str | None = None) -> Workload:
    """The paper's second CV workload: ResNet-18 on Tiny-ImageNet's 100,000 training images.

    Inputs are the ``uint8`` images (the model normalises them); each epoch is a random 10,000 of them
    (``epoch_size``; all of them when there are fewer), as in the paper; N = 50. The probe is a fixed
    1,024 training images; targets 4.8, 4.4 and 4.0 nats (chosen, not measured).

    Args:
        data_dir: the data folder, or the ``tiny-imagenet-200`` folder itself; None =
            ``$SURGE_DATA_DIR``, else ``~/.cache/surge/data``. Downloaded there when missing.

    Returns:
        Workload: ``resnet18-tiny-imagenet``, batch sizes in examples.

    Raises:
        InputFileError: the data are missing and cannot be downloaded, or files of the data set are
            missing.
        SurgeError: the data set is malformed or the downloaded archive fails its checksum (see
            :func:`load_tiny_imagenet`).
    """
    images, labels, wnids = load_tiny_imagenet(data_dir, split="train")
    x, y = torch.from_numpy(images), torch.from_numpy(np.ascontiguousarray(labels))
    probe = probe_indices(len(x), PROBE_SIZE)
    return Workload(
        name="resnet18-tiny-imagenet",
        make_model=TinyImageNetResNet18,
        train_inputs=x,
        train_targets=y,
        probe_inputs=x[probe].contiguous(),
        probe_targets=y[probe].contiguous(),
        loss_fn=F.cross_entropy,
        default_targets=DEFAULT_TARGETS,
        extra_steps=EXTRA_STEPS,
        description="ResNet-18 on Tiny-ImageNet (100k train images, 10k per epoch; downloads when online)",
        lockstep_max_batch=LOCKSTEP_MAX_BATCH,
        epoch_size=min(EPOCH_SIZE, len(x)),
        metadata={
            "dataset": "Tiny-ImageNet",
            "classes": len(wnids),
            "probe_size": PROBE_SIZE,
            "epoch_size": min(EPOCH_SIZE, len(x)),
        },
    )
