"""Models of the built-in workloads."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class CNN5(nn.Module):
    """The 5-layer CNN for 28x28x1 images: 2 convolutions + 3 fully connected layers (120,382 parameters).

    The paper trains "a 5-layer CNN" on Fashion-MNIST without giving its layers. This is the LeNet-5
    layout (conv-conv-fc-fc-fc, 120-84-10 head) with 16 and 32 channels, ReLU, and stride-2
    convolutions in place of conv + 2x2 max-pooling (the all-convolutional variant of Springenberg et al.,
    2015)::

        conv 1->16, 5x5, stride 2, pad 2   28x28 -> 14x14     416 params
        conv 16->32, 5x5, stride 2         14x14 -> 5x5    12,832
        fc 800 -> 120                                      96,120
        fc 120 -> 84                                       10,164
        fc 84 -> 10                                           850

    Why strided convolutions: on this CPU ``max_pool2d`` took a third of the step time and the pooled
    variant costs 4x the multiply-adds (1.7M against 0.5M per image) for the same kind of curve; the
    strided net trains Fashion-MNIST to the usual ~90 % and keeps small-batch sweeps cheap.
    Works on a batch ``[B, 1, 28, 28]`` or a single image ``[1, 28, 28]``.

    Args:
        num_classes: outputs of the last layer (default 10; 120,382 parameters at 10).
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, stride=2)
        self.fc1 = nn.Linear(800, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of a batch of images.

        Args:
            x: float tensor ``[B, 1, 28, 28]`` (or one image ``[1, 28, 28]``) of normalised pixels.

        Returns:
            torch.Tensor ``[B, num_classes]`` (``[num_classes]`` for one image) of unnormalised logits.
        """
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = x.flatten(-3)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
