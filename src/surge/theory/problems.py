"""Synthetic problems for the sign-gradient model: per-sample gradients N(mu_i, sigma_i^2), Hessian H.

Each builder returns a :class:`Problem` whose ground truth is known: the exact sign-descent curve (Eq 9,
via :class:`~surge.theory.sign_model.SignGradientModel`), the paper's B_noise and eps_max (Eq 14, 16), and
McCandlish's SGD quantities. The builders cover the cases of docs/equations.md, "What produces the surge":

=============  =======================================================================  ==========
name           construction                                                             surge?
=============  =======================================================================  ==========
``surge``      H = ridge I + coupling s s^T, s_i = sign(mu_i): coupling of same-sign      yes
               coordinates (the check parameterisation: n = 64, SNR in [0.02, 0.08],
               sigma in [0.5, 2], B_noise ~ 16, validity batch size ~ 250)
``diagonal``   the same mu and sigma, H = diag(ridge + coupling) (same trace)             no
``sign-blind`` the same spectrum as ``surge`` but H = ridge I + coupling 1 1^T, blind to   no
               the gradient signs, with signs balanced so that sum_i mu_i / sigma_i ~ 0
``equal-snr``  mu_i / sigma_i = r, H = (h - c) I + c 1 1^T: the exact peak is known in      if (n-1)c > h
               closed form (``equal_snr_peak_batch_size``)
``custom``     user-given (mu, sigma, H)                                                  it depends
=============  =======================================================================  ==========

NumPy/SciPy only.

Why one module of ~530 lines: the builders share the drawing helpers and the ``Problem`` they return; about
240 lines are code, the rest docstrings.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import special

from surge._validation import check_array, check_input_file, check_int, check_scalar
from surge.errors import SurgeError
from surge.theory.sign_model import SignGradientModel

__all__ = [
    "PROBLEM_NAMES",
    "Problem",
    "custom_problem",
    "diagonal_problem",
    "equal_snr_peak_batch_size",
    "equal_snr_problem",
    "load_problem",
    "make_problem",
    "random_problem",
    "sign_blind_problem",
    "surge_problem",
]


@dataclass(frozen=True, eq=False)
class Problem:
    """One step of the sign-gradient model: per-sample gradients N(mu_i, sigma_i^2), Hessian H.

    The true gradient is G = mu (Eq 37); per-sample gradients are independent across coordinates, as the
    paper assumes (Eq 36). ``hessian`` is dense (n, n) or its diagonal (n,).

    Attributes:
        name: ``"surge"``, ``"diagonal"``, ``"sign-blind"``, ``"equal-snr"``, ``"custom"`` or a user's name.
        mu: array (n,), the mean per-sample gradient = the true gradient G.
        sigma: array (n,), the per-sample gradient standard deviations, > 0.
        hessian: array (n, n), symmetric, or (n,), its diagonal.
        description: one line for people.
        params: the builder's arguments, for the record (empty for a user-given problem).

    Raises:
        SurgeError: on construction, arrays that :class:`~surge.theory.sign_model.SignGradientModel`
            rejects (shapes, non-finite values, sigma <= 0, an asymmetric hessian, a negative diagonal
            or a zero trace).
    """

    name: str  # "surge", "diagonal", "sign-blind", "equal-snr", "custom" or a user's name
    mu: np.ndarray  # (n,) mean per-sample gradient = the true gradient G
    sigma: np.ndarray  # (n,) per-sample gradient standard deviation, > 0
    hessian: np.ndarray  # (n, n) symmetric, or (n,) diagonal
    description: str = ""  # one line for people
    params: dict = field(default_factory=dict)  # the builder's arguments, for the record

    def __post_init__(self) -> None:
        model = SignGradientModel(self.mu, self.sigma, self.hessian)  # validates shapes, symmetry, trace
        object.__setattr__(self, "mu", model.mu)
        object.__setattr__(self, "sigma", model.sigma)
        object.__setattr__(self, "hessian", model.hessian)
        self.__dict__["model"] = model

    @cached_property
    def model(self) -> SignGradientModel:
        """The exact sign-descent theory of this problem (Eq 9, 14, 16, 17)."""
        return SignGradientModel(self.mu, self.sigma, self.hessian)

    @property
    def n(self) -> int:
        """The number of coordinates n."""
        return int(self.mu.size)

    @property
    def is_diagonal(self) -> bool:
        """True when ``hessian`` is stored as its diagonal (n,)."""
        return self.hessian.ndim == 1

    def hessian_matrix(self) -> np.ndarray:
        """H as a dense (n, n) array.

        Returns:
            np.ndarray (n, n): a new diagonal matrix for a diagonal hessian, else ``hessian`` itself (not a copy).
        """
        return np.diag(self.hessian) if self.is_diagonal else self.hessian

    def quadratic_form(self, x: np.ndarray) -> np.ndarray:
        """x^T H x over the last axis of ``x``.

        Args:
            x: array (..., n) of vectors in parameter space (not checked).

        Returns:
            The quadratic forms, shape ``x.shape[:-1]`` (a NumPy scalar for a 1-D ``x``).
        """
        if self.is_diagonal:
            return (x * x) @ self.hessian
        return np.einsum("...i,...i->...", x @ self.hessian, x)

    # ---- McCandlish et al.'s SGD theory, exact for this model -----------------------------------

    @property
    def _ghg(self) -> float:
        return float(self.quadratic_form(self.mu))

    @property
    def sgd_eps_max(self) -> float:
        """|G|^2 / G^T H G: SGD's optimal learning rate as B -> inf (McCandlish et al.; Eq 1)."""
        ghg = self._ghg
        return float(self.mu @ self.mu) / ghg if ghg > 0 else math.inf

    @property
    def sgd_b_noise(self) -> float:
        """tr(H Sigma) / G^T H G with Sigma = diag(sigma^2): McCandlish's noise scale (Eq 1)."""
        diag = self.hessian if self.is_diagonal else np.diag(self.hessian)
        ghg = self._ghg
        return float(diag @ self.sigma**2) / ghg if ghg > 0 else math.inf

    def sgd_optimal_lr(self, batch_size) -> np.ndarray:
        """Exact optimal SGD learning rate: |G|^2 / (G^T H G + tr(H Sigma) / B) = eps_max / (1 + B_noise / B).

        Lemma 1 (Eq 6) with V = G_est ~ N(G, Sigma / B): E[V] = G and E[V^T H V] = G^T H G + tr(H Sigma) / B.

        Args:
            batch_size: array-like of batch sizes B, in samples per step, > 0, not necessarily integers;
                any shape.

        Returns:
            np.ndarray of the shape of ``batch_size``: SGD's optimal learning rate at each batch size.

        Raises:
            SurgeError: a batch size <= 0 or non-finite.
            SurgeTypeError: a non-numeric batch size.
        """
        b = check_array(batch_size, "batch_size", positive=True)
        diag = self.hessian if self.is_diagonal else np.diag(self.hessian)
        return float(self.mu @ self.mu) / (self._ghg + float(diag @ self.sigma**2) / b)

    def __repr__(self) -> str:
        kind = "diagonal" if self.is_diagonal else "dense"
        return (
            f"Problem({self.name!r}, n={self.n}, {kind} hessian, b_noise={self.model.b_noise:.4g}, "
            f"validity_batch_size={self.model.validity_batch_size:.4g})"
        )


