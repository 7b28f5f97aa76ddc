"""In-run gradient-noise measurement: B_simple, the paper's B_noise (Eq 14), eps_max (Eq 16), the
optimal-lr curve over batch size (Eq 9 and Lemma 1), in a user's own training.

- :func:`estimate_noise` (torch-free, :mod:`surge.monitor.estimators`): from an (m, n) array of
  per-example or per-micro-batch gradients and an optional Hessian-vector product.
- :class:`NoiseMonitor` (:mod:`surge.monitor.loop`): measures every K steps of a plain PyTorch loop.
- :mod:`surge.monitor.torch_grads`: per-example gradients (torch.func vmap/grad, micro-batch fallback)
  and Hessian-vector products (jvp of grad).
- :mod:`surge.monitor.lightning` and :mod:`surge.monitor.hf`: a Lightning Callback and a transformers
  TrainerCallback (extras ``surge[lightning]``, ``surge[hf]``).

See docs/monitor.md.
"""

from __future__ import annotations

from surge.monitor.estimators import COMPONENTS, NoiseEstimate, estimate_noise, pool_estimates

__all__ = ["COMPONENTS", "NoiseEstimate", "NoiseMonitor", "estimate_noise", "pool_estimates"]


def __getattr__(name: str):  # torch only when asked for
    if name == "NoiseMonitor":
        from surge.monitor.loop import NoiseMonitor

        return NoiseMonitor
    raise AttributeError(f"module 'surge.monitor' has no attribute {name!r}")
