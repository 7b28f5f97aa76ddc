"""Named sweeps: the paper's Table 1 rows (CNN, ResNet-18, DistilGPT2) and a smoke test.

``cnn-small-batch`` and ``cnn-large-batch`` are Table 1's two CNN / Fashion-MNIST rows as printed:
Adam with betas (0.9, 0.999), learning rates 1e-4..1e-3 by 1e-4 (10 values), 100 rounds, batch sizes
1..12 by 1 and 64..1164 by 100 (12 values each). Their target losses are the ``cnn-fashion-mnist``
workload's defaults (0.7, 0.6, 0.5) and N = 10, the paper's for the CNN. ``smoke`` is a tiny sweep on
the offline real data set for tests and quick checks.

``resnet18-sign`` is Table 1's ResNet-18 / Tiny-ImageNet row: Adam with betas (0, 0) (sign descent),
100 rounds. Every other row of Table 1 is 10 learning rates by 12 batch sizes, and this row's printed
steps are the rounded spacings of exactly such a grid: 10 learning rates evenly spaced from 1e-4 to
7.876e-4 (spacing 7.64e-5, printed 7.65e-5) and 12 batch sizes evenly spaced from 16 to 376 (spacing
32.7, printed 33), the batch sizes rounded to whole examples. Read as start/stop/step instead, neither
printed stop would lie on its grid (9 x 11 points). Targets: the ``resnet18-tiny-imagenet`` defaults;
N = 50.

``distilgpt2-adam`` and ``distilgpt2-sign`` are Table 1's two DistilGPT2 / ELI5-Category rows: Adam with
betas (0.9, 0.999), learning rates 1e-5..1.09e-3 by 1.2e-4, and Adam with betas (0, 0), 1e-5..5.5e-4 by
6e-5 (both stops lie on their grids: 10 learning rates each); batch sizes 4..114 by 10 (12 values,
sequences of 128 tokens); 30 rounds. Targets: the ``distilgpt2-eli5`` workload's defaults; N = 50.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from surge.errors import SurgeError
from surge.records import OptimizerConfig
from surge.sweep.spec import BatchGrid, LRGrid, SweepSpec

SMOKE_WORKLOAD = "cnn-mnist-sample"  # the engine's offline real data set (a 5,000-image MNIST sample)
# The cnn-fashion-mnist workload's default targets, written out so that the presets plan without torch or
# the data (a test checks they equal the workload's) and do not move if those defaults change.
CNN_FASHION_TARGETS = (0.7, 0.6, 0.5)
RESNET18_TARGETS = (4.8, 4.4, 4.0)  # the resnet18-tiny-imagenet workload's default targets, likewise
DISTILGPT2_TARGETS = (7.0, 6.5, 6.0)  # the distilgpt2-eli5 workload's default targets, likewise
# Table 1's ResNet-18 row read as 10 x 12 evenly spaced points (see the module docstring)
RESNET18_LRS = tuple(float(f"{1e-4 + i * (7.876e-4 - 1e-4) / 9:.12g}") for i in range(10))
RESNET18_BATCH_SIZES = tuple(int(round(16 + i * (376 - 16) / 11)) for i in range(12))


@dataclass(frozen=True)
class Preset:
    """A named spec with a one-line description.

    Attributes:
        name: the preset's name (``surge sweep run --preset NAME``).
        description: one line: the paper's row it reproduces, or what it is for.
        build: a function of no arguments that builds the spec.
    """

    name: str
    description: str
    build: Callable[[], SweepSpec]

    def spec(self) -> SweepSpec:
        """The preset's spec, built afresh.

        Returns:
            SweepSpec: a validated spec.
        """
        return self.build()


def _cnn_small_batch() -> SweepSpec:
    return SweepSpec(
        name="cnn-small-batch",
        workload="cnn-fashion-mnist",
        optimizer=OptimizerConfig(name="adam", betas=(0.9, 0.999)),
        lr=LRGrid(start=1e-4, stop=1e-3, step=1e-4),
        batch_size=BatchGrid(start=1, stop=12, step=1),
        rounds=100,
        target_loss=CNN_FASHION_TARGETS,
        extra_steps=10,
        # Budget: at B = 1 and the smallest lr a target may need several thousand steps; a trial that has
        # not reached it after 30,000 steps (half an epoch at B = 1) is censored.
        max_steps=30_000,
    )


def _cnn_large_batch() -> SweepSpec:
    return SweepSpec(
        name="cnn-large-batch",
        workload="cnn-fashion-mnist",
        optimizer=OptimizerConfig(name="adam", betas=(0.9, 0.999)),
        lr=LRGrid(start=1e-4, stop=1e-3, step=1e-4),
        batch_size=BatchGrid(start=64, stop=1164, step=100),
        rounds=100,
        target_loss=CNN_FASHION_TARGETS,
        extra_steps=10,
        # At large B the steps needed approach S_min; 5,000 steps is about 100 epochs at B = 1164.
        max_steps=5_000,
    )


def _smoke() -> SweepSpec:
    return SweepSpec(
        name="smoke",
        workload=SMOKE_WORKLOAD,
        optimizer=OptimizerConfig(name="adam", betas=(0.9, 0.999)),
        lr=LRGrid(values=(3e-4, 1e-3, 3e-3)),
        batch_size=BatchGrid(values=(4, 16, 64)),
        rounds=2,
        target_loss=(2.0, 1.5),
        extra_steps=5,
        max_steps=400,
    )


def _resnet18_sign() -> SweepSpec:
    return SweepSpec(
        name="resnet18-sign",
        workload="resnet18-tiny-imagenet",
        optimizer=OptimizerConfig(name="adam", betas=(0.0, 0.0)),
        lr=LRGrid(values=RESNET18_LRS),
        batch_size=BatchGrid(values=RESNET18_BATCH_SIZES),
        rounds=100,
        target_loss=RESNET18_TARGETS,
        extra_steps=50,
        # 20,000 steps is 320k examples (3.2 passes over the 100k images) at B = 16; at large B the
        # examples cap binds (2M: 5,780 steps at B = 346), where S nears S_min and E grows instead.
        max_steps=20_000,
        max_examples=2_000_000,
    )


def _distilgpt2(name: str, betas: tuple[float, float], lr: LRGrid) -> SweepSpec:
    return SweepSpec(
        name=name,
        workload="distilgpt2-eli5",
        optimizer=OptimizerConfig(name="adam", betas=betas),
        lr=lr,
        batch_size=BatchGrid(start=4, stop=114, step=10),
        rounds=30,
        target_loss=DISTILGPT2_TARGETS,
        extra_steps=50,
        # 10,000 steps is 40k sequences (5M tokens) at B = 4 and 1.1M sequences at B = 114; a trial that
        # has not reached a target by then is censored.
        max_steps=10_000,
        # Lanes in one vmapped step: at B = 114 one lane's logits alone (114 x 128 x 50,257 floats) take
        # 2.9 GB, about 11 GB with their gradient and the activations, so 5 lanes fit an 80 GB GPU.
        group_size=5,
    )


def _distilgpt2_adam() -> SweepSpec:
    return _distilgpt2("distilgpt2-adam", (0.9, 0.999), LRGrid(start=1e-5, stop=1.09e-3, step=1.2e-4))


def _distilgpt2_sign() -> SweepSpec:
    return _distilgpt2("distilgpt2-sign", (0.0, 0.0), LRGrid(start=1e-5, stop=5.5e-4, step=6e-5))


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "cnn-small-batch",
            "Table 1, CNN / Fashion-MNIST, batch sizes 1..12 (Adam 0.9/0.999, 100 rounds)",
            _cnn_small_batch,
        ),
        Preset(
            "cnn-large-batch",
            "Table 1, CNN / Fashion-MNIST, batch sizes 64..1164 (Adam 0.9/0.999, 100 rounds)",
            _cnn_large_batch,
        ),
        Preset(
            "smoke", "a tiny sweep on the offline MNIST sample (3 lrs x 3 batch sizes x 2 rounds, 2 targets)", _smoke
        ),
        Preset(
            "resnet18-sign",
            "Table 1, ResNet-18 / Tiny-ImageNet, batch sizes 16..376 (Adam 0/0, 100 rounds)",
            _resnet18_sign,
        ),
        Preset(
            "distilgpt2-adam",
            "Table 1, DistilGPT2 / ELI5-Category, Adam 0.9/0.999, batch sizes 4..114 sequences (30 rounds)",
            _distilgpt2_adam,
        ),
        Preset(
            "distilgpt2-sign",
            "Table 1, DistilGPT2 / ELI5-Category, Adam 0/0 (sign), batch sizes 4..114 sequences (30 rounds)",
            _distilgpt2_sign,
        ),
    )
}


def list_presets() -> list[Preset]:
    """The presets, in a fixed order.

    Returns:
        list of :class:`Preset`: in ``PRESETS``' order.
    """
    return list(PRESETS.values())


def get_preset(name: str) -> SweepSpec:
    """The spec of a named preset.

    Args:
        name: a preset's name, a key of ``PRESETS`` (e.g. ``"cnn-small-batch"``, ``"smoke"``).

    Returns:
        SweepSpec: the preset's spec.

    Raises:
        SurgeError: an unknown name (the message lists the available ones).
    """
    if name not in PRESETS:
        raise SurgeError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[name].spec()
