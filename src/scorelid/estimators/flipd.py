"""FLIPD (Kamkari et al. 2024): LID from the trace of the score's Jacobian at the clean point.

    LID_FLIPD(x) = n + sigma^2 (tr grad s(x) + ||s(x)||^2) = tr J_D(x) + ||D(x) - x||^2 / sigma^2,

with ``J_D = dD/dy`` at ``y = x``.  The trace is exact (``n`` JVPs, ``trace="exact"``) or a
Hutchinson estimate with ``n_probes`` Rademacher probes (``trace="hutchinson"``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from scorelid.denoiser import Denoiser, SigmaLike, is_per_point
from scorelid.estimators.common import Context, denoise, sq_norm, wide
from scorelid.estimators.jacobian import trace_exact, trace_hutchinson
from scorelid.estimators.noise import PROBE_STREAM, point_rademacher

__all__ = ["TRACES", "denoiser_trace", "flipd"]

TRACES = ("exact", "hutchinson")


def denoiser_trace(
    D: Denoiser,
    y: Tensor,
    sigma: SigmaLike,
    indices: Tensor,
    ctx: Context,
    trace: str = "exact",
    n_probes: int = 8,
    ad: str = "auto",
    draws: Tensor | None = None,
) -> Tensor:
    """``tr dD/dy`` at each row of ``y`` ``[R, *shape]``: ``[R]`` float64.

    Rows are processed ``ctx.batch_size`` at a time; the exact trace pushes ``batch_size // rows``
    basis vectors through together (forward mode) or loops over them (reverse mode).
    Hutchinson probes of row ``r`` come from the generator of ``(ctx.seed, indices[r], stream)``
    with ``stream = PROBE_STREAM + draws[r]``: rows that share a point (several noise draws of
    it) get independent probes.
    """
    if trace not in TRACES:
        raise ValueError(f"trace must be one of {TRACES}, got {trace!r}")
    if n_probes < 1:
        raise ValueError(f"n_probes must be >= 1, got {n_probes}")
    R = y.shape[0]
    streams = PROBE_STREAM + (torch.zeros(R, dtype=torch.long) if draws is None else draws.cpu())
    out = torch.empty(R, dtype=torch.float64, device=y.device)
    step = ctx.batch_size  # rows per pass; the exact trace batches basis vectors up to the same size
    for start in range(0, R, step):
        yb = y[start : start + step].detach()
        sb = sigma[start : start + step] if is_per_point(sigma) else sigma

        def f(v: Tensor, sb: SigmaLike = sb) -> Tensor:
            return D(v, sb)

        if trace == "exact":
            chunk = max(1, ctx.batch_size // yb.shape[0])
            out[start : start + step] = trace_exact(f, yb, chunk=chunk, ad=ad)
        else:
            sl = slice(start, start + step)
            probes = _probes(ctx.seed, indices[sl], streams[sl], n_probes, yb)
            out[start : start + step] = trace_hutchinson(f, yb, probes, ad=ad)
    return out.cpu()  # non-finite where the denoiser is: estimate() reports those points as NaN


def _probes(seed: int, indices: Tensor, streams: Tensor, m: int, like: Tensor) -> Tensor:
    """Probes ``[R, m, *shape]``; row ``r`` from the generator of ``(seed, indices[r], streams[r])``."""
    rows = [
        point_rademacher(seed, [i], m, like.shape[1:], like.device, like.dtype, stream=s)[0]
        for i, s in zip(indices.tolist(), streams.tolist(), strict=True)
    ]
    return torch.stack(rows)


def flipd(
    D: Denoiser,
    x: Tensor,
    sigma: SigmaLike,
    indices: Tensor,
    ctx: Context,
    trace: str = "exact",
    n_probes: int = 8,
    ad: str = "auto",
) -> Tensor:
    """Per-point FLIPD LID ``[P]`` (float64)."""
    with torch.no_grad():
        out = denoise(D, x.detach(), sigma, ctx.batch_size)
    s2 = sigma.double().cpu() ** 2 if is_per_point(sigma) else float(sigma) ** 2
    fit = sq_norm(wide(out) - wide(x)).double().cpu() / s2
    return denoiser_trace(D, x, sigma, indices, ctx, trace, n_probes, ad) + fit