# ---- builders ------------------------------------------------------------------------------------


def _range(value, name: str) -> tuple[float, float]:
    arr = check_array(value, name, ndim=1, positive=True)
    if arr.size != 2 or not arr[0] <= arr[1]:
        raise SurgeError(f"{name} must be (low, high) with 0 < low <= high, got {arr.tolist()}")
    return float(arr[0]), float(arr[1])


def _n(n) -> int:
    return check_int(n, "n", minimum=2)  # off-diagonal coupling needs two coordinates


def _seed(seed) -> int:
    return check_int(seed, "seed", minimum=0)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def _draw(n: int, snr_range, sigma_range, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """|SNR| and sigma log-uniform in their ranges, random signs s (docs/equations.md's check parameterisation)."""
    snr_lo, snr_hi = _range(snr_range, "snr_range")
    sig_lo, sig_hi = _range(sigma_range, "sigma_range")
    rng = np.random.default_rng(seed)
    snr = _log_uniform(rng, snr_lo, snr_hi, n)
    sigma = _log_uniform(rng, sig_lo, sig_hi, n)
    signs = rng.choice([-1.0, 1.0], size=n)
    return snr, sigma, signs


def _family(n, snr_range, sigma_range, ridge, coupling, seed):
    """The checked arguments, the draw and the recorded parameters shared by the surge-family builders."""
    n, seed = _n(n), _seed(seed)
    ridge = check_scalar(ridge, "ridge", nonnegative=True)
    coupling = check_scalar(coupling, "coupling", positive=True)
    snr, sigma, signs = _draw(n, snr_range, sigma_range, seed)
    params = {
        "n": n,
        "snr_range": list(snr_range),
        "sigma_range": list(sigma_range),
        "ridge": ridge,
        "coupling": coupling,
        "seed": seed,
    }
    return n, seed, ridge, coupling, snr, sigma, signs, params


def surge_problem(
    *,
    n: int = 64,
    snr_range=(0.02, 0.08),
    sigma_range=(0.5, 2.0),
    ridge: float = 0.2,
    coupling: float = 1.0,
    seed: int = 0,
) -> Problem:
    """A problem with a surge: H = ridge I + coupling s s^T with s = sign(mu).

    The off-diagonal entries couple every pair of coordinates whose mean gradients share a sign (after
    the change of variables theta_i -> s_i theta_i), so the SNR coupling S = sum_{i!=j} r_i r_j H_ij is
    positive and Theorem 3 predicts a peak at B_noise = pi D / (2 S) (Eq 14). With the defaults (the
    check parameterisation of docs/equations.md) B_noise is about 16 and the validity batch size
    min_i pi sigma_i^2 / (2 mu_i^2) about 250, so the exact peak sits within 1 % of B_noise.

    Args:
        n: the number of coordinates, an integer >= 2.
        snr_range: (low, high), 0 < low <= high: |SNR_i| = |mu_i| / sigma_i is drawn log-uniformly in it.
        sigma_range: (low, high), 0 < low <= high: sigma_i is drawn log-uniformly in it.
        ridge: the diagonal ridge of H, >= 0.
        coupling: the coupling strength, > 0.
        seed: the random seed, an integer >= 0; the same seed draws the same mu and sigma in ``surge_problem``
            and ``diagonal_problem``.

    Returns:
        The :class:`Problem` named ``"surge"``, with its arguments in ``params``.

    Raises:
        SurgeTypeError: ``n`` not an integer; a non-numeric ridge, coupling or range.
        SurgeError: n < 2; a seed that is not an integer >= 0; ridge < 0, coupling <= 0 or a non-finite
            one; a range that is not (low, high) with 0 < low <= high.
    """
    n, seed, ridge, coupling, snr, sigma, s, params = _family(n, snr_range, sigma_range, ridge, coupling, seed)
    h = ridge * np.eye(n) + coupling * np.outer(s, s)
    return Problem("surge", s * snr * sigma, sigma, h, "H = ridge I + coupling s s^T, s = sign(mu)", params)


def diagonal_problem(
    *,
    n: int = 64,
    snr_range=(0.02, 0.08),
    sigma_range=(0.5, 2.0),
    ridge: float = 0.2,
    coupling: float = 1.0,
    seed: int = 0,
) -> Problem:
    """No surge: the mu and sigma of ``surge_problem`` with a diagonal H = (ridge + coupling) I (same trace).

    S = 0, so B_noise is infinite and the exact Eq 9, sum_i |mu_i| erf(sqrt(B/2) |r_i|) / D, increases
    monotonically in B.

    Args:
        n: the number of coordinates, an integer >= 2.
        snr_range: (low, high), 0 < low <= high: |SNR_i| = |mu_i| / sigma_i is drawn log-uniformly in it.
        sigma_range: (low, high), 0 < low <= high: sigma_i is drawn log-uniformly in it.
        ridge: the diagonal ridge of H, >= 0.
        coupling: the coupling strength, > 0.
        seed: the random seed, an integer >= 0; the same seed draws the same mu and sigma in ``surge_problem``
            and ``diagonal_problem``.

    Returns:
        The :class:`Problem` named ``"diagonal"``, with its arguments in ``params``.

    Raises:
        SurgeTypeError: ``n`` not an integer; a non-numeric ridge, coupling or range.
        SurgeError: n < 2; a seed that is not an integer >= 0; ridge < 0, coupling <= 0 or a non-finite
            one; a range that is not (low, high) with 0 < low <= high.
    """
    n, seed, ridge, coupling, snr, sigma, s, params = _family(n, snr_range, sigma_range, ridge, coupling, seed)
    diag = np.full(n, ridge + coupling)
    return Problem("diagonal", s * snr * sigma, sigma, diag, "H = (ridge + coupling) I, diagonal", params)


def sign_blind_problem(
    *,
    n: int = 64,
    snr_range=(0.02, 0.08),
    sigma_range=(0.5, 2.0),
    ridge: float = 0.2,
    coupling: float = 1.0,
    seed: int = 0,
) -> Problem:
    """No surge: coupling blind to the gradient signs, H = ridge I + coupling 1 1^T (the spectrum of ``surge``).

    The signs of mu are random but balanced: the |SNR|s are sorted, given alternating signs and shuffled,
    so |sum_i r_i| <= max_i |r_i| and S = coupling ((sum r)^2 - sum r^2) < 0. B_noise is then undefined
    (nan) and the exact curve rises monotonically to the Eq 17 plateau.

    Args:
        n: the number of coordinates, an integer >= 2.
        snr_range: (low, high), 0 < low <= high: |SNR_i| = |mu_i| / sigma_i is drawn log-uniformly in it.
        sigma_range: (low, high), 0 < low <= high: sigma_i is drawn log-uniformly in it.
        ridge: the diagonal ridge of H, >= 0.
        coupling: the coupling strength, > 0.
        seed: the random seed, an integer >= 0; the same seed draws the |SNR|s and sigmas of ``surge_problem``,
            then places them in a seeded order.

    Returns:
        The :class:`Problem` named ``"sign-blind"``, with its arguments in ``params``.

    Raises:
        SurgeTypeError: ``n`` not an integer; a non-numeric ridge, coupling or range.
        SurgeError: n < 2; a seed that is not an integer >= 0; ridge < 0, coupling <= 0 or a non-finite
            one; a range that is not (low, high) with 0 < low <= high.
    """
    n, seed, ridge, coupling, snr, sigma, _, params = _family(n, snr_range, sigma_range, ridge, coupling, seed)
    rng = np.random.default_rng([seed, 1])
    order = np.argsort(-snr)
    signs = np.empty(n)
    signs[order] = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)  # alternating along decreasing |r|
    perm = rng.permutation(n)
    snr, sigma, signs = snr[perm], sigma[perm], signs[perm]
    h = ridge * np.eye(n) + coupling * np.ones((n, n))
    return Problem("sign-blind", signs * snr * sigma, sigma, h, "H = ridge I + coupling 1 1^T, balanced signs", params)


