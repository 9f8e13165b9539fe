"""ISM: the implicit score-matching form of the DSM loss (Yeats et al. 2025, Thm 3.3).

    LID_ISM(x) = (1/K) sum_k [ n + sigma^2 (2 tr grad s(x~_k) + ||s(x~_k)||^2) ],  x~_k = x + sigma eps_k
               = (1/K) sum_k [ 2 tr J_D(x~_k) - n + ||D(x~_k) - x~_k||^2 / sigma^2 ],

using ``grad s = (J_D - I) / sigma^2``.  By Stein's lemma it equals DSM in expectation; it needs a
Jacobian trace (``trace="exact"`` or ``"hutchinson"`` with ``n_probes``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from scorelid.denoiser import Denoiser, SigmaLike, is_per_point
from scorelid.estimators.common import Context, denoise, noised_copies, repeat_sigma, sq_norm, wide
from scorelid.estimators.flipd import denoiser_trace
from scorelid.estimators.noise import point_noise

__all__ = ["ism"]


def ism(
    D: Denoiser,
    x: Tensor,
    sigma: SigmaLike,
    indices: Tensor,
    ctx: Context,
    trace: str = "exact",
    n_probes: int = 8,
    ad: str = "auto",
) -> Tensor:
    """Per-point ISM LID ``[P]`` (float64)."""
    P, K, n = x.shape[0], ctx.n_noise, x[0].numel()
    eps = point_noise(ctx.seed, indices, K, x.shape[1:], device=x.device, dtype=wide(x).dtype)
    y = noised_copies(x, sigma, eps)  # [P*K, *shape]
    s_rows = repeat_sigma(sigma, K)
    with torch.no_grad():
        out = denoise(D, y.detach(), s_rows, ctx.batch_size)
    sig2 = s_rows.double().cpu() ** 2 if is_per_point(s_rows) else float(s_rows) ** 2
    fit = sq_norm(wide(out) - wide(y)).double().cpu() / sig2
    draws = torch.arange(K).repeat(P)
    tr = denoiser_trace(
        D, y, s_rows, indices.repeat_interleave(K), ctx, trace, n_probes, ad, draws=draws
    )
    return (2 * tr - n + fit).reshape(P, K).mean(1)
