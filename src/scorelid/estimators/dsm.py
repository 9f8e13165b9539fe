"""DSM: the denoising score-matching loss as an LID estimator (Yeats et al. 2025, Thm 3.1).

    LID_DSM(x) = (1/K) sum_k ||D(x + sigma eps_k, sigma) - x||^2 / sigma^2
               = (1/K) sum_k sigma^2 ||eps_k / sigma + s(x + sigma eps_k)||^2,

which is at least ``d`` in expectation as ``sigma -> 0`` for ``x`` on a ``d``-dimensional
manifold.  Forward passes only: the caller runs it under ``torch.inference_mode()``.
"""

from __future__ import annotations

from torch import Tensor

from scorelid.denoiser import Denoiser, SigmaLike, is_per_point
from scorelid.estimators.common import Context, denoise, noised_copies, repeat_sigma, sq_norm, wide
from scorelid.estimators.noise import point_noise

__all__ = ["dsm", "dsm_errors"]


def dsm_errors(D: Denoiser, x: Tensor, sigma: SigmaLike, indices: Tensor, ctx: Context) -> Tensor:
    """Scaled denoising errors ``e_k = (D(x + sigma eps_k) - x) / sigma``: ``[P, K, *shape]``.

    In float32 or wider whatever the model's dtype (``common.wide``); NaN/inf where the model's
    output was not finite.
    """
    K = ctx.n_noise
    eps = point_noise(ctx.seed, indices, K, x.shape[1:], device=x.device, dtype=wide(x).dtype)
    y = noised_copies(x, sigma, eps)
    out = denoise(D, y, repeat_sigma(sigma, K), ctx.batch_size)
    err = wide(out).reshape(x.shape[0], K, *x.shape[1:]) - wide(x).unsqueeze(1)
    return err / _per_point(sigma, err)


def dsm(D: Denoiser, x: Tensor, sigma: SigmaLike, indices: Tensor, ctx: Context) -> Tensor:
    """Per-point DSM LID ``[P]`` (float64)."""
    err = dsm_errors(D, x, sigma, indices, ctx)
    P, K = err.shape[:2]
    return sq_norm(err.reshape(P * K, -1)).reshape(P, K).mean(1).double().cpu()


def _per_point(sigma: SigmaLike, like: Tensor) -> Tensor | float:
    if is_per_point(sigma):
        return sigma.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))
    return float(sigma)