def random_problem(*, n: int = 48, seed: int = 0) -> Problem:
    """A surge with no special structure: random mu, sigma and a random PSD H coupled along the signs.

    |SNR_i| is log-uniform in [0.02, 0.1], sigma_i in [0.3, 3], the signs s random, and
    H = A A^T / n + 0.3 I + c s s^T with A (n, 8) of N(0, 0.3^2) entries and c uniform in [0.5, 2]: the
    s s^T term makes the SNR coupling S positive, so Theorem 3 predicts a peak at B_noise (Eq 14), while
    the A A^T term gives H a random spectrum and eigenvectors. The estimators' tests and the monitor's
    validation benchmark use it beside the structured problems.

    Args:
        n: the number of coordinates, an integer >= 2.
        seed: the random seed, an integer >= 0.

    Returns:
        The :class:`Problem` named ``"random"``, with its arguments in ``params``.

    Raises:
        SurgeTypeError: ``n`` or ``seed`` not an integer.
        SurgeError: n < 2; seed < 0.
    """
    n, seed = _n(n), _seed(seed)
    rng = np.random.default_rng(seed)
    snr = _log_uniform(rng, 0.02, 0.1, n)
    sigma = _log_uniform(rng, 0.3, 3.0, n)
    s = rng.choice([-1.0, 1.0], n)
    a = rng.normal(size=(n, 8)) * 0.3
    h = a @ a.T / n + 0.3 * np.eye(n) + rng.uniform(0.5, 2.0) * np.outer(s, s)
    return Problem(
        "random", s * snr * sigma, sigma, h, "H = A A^T / n + 0.3 I + c s s^T, random", {"n": n, "seed": seed}
    )


