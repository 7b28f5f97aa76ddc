"""The paper's sign-gradient model: exact theory (Eq 6-10, 14, 16, 17, 19) and Theorems 3-5.

Per-sample gradients of coordinate i are N(mu_i, sigma_i^2), independent across i; the update is
V = sign(G_est) with G_est the mean over a batch of B samples, and the loss is locally quadratic with
Hessian H. Shorthands used throughout (docs/equations.md, "Notation"):

    r_i = mu_i / sigma_i                      signal-to-noise ratio
    D   = sum_i H_ii                          trace
    S   = sum_{i != j} r_i r_j H_ij           off-diagonal SNR coupling
    M   = sum_i mu_i^2 / sigma_i

Why one module of ~400 lines: one class, the exact theory of one model; about 180 lines are code, the rest
docstrings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from surge._validation import check_array
from surge.errors import SurgeError

# Batch sizes evaluated together are chunked so that a (chunk, n) work array stays below this size.
_MAX_WORK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Peak:
    """The exact maximum of Eq 9 over the batch size.

    Attributes:
        batch_size: argmax_B eps_opt(B), continuous in B, in samples per step.
        lr: eps_opt at that batch size, the peak optimal learning rate.
    """

    batch_size: float  # argmax_B eps_opt(B), continuous in B
    lr: float  # eps_opt at that batch size


class SignGradientModel:
    """Sign descent under the Gaussian per-sample gradient model.

    Everything that depends on the batch size accepts an array of batch sizes (> 0, not necessarily
    integers) and returns an array of the same shape.

    Args:
        mu: array (n,) of mean per-sample gradients (the true gradient G, Eq 37), finite.
        sigma: array (n,) of per-sample gradient standard deviations, > 0.
        hessian: the Hessian, array (n, n), dense and symmetric, or array (n,), its diagonal (for n up to
            millions); diagonal >= 0 with a positive trace.

    Attributes:
        mu: array (n,), the mean per-sample gradient G as float64.
        sigma: array (n,), the per-sample gradient standard deviations.
        hessian: array (n, n) or (n,), the Hessian as given (float64).
        is_diagonal: True when ``hessian`` is the diagonal (n,).
        snr: array (n,), the signal-to-noise ratios r_i = mu_i / sigma_i.
        trace: D = sum_i H_ii.
        coupling: S = sum_{i != j} r_i r_j H_ij, the off-diagonal SNR coupling (0 for a diagonal hessian).
        m: M = sum_i mu_i^2 / sigma_i.

    Raises:
        SurgeError: ``mu`` or ``sigma`` not 1-D, a non-finite value, a sigma <= 0, shapes that do not match
            (sigma like mu; hessian (n, n) or (n,)), a hessian that is not symmetric (to 1e-10 relative) or
            not 1-D / 2-D, a negative hessian diagonal entry, or a zero trace.
        SurgeTypeError: a non-numeric array.
    """

    def __init__(self, mu, sigma, hessian) -> None:
        mu = check_array(mu, "mu", ndim=1)
        sigma = check_array(sigma, "sigma", ndim=1, positive=True)
        if sigma.shape != mu.shape:
            raise SurgeError(f"sigma must have the shape of mu {mu.shape}, got {sigma.shape}")
        h = check_array(hessian, "hessian")
        n = mu.size
        if h.ndim == 1:
            if h.shape != (n,):
                raise SurgeError(f"a diagonal hessian must have shape ({n},) like mu, got {h.shape}")
            diag = h
        elif h.ndim == 2:
            if h.shape != (n, n):
                raise SurgeError(f"hessian must have shape ({n}, {n}) or ({n},), got {h.shape}")
            scale = max(float(np.abs(h).max()), np.finfo(float).tiny)
            asym = float(np.abs(h - h.T).max())
            if asym > 1e-10 * scale:
                raise SurgeError(f"hessian must be symmetric; max |H - H^T| is {asym:.3g}")
            diag = np.diag(h).copy()
        else:
            raise SurgeError(f"hessian must be 1-D (diagonal) or 2-D, got {h.ndim}-D")
        if (diag < 0).any():
            i = int(np.flatnonzero(diag < 0)[0])
            raise SurgeError(f"hessian diagonal must be >= 0 (a local minimum's curvature); H[{i},{i}] = {diag[i]}")
        if not diag.sum() > 0:
            raise SurgeError("hessian must have a positive trace; got trace 0")
        self.mu = mu
        self.sigma = sigma
        self.hessian = h
        self.is_diagonal = h.ndim == 1
        self._diag = diag
        self.snr = mu / sigma
        self.trace = float(diag.sum())  # D
        if self.is_diagonal:
            self.coupling = 0.0  # S
        else:
            self.coupling = float(self.snr @ h @ self.snr - np.sum(self.snr**2 * diag))
        self.m = float(np.sum(mu**2 / sigma))  # M

    @property
    def n(self) -> int:
        """The number of coordinates n."""
        return self.mu.size

    # ---- exact theory -----------------------------------------------------------------------

    def sign_expectation(self, batch_size) -> np.ndarray:
        """E[V]_i = erf(sqrt(B/2) mu_i / sigma_i) (Eq 35 / Eq 38); shape batch_size.shape + (n,).

        Args:
            batch_size: array-like of batch sizes B, in samples (per-sample gradients averaged per step), > 0,
                not necessarily integers; any shape.

        Returns:
            np.ndarray of shape ``batch_size.shape + (n,)``: the expected sign of each coordinate, in (-1, 1).

        Raises:
            SurgeError: a batch size <= 0 or non-finite.
            SurgeTypeError: a non-numeric batch size.
        """
        b = check_array(batch_size, "batch_size", positive=True)
        return special.erf(np.sqrt(b / 2.0)[..., None] * self.snr)

    def surrogate_sign_expectation(self, batch_size) -> np.ndarray:
        """The Eq 10 surrogate of E[V]_i: r_i / sqrt(pi / (2B) + r_i^2), up to 11.6 % off the erf.

        Args:
            batch_size: array-like of batch sizes B, in samples (per-sample gradients averaged per step), > 0,
                not necessarily integers; any shape.

        Returns:
            np.ndarray of shape ``batch_size.shape + (n,)``: the surrogate expected signs, in (-1, 1).

        Raises:
            SurgeError: a batch size <= 0 or non-finite.
            SurgeTypeError: a non-numeric batch size.
        """
        b = check_array(batch_size, "batch_size", positive=True)
        r = self.snr
        return r / np.sqrt(np.pi / (2.0 * b)[..., None] + r**2)

    def _numerator_denominator(self, batch_size, expectation) -> tuple[np.ndarray, np.ndarray]:
        """G^T E[V] and E[V^T H V] = D + sum_{i != j} E_i E_j H_ij (Eq 9, with the identity below it)."""
        b = check_array(batch_size, "batch_size", positive=True)
        flat = b.ravel()
        num = np.empty_like(flat)
        den = np.empty_like(flat)
        chunk = max(1, _MAX_WORK_ELEMENTS // max(self.n, 1))
        for start in range(0, flat.size, chunk):
            e = expectation(flat[start : start + chunk])  # (k, n)
            num[start : start + chunk] = e @ self.mu
            if self.is_diagonal:
                den[start : start + chunk] = self.trace
            else:
                quad = np.einsum("ki,ki->k", e @ self.hessian, e)
                den[start : start + chunk] = self.trace + quad - (e**2) @ self._diag
        if (den <= 0).any():
            bad = flat[den <= 0][0]
            raise SurgeError(
                f"E[V^T H V] <= 0 at batch_size={bad}: the hessian is not positive semi-definite enough "
                "for Lemma 1 to have a maximum"
            )
        return num.reshape(b.shape), den.reshape(b.shape)

    def optimal_lr(self, batch_size) -> np.ndarray:
        """Exact optimal learning rate of sign descent (Eq 9, with the erf of Eq 38).

        eps_opt(B) = G^T E[V] / E[V^T H V].

        Args:
            batch_size: array-like of batch sizes B, in samples (per-sample gradients averaged per step), > 0,
                not necessarily integers; any shape.

        Returns:
            np.ndarray of the shape of ``batch_size``: the optimal learning rate at each batch size.

        Raises:
            SurgeError: a batch size <= 0 or non-finite; E[V^T H V] <= 0 at some batch size (a hessian not
                positive semi-definite enough for Lemma 1 to have a maximum).
            SurgeTypeError: a non-numeric batch size.
        """
        num, den = self._numerator_denominator(batch_size, self.sign_expectation)
        return num / den

    def loss_improvement(self, batch_size) -> np.ndarray:
        """Exact expected loss decrease at the optimal learning rate (Eq 8 = Eq 7).

        dL_opt(B) = (G^T E[V])^2 / (2 E[V^T H V]).

        Args:
            batch_size: array-like of batch sizes B, in samples (per-sample gradients averaged per step), > 0,
                not necessarily integers; any shape.

        Returns:
            np.ndarray of the shape of ``batch_size``: the loss decrease per step, in the loss's unit.

        Raises:
            SurgeError: a batch size <= 0 or non-finite; E[V^T H V] <= 0 at some batch size (a hessian not
                positive semi-definite enough for Lemma 1 to have a maximum).
            SurgeTypeError: a non-numeric batch size.
        """
        num, den = self._numerator_denominator(batch_size, self.sign_expectation)
        return 0.5 * num**2 / den

    def surrogate_lr(self, batch_size) -> np.ndarray:
        """Eq 9 with the Eq 10 surrogate in place of the erf, for comparison with the exact curve.

        Args:
            batch_size: array-like of batch sizes B, in samples (per-sample gradients averaged per step), > 0,
                not necessarily integers; any shape.

        Returns:
            np.ndarray of the shape of ``batch_size``: the surrogate optimal learning rate at each batch size.

        Raises:
            SurgeError: a batch size <= 0 or non-finite; E[V^T H V] <= 0 at some batch size (a hessian not
                positive semi-definite enough for Lemma 1 to have a maximum).
            SurgeTypeError: a non-numeric batch size.
        """
        num, den = self._numerator_denominator(batch_size, self.surrogate_sign_expectation)
        return num / den

    def expected_loss_decrease(self, batch_size, lr) -> np.ndarray:
        """E[dL] at any learning rate (Eq 31): lr G^T E[V] - lr^2 E[V^T H V] / 2; broadcasts B and lr.

        Args:
            batch_size: array-like of batch sizes B, in samples (per-sample gradients averaged per step), > 0,
                not necessarily integers; any shape.
            lr: array-like of learning rates, > 0; broadcasts with ``batch_size``.

        Returns:
            np.ndarray of the broadcast shape of ``batch_size`` and ``lr``: the expected loss decrease per step,
            in the loss's unit (negative when the step overshoots).

        Raises:
            SurgeError: a batch size or learning rate <= 0 or non-finite; E[V^T H V] <= 0 at some batch size.
            SurgeTypeError: a non-numeric batch size or learning rate.
        """
        lr = check_array(lr, "lr", positive=True)
        num, den = self._numerator_denominator(batch_size, self.sign_expectation)
        return lr * num - 0.5 * lr**2 * den

    # ---- Theorems 3, 4 and 5 ---------------------------------------------------------------

    @property
    def has_surge(self) -> bool:
        """True when the off-diagonal SNR coupling S > 0, so that Theorem 3 predicts a peak."""
        return self.coupling > 0

    @property
    def no_surge_reason(self) -> str | None:
        """Why Theorem 3 predicts no peak (None when it does)."""
        if self.has_surge:
            return None
        if self.is_diagonal:
            return "the hessian is diagonal, so the off-diagonal SNR coupling S is 0 and B_noise is infinite"
        if self.coupling == 0:
            return "the off-diagonal SNR coupling S is 0, so B_noise is infinite"
        return f"the off-diagonal SNR coupling S = {self.coupling:.4g} is negative, so B_noise is undefined (nan)"

    @property
    def b_noise(self) -> float:
        """B_noise = pi D / (2 S) (Eq 14, with H_ij); inf when S = 0, nan when S < 0."""
        if self.coupling > 0:
            return math.pi * self.trace / (2.0 * self.coupling)
        return math.inf if self.coupling == 0 else math.nan

    @property
    def eps_max(self) -> float:
        """Peak learning rate of Theorem 3: M / (2 sqrt(S D)) (Eq 16 = Eq 41); inf / nan without a surge."""
        if self.coupling > 0:
            return self.m / (2.0 * math.sqrt(self.coupling * self.trace))
        return math.inf if self.coupling == 0 else math.nan

    @property
    def dl_max(self) -> float:
        """Largest loss decrease of Theorem 5: M^2 / (2 S) (Eq 19); inf / nan without a surge."""
        if self.coupling > 0:
            return self.m**2 / (2.0 * self.coupling)
        return math.inf if self.coupling == 0 else math.nan

    @property
    def validity_batch_size(self) -> float:
        """min_i pi sigma_i^2 / (2 mu_i^2): Theorem 3 and 5 hold for B well below it (inf if all mu = 0)."""
        r2 = self.snr**2
        return math.inf if not (r2 > 0).any() else float(math.pi / (2.0 * r2.max()))

    def theorem3_lr(self, batch_size) -> np.ndarray:
        """Small-batch optimal LR (Eq 40 line 1): sqrt(2B/pi) M / (D + (2B/pi) S).

        Equal to eps_max / (0.5 (sqrt(B_noise/B) + sqrt(B/B_noise))) (Eq 13) when S > 0, and defined
        without a surge too.

        Args:
            batch_size: array-like of batch sizes B, in samples (per-sample gradients averaged per step), > 0,
                not necessarily integers; any shape.

        Returns:
            np.ndarray of the shape of ``batch_size``: the small-batch optimal learning rate at each batch size.

        Raises:
            SurgeError: a batch size <= 0 or non-finite; the denominator D + 2BS/pi <= 0 at some batch size
                (possible only when S < 0).
            SurgeTypeError: a non-numeric batch size.
        """
        b = check_array(batch_size, "batch_size", positive=True)
        den = self.trace + (2.0 * b / math.pi) * self.coupling
        if (den <= 0).any():
            raise SurgeError(
                f"the Theorem 3 denominator D + 2BS/pi is <= 0 at batch_size={b[den <= 0].ravel()[0]} (S < 0)"
            )
        return np.sqrt(2.0 * b / math.pi) * self.m / den

    def theorem5_loss_improvement(self, batch_size) -> np.ndarray:
        """Small-batch loss decrease (Eq 43 line 1): (B/pi) M^2 / (D + (2B/pi) S) = dL_max / (1 + B_noise/B).

        Args:
            batch_size: array-like of batch sizes B, in samples (per-sample gradients averaged per step), > 0,
                not necessarily integers; any shape.

        Returns:
            np.ndarray of the shape of ``batch_size``: the loss decrease per step, in the loss's unit.

        Raises:
            SurgeError: a batch size <= 0 or non-finite; the denominator D + 2BS/pi <= 0 at some batch size
                (possible only when S < 0).
            SurgeTypeError: a non-numeric batch size.
        """
        b = check_array(batch_size, "batch_size", positive=True)
        den = self.trace + (2.0 * b / math.pi) * self.coupling
        if (den <= 0).any():
            raise SurgeError(
                f"the Theorem 5 denominator D + 2BS/pi is <= 0 at batch_size={b[den <= 0].ravel()[0]} (S < 0)"
            )
        return (b / math.pi) * self.m**2 / den

    @property
    def large_batch_lr(self) -> float:
        """Large-batch plateau (Theorem 4, Eq 17): sum|mu| / (sum_{mu_i = 0} H_ii + s^T H s), s = sign(mu).

        Reduces to Eq 17 when every mu_i != 0.
        """
        s = np.sign(self.mu)
        zero_diag = float(self._diag[s == 0].sum())
        quad = float(np.sum(s**2 * self._diag)) if self.is_diagonal else float(s @ self.hessian @ s)
        den = zero_diag + quad
        if den <= 0:
            return math.inf
        return float(np.abs(self.mu).sum() / den)

    def peak(self) -> Peak | None:
        """The exact argmax of Eq 9 over B > 0, or None when the exact curve has no interior maximum.

        A diagonal hessian never has one (Eq 9 is then increasing in B). Otherwise the curve is scanned
        on a log grid that spans from deep in the linear regime (E_i ~ sqrt(2B/pi) r_i for every i) to
        full saturation (E_i ~ sign(mu_i)), and the best interior grid maximum is refined with Brent's
        method in log B. A grid maximum no higher than the curve's value at the grid's end (the plateau it
        is still approaching) is not a peak.

        Returns:
            The :class:`Peak` (batch size in samples per step, learning rate), or None when there is no
            interior maximum (a diagonal hessian, all mu = 0, or a monotone curve).

        Raises:
            SurgeError: E[V^T H V] <= 0 at a scanned batch size (a hessian not positive semi-definite enough).
        """
        if self.is_diagonal:
            return None
        r = np.abs(self.snr[self.snr != 0])
        if r.size == 0:
            return None
        lo = 1e-4 / float(r.max()) ** 2
        hi = 1e3 / float(r.min()) ** 2
        grid = np.geomspace(lo, hi, 600)
        values = self.optimal_lr(grid)
        interior = np.flatnonzero((values[1:-1] > values[:-2]) & (values[1:-1] >= values[2:])) + 1
        if interior.size == 0:
            return None
        i = int(interior[np.argmax(values[interior])])
        if values[i] <= values[-1] * (1 + 1e-12):
            return None  # the "peak" is below the plateau the curve is still approaching
        res = optimize.minimize_scalar(
            lambda logb: -float(self.optimal_lr(np.exp(logb))),
            bounds=(math.log(grid[i - 1]), math.log(grid[i + 1])),
            method="bounded",
            options={"xatol": 1e-10},
        )
        b_star = float(math.exp(res.x))
        return Peak(batch_size=b_star, lr=float(self.optimal_lr(b_star)))

    def __repr__(self) -> str:
        kind = "diagonal" if self.is_diagonal else "dense"
        return f"SignGradientModel(n={self.n}, {kind} hessian, b_noise={self.b_noise:.4g}, eps_max={self.eps_max:.4g})"
