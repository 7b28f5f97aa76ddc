"""The example stream of a seed: which examples make each step's batch (shared across lrs and batch sizes)."""

from __future__ import annotations

import torch

from surge._validation import check_int
from surge.errors import SurgeError


class DataOrder:
    """The example stream of one seed: epoch after epoch, each an independent permutation of 0..n-1.

    With ``epoch_size`` m, an epoch is the first m entries of its permutation (m random examples, no
    repeats within the epoch); ``None`` means all n. Step t (1-based) of batch size B takes stream
    positions ``(t-1)*B .. t*B - 1``.

    Args:
        seed: the round's seed, an int; it alone fixes every epoch's permutation.
        n: the number of training examples (the workload's ``num_train``).
        epoch_size: examples per epoch, 1 <= epoch_size <= n; None: all n.

    Attributes:
        seed: the seed, as an int.
        n: the number of training examples, as an int.
        size: examples per epoch (m).

    Raises:
        SurgeTypeError: ``epoch_size`` is not an integer.
        SurgeError: ``epoch_size`` < 1 or > ``n``.
    """

    def __init__(self, seed: int, n: int, epoch_size: int | None = None) -> None:
        self.seed, self.n = int(seed), int(n)
        self.size = self.n if epoch_size is None else check_int(epoch_size, "epoch_size", minimum=1)
        if self.size > self.n:
            raise SurgeError(f"epoch_size must be at most the number of examples ({self.n}), got {self.size}")
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        perm = self._perms.get(epoch)
        if perm is None:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch * 7_919 + 0x5EED) % (2**63))
            perm = torch.randperm(self.n, generator=g)
            if self.size < self.n:
                perm = perm[: self.size]
            if len(self._perms) >= 4:
                self._perms.pop(min(self._perms))
            self._perms[epoch] = perm
        return perm

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        """The example indices of step ``step`` at batch size ``batch_size``: stream positions
        ``(step-1)*batch_size .. step*batch_size - 1``, across epoch boundaries where they fall.

        Args:
            step: the step, 1-based (not checked).
            batch_size: examples per step, B >= 1 (not checked).

        Returns:
            An int64 tensor ``[batch_size]`` of training-example indices in ``0 .. n-1``.
        """
        start, m = (step - 1) * batch_size, self.size
        epoch = start // m
        if (start + batch_size - 1) // m == epoch:  # within one epoch: a slice
            offset = start - epoch * m
            return self._perm(epoch)[offset : offset + batch_size]
        pos = torch.arange(start, start + batch_size)
        epochs = pos // m
        out = torch.empty(batch_size, dtype=torch.long)
        for e in torch.unique(epochs).tolist():
            mask = epochs == e
            out[mask] = self._perm(e)[pos[mask] % m]
        return out