def _off_diagonal(value, h: float, n: int) -> float:
    """The equal-SNR model's off-diagonal entry c, in the range that keeps H positive semi-definite."""
    c = check_scalar(value, "off_diagonal")
    if not (-h / (n - 1) <= c <= h):
        raise SurgeError(
            f"off_diagonal must lie in [-diagonal/(n-1), diagonal] = [{-h / (n - 1):.4g}, {h:.4g}] for H to be "
            f"positive semi-definite, got {c}"
        )
    return c


def equal_snr_problem(
    *,
    n: int = 64,
    snr: float = 0.05,
    diagonal: float = 1.0,
    off_diagonal: float = 52.5 / 63.0,
    sigma_range=(0.5, 2.0),
    seed: int = 0,
) -> Problem:
    """The exact equal-SNR model: mu_i / sigma_i = r for every i, H = (h - c) I + c 1 1^T.

    Eq 9 reduces to eps(B) = E sum_i mu_i / (n h + n (n-1) c E^2) with E = erf(sqrt(B/2) r),
    maximal at E* = sqrt(h / ((n-1) c)), so the exact peak is B_peak = 2 (erfinv(E*) / r)^2 when
    (n-1) c > h (``equal_snr_peak_batch_size``), against B_noise = pi h / (2 (n-1) c r^2) (Eq 14). The
    defaults, (n-1) c / h = 52.5 and r = 0.05, give B_peak = 12.09 and B_noise = 11.97.
    ``sigma_range`` spreads sigma_i log-uniformly; it does not change the curve's shape.

    Args:
        n: the number of coordinates, an integer >= 2.
        snr: r = mu_i / sigma_i, the same for every coordinate, > 0.
        diagonal: h, every diagonal entry of H, > 0.
        off_diagonal: c, every off-diagonal entry of H, in [-h / (n-1), h] (H positive semi-definite).
        sigma_range: (low, high), 0 < low <= high: sigma_i is drawn log-uniformly in it.
        seed: the random seed of the sigma draw, an integer >= 0.

    Returns:
        The :class:`Problem` named ``"equal-snr"``, with its arguments in ``params``.

    Raises:
        SurgeTypeError: ``n`` not an integer; a non-numeric snr, diagonal, off_diagonal or sigma_range.
        SurgeError: n < 2; a seed that is not an integer >= 0; snr or diagonal <= 0; a non-finite value;
            off_diagonal outside [-diagonal/(n-1), diagonal]; a sigma_range that is not (low, high) with
            0 < low <= high.
    """
    n = _n(n)
    seed = _seed(seed)
    r = check_scalar(snr, "snr", positive=True)
    h = check_scalar(diagonal, "diagonal", positive=True)
    c = _off_diagonal(off_diagonal, h, n)
    lo, hi = _range(sigma_range, "sigma_range")
    rng = np.random.default_rng(seed)
    sigma = _log_uniform(rng, lo, hi, n)
    hess = (h - c) * np.eye(n) + c * np.ones((n, n))
    params = {"n": n, "snr": r, "diagonal": h, "off_diagonal": c, "sigma_range": list(sigma_range), "seed": seed}
    return Problem("equal-snr", r * sigma, sigma, hess, "mu_i/sigma_i = r, H = (h - c) I + c 1 1^T", params)


