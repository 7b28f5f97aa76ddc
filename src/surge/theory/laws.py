"""Closed-form scaling laws of the paper (Eq 1-4, 18, 20-22, 24).

The two optimal-learning-rate laws are objects (:class:`AdamLaw`, Eq 2; :class:`SGDLaw`, Eq 1 / the
Eq 24 curve) with evaluation and the per-point inversion of Eq 23 / 24; ``surge.fit`` fits them,
``surge.recommend`` reads them, the analysis and the figures draw them. Every function is array-friendly
in ``batch_size`` and returns a NumPy array of the broadcast shape (a 0-d array for scalar input; wrap it
in ``float`` for a Python number). Batch sizes, B_noise and E_min count the data's batch unit: examples,
or tokens / sequences for language models.

Why one module of ~480 lines: the closed forms of Section 1 and 2.2 are short; about 120 lines are code, the
rest docstrings stating shapes, units and equations.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from surge._validation import check_array, check_scalar
from surge.errors import SurgeError


def _batch(batch_size: object) -> np.ndarray:
    return check_array(batch_size, "batch_size", positive=True)


class Law(ABC):
    """A law of the optimal learning rate against batch size, eps_opt(B) = eps_max / g(B; B_noise).

    Subclasses give ``log_g`` (log of the factor g, unchecked arrays: the fitting code's fast path);
    evaluation (:meth:`lr`) and the per-point inversion of Eq 23 / 24 (:meth:`eps_max_at`) follow.

    Attributes:
        family: the law's family, ``"adam"`` or ``"sgd"`` (``""`` on the abstract base).
    """

    family: str = ""  # "adam" or "sgd"

    @property
    @abstractmethod
    def name(self) -> str:
        """The law's name in results and reports: "adam", "sgd(alpha=1)", "sgd(alpha=free)"."""

    @abstractmethod
    def log_g(self, b: np.ndarray, b_noise: float, alpha: float | None = None) -> np.ndarray:
        """log g(B) with eps_opt = eps_max / g(B); ``alpha`` overrides a free SGD exponent.

        The inputs are not checked (the fitting code's fast path): :meth:`lr` and :meth:`eps_max_at` check them.

        Args:
            b: array of batch sizes B per step, in the data's batch unit, > 0; any shape.
            b_noise: B_noise, > 0, in the unit of ``b``.
            alpha: the SGD exponent to use instead of the law's own; ``None`` (default) keeps the law's.
                Ignored by the Adam law.

        Returns:
            np.ndarray of the broadcast shape of ``b`` and ``b_noise``: log g(B), dimensionless.
        """

    def lr(self, batch_size, eps_max: float, b_noise: float) -> np.ndarray:
        """eps_opt(B) = eps_max / g(B) of the law at each batch size.

        Args:
            batch_size: array-like of batch sizes B per step, in the data's batch unit, > 0; any shape.
            eps_max: the law's eps_max (the peak learning rate for Adam, the large-batch one for SGD), > 0.
            b_noise: B_noise, > 0, in the unit of ``batch_size``.

        Returns:
            np.ndarray of the shape of ``batch_size`` (0-d for a scalar): the optimal learning rates.

        Raises:
            SurgeError: a batch size <= 0, an eps_max or b_noise <= 0, or a non-finite value; an SGD law with
                a free alpha (it has no value until fitted).
            SurgeTypeError: a non-numeric argument.
        """
        b = _batch(batch_size)
        eps_max = check_scalar(eps_max, "eps_max", positive=True)
        b_noise = check_scalar(b_noise, "b_noise", positive=True)
        return eps_max * np.exp(-self.log_g(b, b_noise))

    def eps_max_at(self, batch_size, lr, b_noise: float) -> np.ndarray:
        """eps_max implied by each (B, optimal lr) point at a given B_noise: lr * g(B).

        These are the terms that Eq 23 (Adam) and Eq 24 (SGD) average.

        Args:
            batch_size: array-like of batch sizes B per step, in the data's batch unit, > 0; any shape.
            lr: array-like of the optimal learning rates at those batch sizes, > 0; broadcasts with
                ``batch_size``.
            b_noise: B_noise, > 0, in the unit of ``batch_size``.

        Returns:
            np.ndarray of the broadcast shape of ``batch_size`` and ``lr``: the implied eps_max of each point.

        Raises:
            SurgeError: a batch size or learning rate <= 0, a b_noise <= 0, or a non-finite value; an SGD law
                with a free alpha.
            SurgeTypeError: a non-numeric argument.
        """
        b = _batch(batch_size)
        lr = check_array(lr, "lr", positive=True)
        b_noise = check_scalar(b_noise, "b_noise", positive=True)
        return lr * np.exp(self.log_g(b, b_noise))


@dataclass(frozen=True)
class AdamLaw(Law):
    """The surge law for sign-like updates (Eq 2): g(B) = 0.5 (sqrt(B_noise/B) + sqrt(B/B_noise)).

    Attributes:
        family: ``"adam"``.
    """

    family = "adam"

    @property
    def name(self) -> str:
        """``"adam"``."""
        return "adam"

    def log_g(self, b, b_noise, alpha=None):
        """log g(B) of Eq 2: log(0.5 (sqrt(B_noise/B) + sqrt(B/B_noise))); unchecked inputs.

        Args:
            b: array of batch sizes B per step, in the data's batch unit, > 0; any shape.
            b_noise: B_noise, > 0, in the unit of ``b``.
            alpha: ignored (the Adam law has no exponent); accepted for the common signature.

        Returns:
            np.ndarray of the broadcast shape of ``b`` and ``b_noise``: log g(B), >= 0, 0 at B = B_noise.
        """
        # g = cosh(x) with x = log(B / B_noise) / 2, in a form that cannot overflow: |x| + log1p(e^-2|x|) - log 2
        x = np.abs(0.5 * (np.log(b) - np.log(b_noise)))
        return x + np.log1p(np.exp(-2.0 * x)) - math.log(2.0)


@dataclass(frozen=True)
class SGDLaw(Law):
    """McCandlish et al.'s SGD law (Eq 1) with exponent alpha (the Eq 24 curve): g(B) = (1 + B_noise/B)^alpha.

    ``alpha=None`` is the law with a free exponent (fitted; :meth:`lr` then needs a fixed one).

    Attributes:
        alpha: the exponent, > 0 (1 is Eq 1; 0.5 McCandlish et al.'s Adam heuristic), or ``None`` for a
            free one. Checked on construction: ``SurgeError`` when <= 0 or non-finite.
        family: ``"sgd"``.
    """

    alpha: float | None = 1.0
    family = "sgd"

    def __post_init__(self) -> None:
        if self.alpha is not None:
            object.__setattr__(self, "alpha", check_scalar(self.alpha, "alpha", positive=True))

    @property
    def name(self) -> str:
        """``"sgd(alpha=free)"`` or ``"sgd(alpha=<alpha>)"``, e.g. ``"sgd(alpha=1)"``."""
        return "sgd(alpha=free)" if self.alpha is None else f"sgd(alpha={self.alpha:g})"

    def log_g(self, b, b_noise, alpha=None):
        """log g(B) of Eq 1 / Eq 24: alpha log(1 + B_noise/B); unchecked inputs.

        Args:
            b: array of batch sizes B per step, in the data's batch unit, > 0; any shape.
            b_noise: B_noise, > 0, in the unit of ``b``.
            alpha: the exponent to use instead of the law's ``alpha``; ``None`` (default) uses the law's.

        Returns:
            np.ndarray of the broadcast shape of ``b`` and ``b_noise``: log g(B), > 0.

        Raises:
            SurgeError: the law's alpha is free (``None``) and no ``alpha`` is given.
        """
        a = self.alpha if alpha is None else alpha
        if a is None:
            raise SurgeError("the SGD law with a free alpha has no value until it is fitted; give alpha")
        return a * np.logaddexp(0.0, np.log(b_noise) - np.log(b))  # log(1 + B_noise/B) without overflow


ADAM_LAW = AdamLaw()
SGD_LAW = SGDLaw(1.0)
_SGD_NAME = re.compile(r"^sgd\(alpha=(free|[0-9.eE+-]+)\)$")


def get_law(name: str | Law, alpha: float | None = 1.0) -> Law:
    """A law from its name: "adam", "sgd" (with ``alpha``), or a result's name such as "sgd(alpha=0.5)".

    Args:
        name: ``"adam"``, ``"sgd"``, a law's :attr:`Law.name` (``"sgd(alpha=0.5)"``, ``"sgd(alpha=free)"``),
            or a :class:`Law`, returned as it is.
        alpha: the exponent of ``"sgd"``, > 0, or ``None`` for a free one; default 1 (Eq 1). Used only
            with ``name="sgd"``.

    Returns:
        The law: the shared :class:`AdamLaw` instance for ``"adam"``, else a new :class:`SGDLaw`.

    Raises:
        SurgeError: an unknown name (the allowed ones are listed); an alpha <= 0 or non-finite.
        SurgeTypeError: a non-numeric alpha with ``name="sgd"``.
    """
    if isinstance(name, Law):
        return name
    if name == "adam":
        return ADAM_LAW
    if name == "sgd":
        return SGDLaw(alpha)
    m = _SGD_NAME.match(str(name))
    if m and m.group(1) == "free":
        return SGDLaw(None)
    if m:
        try:
            alpha_in_name = float(m.group(1))
        except ValueError:  # the pattern admits "1.2.3" or "e": not numbers
            raise SurgeError(f"law {name!r}: alpha must be a number or 'free', got {m.group(1)!r}") from None
        return SGDLaw(alpha_in_name)
    raise SurgeError(f"law must be 'adam' or 'sgd' (or a name such as 'sgd(alpha=0.5)'), got {name!r}")


def adam_optimal_lr(batch_size, eps_max: float, b_noise: float) -> np.ndarray:
    """The surge law for sign-like updates (Eq 2, Theorem 3 / Eq 13).

    eps_opt(B) = eps_max / (0.5 * (sqrt(B_noise / B) + sqrt(B / B_noise)))
               = 2 * eps_max * sqrt(B * B_noise) / (B + B_noise).

    Symmetric in log B about ``b_noise``, where it equals ``eps_max``. Valid only where Theorem 3
    applies (B well below the validity batch size); past that the true curve tends to the non-zero
    Eq 17 plateau instead of decaying like 1/sqrt(B).

    Args:
        batch_size: (...) batch sizes B, > 0 (examples per step).
        eps_max: the peak learning rate, > 0 (Eq 16).
        b_noise: B_noise, > 0, in the unit of ``batch_size`` (Eq 14).

    Returns:
        (...) the optimal learning rate at each batch size.

    Raises:
        SurgeError: a non-positive or non-finite argument.
        SurgeTypeError: a non-numeric argument.
    """
    return ADAM_LAW.lr(batch_size, eps_max, b_noise)


def sgd_optimal_lr(batch_size, eps_max: float, b_noise: float, alpha: float = 1.0) -> np.ndarray:
    """McCandlish et al.'s SGD law (Eq 1), and with ``alpha`` the curve implied by Eq 24.

    eps_opt(B) = eps_max / (1 + B_noise / B) ** alpha. The exponent applies to (1 + B_noise / B).

    Args:
        batch_size: (...) batch sizes B, > 0 (examples per step).
        eps_max: the large-batch learning rate, > 0.
        b_noise: B_noise, > 0, in the unit of ``batch_size``.
        alpha: the exponent, > 0 (1 is McCandlish's SGD law; 0.5 their Adam heuristic).

    Returns:
        (...) the optimal learning rate at each batch size.

    Raises:
        SurgeError: a non-positive or non-finite argument.
        SurgeTypeError: a non-numeric argument.
    """
    return SGDLaw(alpha).lr(batch_size, eps_max, b_noise)


def sgd_small_batch_lr(batch_size, eps_max: float, b_noise: float) -> np.ndarray:
    """Linear scaling, the B << B_noise limit of Eq 1 (Eq 3): eps_opt(B) ~ eps_max * B / B_noise.

    Args:
        batch_size: array-like of batch sizes B per step, in the data's batch unit, > 0; any shape.
        eps_max: the large-batch learning rate of Eq 1, > 0.
        b_noise: B_noise, > 0, in the unit of ``batch_size``.

    Returns:
        np.ndarray of the shape of ``batch_size``: the learning rate at each batch size.

    Raises:
        SurgeError: a non-positive or non-finite argument.
        SurgeTypeError: a non-numeric argument.
    """
    b = _batch(batch_size)
    eps_max = check_scalar(eps_max, "eps_max", positive=True)
    b_noise = check_scalar(b_noise, "b_noise", positive=True)
    return eps_max * b / b_noise


def adam_small_batch_lr(batch_size, eps_max: float, b_noise: float) -> np.ndarray:
    """Square-root scaling, the B << B_noise limit of Eq 2 (Eq 4): eps_opt(B) ~ 2 eps_max sqrt(B / B_noise).

    Args:
        batch_size: array-like of batch sizes B per step, in the data's batch unit, > 0; any shape.
        eps_max: the peak learning rate of Eq 2, > 0.
        b_noise: B_noise, > 0, in the unit of ``batch_size``.

    Returns:
        np.ndarray of the shape of ``batch_size``: the learning rate at each batch size.

    Raises:
        SurgeError: a non-positive or non-finite argument.
        SurgeTypeError: a non-numeric argument.
    """
    b = _batch(batch_size)
    eps_max = check_scalar(eps_max, "eps_max", positive=True)
    b_noise = check_scalar(b_noise, "b_noise", positive=True)
    return 2.0 * eps_max * np.sqrt(b / b_noise)


def adam_large_batch_lr(batch_size, eps_max: float, b_noise: float) -> np.ndarray:
    """The B >> B_noise limit of Eq 2: eps_opt(B) ~ 2 eps_max sqrt(B_noise / B).

    This is the limit of the formula, not of the optimum itself: the exact curve levels off at the
    Eq 17 plateau (see ``SignGradientModel.large_batch_lr``).

    Args:
        batch_size: array-like of batch sizes B per step, in the data's batch unit, > 0; any shape.
        eps_max: the peak learning rate of Eq 2, > 0.
        b_noise: B_noise, > 0, in the unit of ``batch_size``.

    Returns:
        np.ndarray of the shape of ``batch_size``: the learning rate at each batch size.

    Raises:
        SurgeError: a non-positive or non-finite argument.
        SurgeTypeError: a non-numeric argument.
    """
    b = _batch(batch_size)
    eps_max = check_scalar(eps_max, "eps_max", positive=True)
    b_noise = check_scalar(b_noise, "b_noise", positive=True)
    return 2.0 * eps_max * np.sqrt(b_noise / b)


def loss_improvement(batch_size, dl_max: float, b_noise: float) -> np.ndarray:
    """Best expected loss decrease per step (Eq 18, Theorem 5): dL_opt(B) = dL_max / (1 + B_noise / B).

    Args:
        batch_size: array-like of batch sizes B per step, in the data's batch unit, > 0; any shape.
        dl_max: dL_max, the large-batch loss decrease per step (Eq 19), > 0, in the loss's unit (nats).
        b_noise: B_noise, > 0, in the unit of ``batch_size``.

    Returns:
        np.ndarray of the shape of ``batch_size``: the loss decrease per step, in the unit of ``dl_max``.

    Raises:
        SurgeError: a non-positive or non-finite argument.
        SurgeTypeError: a non-numeric argument.
    """
    b = _batch(batch_size)
    dl_max = check_scalar(dl_max, "dl_max", positive=True)
    b_noise = check_scalar(b_noise, "b_noise", positive=True)
    return dl_max / (1.0 + b_noise / b)


def critical_batch_size(s_min: float, e_min: float) -> float:
    """B_crit = E_min / S_min (Eq 21), the batch size where (S/S_min - 1)(E/E_min - 1) = 1 balances.

    At B = B_crit a run takes S = 2 S_min steps and E = 2 E_min examples (Eq 20); Eq 21 equates it with
    B_noise.

    Args:
        s_min: S_min, the fewest steps that reach the target (at infinite batch size), > 0.
        e_min: E_min, the fewest examples that reach the target (at B -> 0), > 0, in the data's batch unit
            (examples, tokens or sequences).

    Returns:
        B_crit as a float, in the unit of ``e_min`` per step.

    Raises:
        SurgeError: a non-positive or non-finite argument.
        SurgeTypeError: a non-numeric argument.
    """
    s_min = check_scalar(s_min, "s_min", positive=True)
    e_min = check_scalar(e_min, "e_min", positive=True)
    return e_min / s_min


def steps_to_target(batch_size, s_min: float, e_min: float) -> np.ndarray:
    """Steps S(B) to reach a target at constant batch size (Eq 20 / Eq 46): S = S_min (1 + B_noise / B).

    B_noise here is B_crit = E_min / S_min (Eq 21).

    Args:
        batch_size: array-like of batch sizes B per step, in the data's batch unit, > 0; any shape.
        s_min: S_min, the fewest steps that reach the target, > 0.
        e_min: E_min, the fewest examples that reach the target, > 0, in the unit of ``batch_size``.

    Returns:
        np.ndarray of the shape of ``batch_size``: the steps S (not rounded), > S_min.

    Raises:
        SurgeError: a non-positive or non-finite argument.
        SurgeTypeError: a non-numeric argument.
    """
    b = _batch(batch_size)
    return check_scalar(s_min, "s_min", positive=True) * (1.0 + critical_batch_size(s_min, e_min) / b)


def examples_to_target(batch_size, s_min: float, e_min: float) -> np.ndarray:
    """Examples E(B) = B S(B) to reach a target (Eq 20 / Eq 46): E = E_min (1 + B / B_noise).

    B_noise here is B_crit = E_min / S_min (Eq 21).

    Args:
        batch_size: array-like of batch sizes B per step, in the data's batch unit, > 0; any shape.
        s_min: S_min, the fewest steps that reach the target, > 0.
        e_min: E_min, the fewest examples that reach the target, > 0, in the unit of ``batch_size``.

    Returns:
        np.ndarray of the shape of ``batch_size``: the examples E, > E_min, in the unit of ``e_min``.

    Raises:
        SurgeError: a non-positive or non-finite argument.
        SurgeTypeError: a non-numeric argument.
    """
    b = _batch(batch_size)
    return check_scalar(e_min, "e_min", positive=True) * (1.0 + b / critical_batch_size(s_min, e_min))


def examples_for_steps(steps, s_min: float, e_min: float) -> np.ndarray:
    """The examples E on the Eq 20 frontier for a given number of steps S > S_min.

    From S_min / S + E_min / E = 1 (Eq 46): E = E_min / (1 - S_min / S).

    Args:
        steps: array-like of step counts S, > S_min (need not be integers); any shape.
        s_min: S_min, the fewest steps that reach the target, > 0.
        e_min: E_min, the fewest examples that reach the target, > 0, in the data's batch unit.

    Returns:
        np.ndarray of the shape of ``steps``: the examples E, > E_min, in the unit of ``e_min``.

    Raises:
        SurgeError: a step count <= S_min (fewer steps cannot reach the target); a non-positive or non-finite
            argument.
        SurgeTypeError: a non-numeric argument.
    """
    s = check_array(steps, "steps", positive=True)
    s_min = check_scalar(s_min, "s_min", positive=True)
    e_min = check_scalar(e_min, "e_min", positive=True)
    if (s <= s_min).any():
        raise SurgeError(f"steps must be > s_min={s_min} (fewer steps cannot reach the target); got min {s.min()}")
    return e_min / (1.0 - s_min / s)


def steps_for_examples(examples, s_min: float, e_min: float) -> np.ndarray:
    """The steps S on the Eq 20 frontier for a given number of examples E > E_min: S = S_min / (1 - E_min / E).

    From S_min / S + E_min / E = 1 (Eq 46).

    Args:
        examples: array-like of example counts E, > E_min, in the unit of ``e_min``; any shape.
        s_min: S_min, the fewest steps that reach the target, > 0.
        e_min: E_min, the fewest examples that reach the target, > 0, in the data's batch unit.

    Returns:
        np.ndarray of the shape of ``examples``: the steps S (not rounded), > S_min.

    Raises:
        SurgeError: an example count <= E_min (fewer examples cannot reach the target); a non-positive or
            non-finite argument.
        SurgeTypeError: a non-numeric argument.
    """
    e = check_array(examples, "examples", positive=True)
    s_min = check_scalar(s_min, "s_min", positive=True)
    e_min = check_scalar(e_min, "e_min", positive=True)
    if (e <= e_min).any():
        raise SurgeError(
            f"examples must be > e_min={e_min} (fewer examples cannot reach the target); got min {e.min()}"
        )
    return s_min / (1.0 - e_min / e)


def batch_size_for_steps(steps, s_min: float, e_min: float) -> np.ndarray:
    """The constant batch size that reaches the target in ``steps`` steps: B = E / S on the Eq 20 frontier.

    Inverse of ``steps_to_target``: B = B_noise / (S / S_min - 1), with B_noise = B_crit = E_min / S_min.

    Args:
        steps: array-like of step counts S, > S_min (need not be integers); any shape.
        s_min: S_min, the fewest steps that reach the target, > 0.
        e_min: E_min, the fewest examples that reach the target, > 0, in the data's batch unit.

    Returns:
        np.ndarray of the shape of ``steps``: the batch sizes B, in the unit of ``e_min`` per step.

    Raises:
        SurgeError: a step count <= S_min; a non-positive or non-finite argument.
        SurgeTypeError: a non-numeric argument.
    """
    e = examples_for_steps(steps, s_min, e_min)
    return e / check_array(steps, "steps", positive=True)
