"""Named sweeps: the paper's Table 1 CNN rows and a smoke test.

``cnn-small-batch`` and ``cnn-large-batch`` are Table 1's two CNN / Fashion-MNIST rows as printed:
Adam with betas (0.9, 0.999), learning rates 1e-4..1e-3 by 1e-4 (10 values), 100 rounds, batch sizes
1..12 by 1 and 64..1164 by 100 (12 values each). Their target losses are the ``cnn-fashion-mnist``
workload's defaults (0.7, 0.6, 0.5) and N = 10, the paper's for the CNN. ``smoke`` is a tiny sweep on the offline real data set for
tests and quick checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from surge.sweep.spec import BatchGrid, LRGrid, OptimizerSpec, SweepSpec

SMOKE_WORKLOAD = "cnn-mnist-sample"  # the engine's offline real data set (a 5,000-image MNIST sample)
# The cnn-fashion-mnist workload's default targets, written out so that the presets plan without torch or
# the data (a test checks they equal the workload's) and do not move if those defaults change.
CNN_FASHION_TARGETS = (0.7, 0.6, 0.5)


@dataclass(frozen=True)
class Preset:
    """A named spec with a one-line description."""

    name: str
    description: str
    build: Callable[[], SweepSpec]

    def spec(self) -> SweepSpec:
        return self.build()


def _cnn_small_batch() -> SweepSpec:
    return SweepSpec(
        name="cnn-small-batch",
        workload="cnn-fashion-mnist",
        optimizer=OptimizerSpec(name="adam", betas=(0.9, 0.999)),
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
        optimizer=OptimizerSpec(name="adam", betas=(0.9, 0.999)),
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
        optimizer=OptimizerSpec(name="adam", betas=(0.9, 0.999)),
        lr=LRGrid(values=(3e-4, 1e-3, 3e-3)),
        batch_size=BatchGrid(values=(4, 16, 64)),
        rounds=2,
        target_loss=(2.0, 1.5),
        extra_steps=5,
        max_steps=400,
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("cnn-small-batch", "Table 1, CNN / Fashion-MNIST, batch sizes 1..12 (Adam 0.9/0.999, 100 rounds)",
               _cnn_small_batch),
        Preset("cnn-large-batch", "Table 1, CNN / Fashion-MNIST, batch sizes 64..1164 (Adam 0.9/0.999, 100 rounds)",
               _cnn_large_batch),
        Preset("smoke", "a tiny sweep on the offline MNIST sample (3 lrs x 3 batch sizes x 2 rounds, 2 targets)",
               _smoke),
    )
}


def list_presets() -> list[Preset]:
    """The presets, in a fixed order."""
    return list(PRESETS.values())


def get_preset(name: str) -> SweepSpec:
    """The spec of a named preset."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[name].spec()