def equal_snr_peak_batch_size(*, n: int, snr: float, diagonal: float, off_diagonal: float) -> float | None:
    """Exact peak of the equal-SNR model: B_peak = 2 (erfinv(E*) / r)^2 with E* = sqrt(h / ((n-1) c)).

    None when (n-1) c <= h: the curve then has no interior maximum. B_peak >= B_noise, with equality in
    the limit (n-1) c >> h (docs/equations.md, "What produces the surge").

    Args:
        n: the number of coordinates, an integer >= 2.
        snr: r, the common mu_i / sigma_i, > 0.
        diagonal: h, every diagonal entry of H, > 0.
        off_diagonal: c, every off-diagonal entry of H, in [-h / (n-1), h] (H positive semi-definite).

    Returns:
        B_peak as a float, in samples per step, or None when (n-1) c <= h.

    Raises:
        SurgeTypeError: ``n`` not an integer; a non-numeric snr, diagonal or off_diagonal.
        SurgeError: n < 2; snr or diagonal <= 0; off_diagonal outside [-h / (n-1), h]; a non-finite value.
    """
    n = _n(n)
    r = check_scalar(snr, "snr", positive=True)
    h = check_scalar(diagonal, "diagonal", positive=True)
    c = _off_diagonal(off_diagonal, h, n)
    if not (n - 1) * c > h:
        return None
    e_star = math.sqrt(h / ((n - 1) * c))
    return float(2.0 * (special.erfinv(e_star) / r) ** 2)


