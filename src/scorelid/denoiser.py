"""The denoiser abstraction: every model becomes ``D(y, sigma)`` on the variance-exploding scale.

A denoiser is any callable ``D(y, sigma) -> Tensor`` with

* ``y``: ``[B, *shape]`` noisy inputs, ``y = x + sigma * eps``, ``eps ~ N(0, I)``;
* ``sigma``: a Python float (one level for the whole batch) or a ``[B]`` tensor (one per row),
  in the units of ``x`` (variance-exploding, "VE", scale);
* return value: ``[B, *shape]``, the posterior mean ``E[x | y]``.

Vectors ``[B, n]`` and images ``[B, C, H, W]`` are both fine; ``n`` is the product of the trailing
dimensions.  Estimators never learn which network or library made the denoiser: adapters for
other parameterisations (ε-, v-prediction, flow matching, EDM preconditioning) convert to this one
object.  By Tweedie's formula the score is ``s(y, sigma) = (D(y, sigma) - y) / sigma**2``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

SigmaLike = float | Tensor

__all__ = ["Denoiser", "SigmaLike", "check_denoised", "is_per_point", "score", "sigma_like"]


@runtime_checkable
class Denoiser(Protocol):
    """Anything that maps noisy inputs to posterior means on the VE scale."""

    def __call__(self, y: Tensor, sigma: SigmaLike) -> Tensor:  # pragma: no cover - protocol
        ...


def is_per_point(sigma: SigmaLike) -> bool:
    """Whether ``sigma`` gives one level per point (a ``[N]`` tensor) rather than one for all (a number)."""
    return isinstance(sigma, Tensor) and sigma.ndim == 1


def sigma_like(sigma: SigmaLike, y: Tensor) -> Tensor:
    """Broadcastable noise level: ``[B, 1, ..., 1]`` (same ndim as ``y``), y's device and dtype.

    Denoiser implementations call this so that a float and a ``[B]`` tensor both work.
    """
    s = torch.as_tensor(sigma, device=y.device, dtype=y.dtype)
    if s.ndim == 0:
        s = s.expand(y.shape[0])
    if s.ndim != 1 or s.shape[0] != y.shape[0]:
        raise ValueError(
            f"sigma must be a float or a [B] tensor with B={y.shape[0]}, got shape {tuple(s.shape)}"
        )
    return s.reshape(-1, *([1] * (y.ndim - 1)))


def check_denoised(out: object, y: Tensor, finite: bool = True) -> Tensor:
    """Validate a denoiser's output for input ``y``: a tensor of y's shape, with finite values
    unless ``finite=False`` (the estimators turn non-finite rows into per-point NaN instead)."""
    if not isinstance(out, Tensor):
        raise ValueError(f"denoiser returned {type(out).__name__}, expected a torch.Tensor")
    if out.shape != y.shape:
        raise ValueError(
            f"denoiser returned shape {tuple(out.shape)} for input of shape {tuple(y.shape)}; "
            "it must return the posterior mean with the input's shape"
        )
    if finite and not torch.isfinite(out).all():
        raise ValueError("denoiser returned non-finite values (NaN or inf)")
    return out


def score(D: Denoiser, y: Tensor, sigma: SigmaLike) -> Tensor:
    """Tweedie score ``s(y, sigma) = (D(y, sigma) - y) / sigma**2``, shape ``[B, *shape]``."""
    return (D(y, sigma) - y) / sigma_like(sigma, y) ** 2
