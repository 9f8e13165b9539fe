"""Shared plumbing for the estimators: chunked denoiser calls, noised copies, squared norms.

Numerics.  The denoiser sees the data's dtype (a float16/bfloat16 model gets half-precision
inputs), but everything computed from its outputs -- noised inputs, errors ``D(y) - x``, squared
norms, traces -- is formed in float32 or wider (``wide``): half precision has 8-11 mantissa bits,
too few to subtract nearly equal numbers or to sum ``n`` squares.  Non-finite outputs are not
rejected here: they propagate to that point's value, which ``estimate`` turns into NaN with a
``NonFiniteWarning`` (one bad point must not stop or contaminate the others).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from scorelid.denoiser import Denoiser, SigmaLike, check_denoised, is_per_point

__all__ = ["Context", "denoise", "noised_copies", "repeat_sigma", "sq_norm", "wide"]


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
    if is_per_point(sigma):
        return sigma.repeat_interleave(k)
    return sigma


def _rows(sigma: SigmaLike, start: int, stop: int) -> SigmaLike:
    if is_per_point(sigma):
        return sigma[start:stop]
    return sigma


def wide(t: Tensor) -> Tensor:
    """``t`` in float32 if it is in a narrower float type (float16, bfloat16, float8), else as is."""
    if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
        return t.float()
    return t


def check_output(out: object, y: Tensor) -> Tensor:
    """A denoiser output for input ``y`` must be a tensor of y's shape (its values are not checked)."""
    return check_denoised(out, y, finite=False)


def denoise(D: Denoiser, y: Tensor, sigma: SigmaLike, batch_size: int) -> Tensor:
    """``D(y, sigma)`` in calls of at most ``batch_size`` rows, each output's shape checked."""
    outs = []
    for start in range(0, y.shape[0], batch_size):
        yb = y[start : start + batch_size]
        outs.append(check_output(D(yb, _rows(sigma, start, start + batch_size)), yb))
    return torch.cat(outs) if len(outs) > 1 else outs[0]


def noised_copies(x: Tensor, sigma: SigmaLike, eps: Tensor) -> Tensor:
    """``x + sigma * eps`` for ``x`` ``[P, *shape]`` and ``eps`` ``[P, K, *shape]`` -> ``[P*K, *shape]``.

    Formed in float32 or wider and rounded once to x's dtype.
    """
    xw = wide(x)
    s = torch.as_tensor(sigma, device=x.device, dtype=xw.dtype)
    s = s.reshape(-1, *([1] * (eps.ndim - 1))) if s.ndim == 1 else s
    return (xw.unsqueeze(1) + s * wide(eps)).reshape(-1, *x.shape[1:]).to(x.dtype)


def sq_norm(v: Tensor) -> Tensor:
    """Row-wise squared Euclidean norm in float32 or wider: ``[R, *shape]`` -> ``[R]``."""
    v = wide(v.reshape(v.shape[0], -1))
    return (v * v).sum(dim=1)