def custom_problem(mu, sigma, hessian, *, name: str = "custom", description: str = "user-given") -> Problem:
    """A user-given problem: mean gradient ``mu`` (n,), per-sample std ``sigma`` (n,), ``hessian`` (n, n) or (n,).

    Args:
        mu: array-like (n,) of mean per-sample gradients (the true gradient G), finite.
        sigma: array-like (n,) of per-sample gradient standard deviations, > 0.
        hessian: array-like (n, n), symmetric, or (n,), its diagonal; diagonal >= 0, trace > 0.
        name: the problem's name, a non-empty string; default ``"custom"``.
        description: one line for people; default ``"user-given"``.

    Returns:
        The :class:`Problem`, with empty ``params``.

    Raises:
        SurgeError: an empty or non-string name; arrays that
            :class:`~surge.theory.sign_model.SignGradientModel` rejects (shapes, non-finite values,
            sigma <= 0, an asymmetric hessian, a negative diagonal or a zero trace).
        SurgeTypeError: a non-numeric array.
    """
    if not isinstance(name, str) or not name:
        raise SurgeError(f"name must be a non-empty string, got {name!r}")
    arrays = [check_array(a, k) for a, k in ((mu, "mu"), (sigma, "sigma"), (hessian, "hessian"))]
    return Problem(name, *arrays, description, {})


