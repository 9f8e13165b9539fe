"""Shared plumbing for the estimators: chunked denoiser calls, noised copies, squared norms."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from scorelid.denoiser import Denoiser, SigmaLike, check_denoised

__all__ = ["Context", "denoise", "noised_copies", "repeat_sigma", "sq_norm"]


@dataclass(frozen=True)
class Context:
    """What every estimator receives besides the points.

    Attributes:
        n_noise: noise draws ``K`` per point.
        seed: base seed; point ``i`` draws from a generator seeded by ``(seed, i)``.
        batch_size: rows per denoiser call.
    """

    n_noise: int
    seed: int
    batch_size: int


def repeat_sigma(sigma: SigmaLike, k: int) -> SigmaLike:
    """Per-point sigma ``[P]`` -> per-row ``[P * k]``; a float stays a float."""
    if isinstance(sigma, Tensor) and sigma.ndim == 1:
        return sigma.repeat_interleave(k)
    return sigma


def _rows(sigma: SigmaLike, start: int, stop: int) -> SigmaLike:
    if isinstance(sigma, Tensor) and sigma.ndim == 1:
        return sigma[start:stop]
    return sigma


def denoise(D: Denoiser, y: Tensor, sigma: SigmaLike, batch_size: int) -> Tensor:
    """``D(y, sigma)`` in calls of at most ``batch_size`` rows, each output validated."""
    outs = []
    for start in range(0, y.shape[0], batch_size):
        yb = y[start : start + batch_size]
        outs.append(check_denoised(D(yb, _rows(sigma, start, start + batch_size)), yb))
    return torch.cat(outs) if len(outs) > 1 else outs[0]


def noised_copies(x: Tensor, sigma: SigmaLike, eps: Tensor) -> Tensor:
    """``x + sigma * eps`` for ``x`` ``[P, *shape]`` and ``eps`` ``[P, K, *shape]`` -> ``[P*K, *shape]``."""
    s = torch.as_tensor(sigma, device=x.device, dtype=x.dtype)
    s = s.reshape(-1, *([1] * (eps.ndim - 1))) if s.ndim == 1 else s
    return (x.unsqueeze(1) + s * eps).reshape(-1, *x.shape[1:])


def sq_norm(v: Tensor) -> Tensor:
    """Row-wise squared Euclidean norm in float32 or wider: ``[R, *shape]`` -> ``[R]``."""
    v = v.reshape(v.shape[0], -1)
    if v.dtype not in (torch.float32, torch.float64):
        v = v.float()
    return (v * v).sum(dim=1)
