"""The noisy quadratic the training simulation runs on: L(theta) = 1/2 (theta - theta*)^T H (theta - theta*)
with per-sample gradient noise N(0, diag(sigma^2)), and the default coupled-blocks problem."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from surge._validation import check_array, check_int, check_scalar
from surge.errors import SurgeError


@dataclass(frozen=True, eq=False)
class QuadraticProblem:
    """L(theta) = 1/2 (theta - theta*)^T H (theta - theta*) with per-sample gradient noise N(0, sigma^2) per coordinate.

    theta* = 0 without loss of generality, so the state is delta = theta - theta* and ``delta0`` is where
    training starts.

    Attributes:
        name: the problem's name.
        hessian: array (n, n), symmetric positive semi-definite.
        sigma: array (n,), per-sample gradient noise standard deviation, > 0, constant during training.
        delta0: array (n,), theta_0 - theta*, where training starts.
        description: one line for people.
        params: the builder's arguments, for the record.

    Raises:
        SurgeError: on construction, a non-finite or non-square ``hessian``, one that is not symmetric or
            not positive semi-definite (to 1e-10 relative), a ``sigma`` that is not > 0, or ``sigma`` /
            ``delta0`` not of shape (n,).
    """

    name: str
    hessian: np.ndarray  # (n, n) symmetric positive semi-definite
    sigma: np.ndarray  # (n,) per-sample gradient noise std, > 0, constant during training
    delta0: np.ndarray  # (n,) theta_0 - theta*
    description: str = ""
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        h = check_array(self.hessian, "hessian", ndim=2)
        n = h.shape[0]
        if h.shape != (n, n):
            raise SurgeError(f"hessian must be square, got shape {h.shape}")
        scale = max(float(np.abs(h).max()), np.finfo(float).tiny)
        if float(np.abs(h - h.T).max()) > 1e-10 * scale:
            raise SurgeError("hessian must be symmetric")
        if float(np.linalg.eigvalsh(h).min()) < -1e-10 * scale:
            raise SurgeError("hessian must be positive semi-definite (the loss must be bounded below)")
        sigma = check_array(self.sigma, "sigma", ndim=1, positive=True)
        delta0 = check_array(self.delta0, "delta0", ndim=1)
        for name, arr in (("sigma", sigma), ("delta0", delta0)):
            if arr.shape != (n,):
                raise SurgeError(f"{name} must have shape ({n},) like the hessian, got {arr.shape}")
        object.__setattr__(self, "hessian", h)
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "delta0", delta0)

    @property
    def n(self) -> int:
        """Number of coordinates."""
        return int(self.sigma.size)

    def loss(self, delta) -> np.ndarray:
        """1/2 delta^T H delta over the last axis.

        Args:
            delta: array (..., n) of states theta - theta*.

        Returns:
            np.ndarray of shape (...): the loss of each state (a 0-d array for one state).
        """
        d = np.asarray(delta, dtype=float)
        return 0.5 * np.einsum("...i,...i->...", d @ self.hessian, d)

    @property
    def initial_loss(self) -> float:
        """The loss at ``delta0``, where training starts."""
        return float(self.loss(self.delta0))

    def b_noise(self, delta) -> np.ndarray:
        """The paper's B_noise (Eq 14) at state ``delta``, with mu = H delta: pi D / (2 S); inf / nan without coupling.

        D is the trace of H and S the SNR coupling sum_{i != j} H_ij r_i r_j with r = mu / sigma.

        Args:
            delta: array (..., n) of states theta - theta*.

        Returns:
            np.ndarray of shape (...): B_noise in examples at each state; inf where S = 0, NaN where S < 0.
        """
        d = np.atleast_2d(np.asarray(delta, dtype=float))
        r = (d @ self.hessian) / self.sigma
        diag = np.diag(self.hessian)
        s = np.einsum("ki,ki->k", r @ self.hessian, r) - (r * r) @ diag
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(s > 0, math.pi * diag.sum() / (2.0 * s), np.where(s == 0, math.inf, math.nan))
        return out.reshape(np.shape(delta)[:-1])


def default_training_problem(
    *,
    n_blocks: int = 4,
    block_size: int = 32,
    curvatures=(1.0, 0.01),
    ridge: float = 1e-3,
    sigma: float = 1.0,
    start: float = 1.0,
) -> QuadraticProblem:
    """The default problem of ``surge simulate training``: coupled blocks with a spread of curvatures.

    n = n_blocks * block_size coordinates in blocks; block b has Hessian ridge I + lambda_b 1 1^T / block_size,
    with lambda_b log-spaced over ``curvatures`` (high, low), and the blocks are uncoupled. Training starts
    at theta_0 - theta* = ``start`` in every coordinate, so within a block the mean gradients share a sign
    and the off-diagonal Hessian couples them: the SNR coupling S of Eq 14 is positive and sign descent
    shows a surge. The spread of curvatures makes the loss fall gradually, as in a real network: the stiff
    blocks settle first at a noise floor set by the learning rate, and the loss left sits in the soft
    blocks. sigma, the per-sample gradient noise, is the same for every coordinate and constant, so as the
    mean gradient shrinks the signal-to-noise ratio falls and B_noise grows.

    The defaults (n = 128, lambda from 1 to 0.01, ridge 1e-3) give, with the default grid and targets
    0.5, 0.3 and 0.18 (the initial loss is 20.4), a sign-descent optimal learning rate that rises and
    falls with the batch size at every target, and Eq 22 estimates of B_noise of about 20, 45 and 120.

    Args:
        n_blocks: number of blocks, an integer >= 1; default 4.
        block_size: coordinates per block, an integer >= 2; default 32.
        curvatures: (high, low), the block curvatures lambda_b of the first and last block, > 0; default
            (1.0, 0.01).
        ridge: the diagonal ridge added to every block's Hessian, >= 0; default 1e-3.
        sigma: per-sample gradient noise standard deviation of every coordinate, > 0; default 1.
        start: theta_0 - theta* in every coordinate, finite and non-zero; default 1.

    Returns:
        QuadraticProblem: named ``"coupled-blocks"``, with ``params`` recording the arguments.

    Raises:
        SurgeError: a block count or size that is not an integer of at least its minimum, ``curvatures``
            not two finite values > 0, ``ridge`` < 0, ``sigma`` <= 0, ``start`` = 0, or a non-finite
            number; SurgeTypeError (a SurgeError) for a non-number.
    """
    n_blocks = check_int(n_blocks, "n_blocks", minimum=1)
    block_size = check_int(block_size, "block_size", minimum=2)
    curv = check_array(curvatures, "curvatures", ndim=1, positive=True)
    if curv.size != 2:
        raise SurgeError(f"curvatures must be (high, low), got {curv.tolist()}")
    ridge = check_scalar(ridge, "ridge", nonnegative=True)
    sig = check_scalar(sigma, "sigma", positive=True)
    start = check_scalar(start, "start")
    if start == 0:
        raise SurgeError("start must be non-zero (training would start at the minimum)")
    lam = np.geomspace(curv[0], curv[1], n_blocks)
    n = n_blocks * block_size
    h = ridge * np.eye(n)
    for k, lam_k in enumerate(lam):
        sl = slice(k * block_size, (k + 1) * block_size)
        h[sl, sl] += lam_k / block_size
    params = {
        "n_blocks": n_blocks,
        "block_size": block_size,
        "curvatures": curv.tolist(),
        "ridge": ridge,
        "sigma": sig,
        "start": start,
    }
    return QuadraticProblem(
        "coupled-blocks",
        h,
        np.full(n, sig),
        np.full(n, start),
        f"{n_blocks} blocks of {block_size}: ridge I + lambda_b 1 1^T / {block_size}, lambda_b in "
        f"[{curv[1]:g}, {curv[0]:g}]; theta_0 - theta* = {start:g}",
        params,
    )