def load_problem(path) -> Problem:
    """A user-given problem from a ``.npz`` file with arrays ``mu``, ``sigma`` and ``hessian``.

    The file is read without unpickling (``allow_pickle=False``): object arrays are refused.

    Args:
        path: str or Path of the ``.npz`` file, as written by ``np.savez(path, mu=..., sigma=..., hessian=...)``.

    Returns:
        The :class:`Problem` named after the file's stem (its name without ``.npz``).

    Raises:
        SurgeError: the path is not an existing file; the file is not a readable ``.npz`` archive of numeric
            arrays; it lacks ``mu``, ``sigma`` or ``hessian``; or the arrays are invalid (as in
            :func:`custom_problem`).
    """
    p = check_input_file(path, "problem file")
    how = "save it with np.savez(path, mu=..., sigma=..., hessian=...) from numeric arrays"
    data = None
    try:
        data = np.load(p, allow_pickle=False)
        if not hasattr(data, "files"):  # a .npy array (or text) under a .npz name
            raise ValueError("it holds a single array, not named arrays")
        missing = [k for k in ("mu", "sigma", "hessian") if k not in data.files]
        if missing:
            raise SurgeError(
                f"problem file {str(p)!r} lacks array(s) {', '.join(missing)}; it has {', '.join(data.files) or 'none'} "
                f"({how})"
            )
        arrays = {k: data[k] for k in ("mu", "sigma", "hessian")}
    except SurgeError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        if "pickle" in str(exc):  # numpy's advice (allow_pickle) would run code from the file: not ours to give
            why = "it is not an archive of numeric arrays: NumPy would have to unpickle it, which can run code"
        else:
            why = " ".join(str(exc).split())
        raise SurgeError(
            f"problem file {str(p)!r} is not a readable .npz file of numeric arrays ({why}); {how}"
        ) from None
    finally:
        if hasattr(data, "close"):  # an NpzFile keeps the file open until closed
            data.close()
    return custom_problem(
        arrays["mu"], arrays["sigma"], arrays["hessian"], name=p.stem, description=f"loaded from {p.name}"
    )


_BUILDERS = {
    "surge": surge_problem,
    "diagonal": diagonal_problem,
    "sign-blind": sign_blind_problem,
    "equal-snr": equal_snr_problem,
    "random": random_problem,
}
PROBLEM_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def make_problem(name: str, **kwargs) -> Problem:
    """A built-in problem by name (one of ``PROBLEM_NAMES``), or a ``.npz`` file path (``load_problem``).

    Args:
        name: ``"surge"``, ``"diagonal"``, ``"sign-blind"``, ``"equal-snr"``, ``"random"``, or a str or
            Path ending in ``.npz``.
        **kwargs: the keyword arguments of the named builder (e.g. ``n``, ``seed``); none for a file.

    Returns:
        The :class:`Problem`.

    Raises:
        SurgeError: an unknown name; a keyword argument the named builder does not take (the error lists
            those it takes); builder arguments given with a ``.npz`` file; and whatever the builder
            or :func:`load_problem` raises for bad arguments or a bad file.
    """
    if isinstance(name, (str, Path)) and str(name).endswith(".npz"):
        if kwargs:
            raise SurgeError("a problem loaded from a file takes no builder arguments")
        return load_problem(name)
    if name not in _BUILDERS:
        raise SurgeError(
            f"problem must be one of {', '.join(repr(k) for k in PROBLEM_NAMES)} or a .npz file with arrays "
            f"mu, sigma, hessian; got {name!r}"
        )
    builder = _BUILDERS[name]
    takes = [k for k, prm in inspect.signature(builder).parameters.items() if prm.kind is prm.KEYWORD_ONLY]
    for key in kwargs:
        if key not in takes:
            raise SurgeError(f"problem {name!r} takes no argument {key!r}; it takes {', '.join(takes) or 'none'}")
    return builder(**kwargs)
