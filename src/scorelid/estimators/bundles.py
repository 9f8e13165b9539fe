"""Spectral estimators: the normal bundle (Stanczuk et al. 2024) and the error bundle (paper).

Normal bundle.  Scores at ``K >= n`` noised copies ``x + sigma eps_k`` point back to the manifold,
so they span its normal space (``n - d`` directions of size ``~1/sigma``).  We subtract the score
at the clean point, ``s(x + sigma eps_k) - s(x)``, which removes the drift along the manifold that
all draws share (without it a rank-one tangent component can be mistaken for a normal direction),
take the singular values of the ``[K, n]`` stack, and count the normal directions as those above
the largest gap in ``log`` singular value among singular values of at least ``GAP_FLOOR`` (1e-3) of
the largest (or above ``threshold * s_max`` when a threshold is given).  LID = ``n - #normal``; the
largest-gap rule returns values in ``[1, n - 1]``.

Error bundle.  Errors ``e_k = (D(x + sigma eps_k) - x) / sigma`` lie in the tangent space (for a
flat manifold ``E[e e^T]`` is the tangent projector), so LID = the number of eigenvalues of
``(1/K) sum_k e_k e_k^T`` above ``eps`` (default 1e-2, in units of the noise variance).  Computed
through the ``K x K`` Gram matrix ``(1/K) E E^T`` when ``K < n``; at most ``min(K, n)``.  Its trace
is the DSM estimate.

A point whose stack holds a non-finite value (the model returned NaN/inf) gets NaN eigenvalues /
LID; its stack is zeroed before the batched linear algebra so that it cannot disturb the others.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scorelid.denoiser import Denoiser, SigmaLike
from scorelid.estimators.common import Context, denoise, noised_copies, repeat_sigma, wide
from scorelid.estimators.dsm import dsm_errors
from scorelid.estimators.noise import point_noise

__all__ = ["GAP_FLOOR", "error_bundle", "error_bundle_eigenvalues", "normal_bundle",
           "normal_bundle_spectrum"]

#: Normal bundle: the largest-gap rule considers gaps below singular values of at least this fraction
#: of the point's largest (normal directions are O(1) of it in noise units, tangent ones the model's
#: error; float32 rounding sits near 1e-5).
GAP_FLOOR = 1e-3


def error_bundle_eigenvalues(
    D: Denoiser, x: Tensor, sigma: SigmaLike, indices: Tensor, ctx: Context
) -> Tensor:
    """Eigenvalues of the error covariance ``(1/K) sum_k e_k e_k^T``: ``[P, min(K, n)]``, descending."""
    err = dsm_errors(D, x, sigma, indices, ctx)
    P, K = err.shape[:2]
    E, bad = _zero_nonfinite(err.reshape(P, K, -1).to(torch.float64))
    gram = E @ E.transpose(1, 2) / K if K <= E.shape[2] else E.transpose(1, 2) @ E / K
    vals = torch.linalg.eigvalsh(gram).flip(-1).cpu()
    vals[bad.cpu()] = float("nan")
    return vals


def _zero_nonfinite(stack: Tensor) -> tuple[Tensor, Tensor]:
    """``stack`` ``[P, K, n]`` with the points holding NaN/inf zeroed, and those points ``[P]`` (bool)."""
    bad = ~torch.isfinite(stack).flatten(1).all(1)
    if bad.any():
        stack = torch.where(bad[:, None, None], torch.zeros((), dtype=stack.dtype, device=stack.device),
                            stack)
    return stack, bad


def error_bundle(
    D: Denoiser, x: Tensor, sigma: SigmaLike, indices: Tensor, ctx: Context, eps: float = 1e-2
) -> Tensor:
    """Per-point error-bundle LID ``[P]`` (float64): eigenvalues above ``eps``."""
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    vals = error_bundle_eigenvalues(D, x, sigma, indices, ctx)
    lid = (vals > eps).sum(1).double()
    lid[torch.isnan(vals[:, 0])] = float("nan")
    return lid


def normal_bundle_spectrum(
    D: Denoiser, x: Tensor, sigma: SigmaLike, indices: Tensor, ctx: Context, center: bool = True
) -> Tensor:
    """Singular values of each point's (centred) score stack: ``[P, n]`` float64, descending, NaN
    rows for points whose stack is not finite.  Normal directions sit near the largest, tangent
    ones at the model's error; ``normal_bundle`` counts the former.  Needs ``ctx.n_noise >= n``."""
    P, K, n = x.shape[0], ctx.n_noise, x[0].numel()
    if K < n:
        raise ValueError(
            f"normal_bundle needs n_noise >= n (the ambient dimension, {n}) to see every normal "
            f"direction; got n_noise={K}"
        )
    eps = point_noise(ctx.seed, indices, K, x.shape[1:], device=x.device, dtype=wide(x).dtype)
    y = noised_copies(x, sigma, eps)
    out = denoise(D, y, repeat_sigma(sigma, K), ctx.batch_size)
    scores = (out.to(torch.float64) - y.to(torch.float64)).reshape(P, K, n)
    if center:
        clean = denoise(D, x, sigma, ctx.batch_size).to(torch.float64) - x.to(torch.float64)
        scores = scores - clean.reshape(P, 1, n)
    # the 1/sigma^2 of the score is a common factor of each point's stack: irrelevant to ratios
    scores, bad = _zero_nonfinite(scores)
    sv = torch.linalg.svdvals(scores).cpu()
    sv[bad.cpu()] = float("nan")
    return sv


def normal_bundle(
    D: Denoiser,
    x: Tensor,
    sigma: SigmaLike,
    indices: Tensor,
    ctx: Context,
    threshold: float | None = None,
    center: bool = True,
) -> Tensor:
    """Per-point normal-bundle LID ``[P]`` (float64); needs ``ctx.n_noise >= n``."""
    if threshold is not None and not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    sv = normal_bundle_spectrum(D, x, sigma, indices, ctx, center)  # [P, n], descending
    P, n = sv.shape
    bad = torch.isnan(sv[:, 0])
    sv = sv.nan_to_num(0.0)
    if threshold is not None:
        normal = (sv > threshold * sv[:, :1]).sum(1)
    else:
        logs = torch.log(sv.clamp_min(torch.finfo(torch.float64).tiny))
        gaps = logs[:, :-1] - logs[:, 1:]
        # only gaps below a real singular value: under GAP_FLOOR of the largest lie float32 rounding
        # and exact zeros of the stack, whose log ratios are arbitrary (a 1e-9 / 1e-12 "gap" beat the
        # normal/tangent one and read LID 1-12 on curved manifolds of dimension 32)
        gaps = gaps.masked_fill(sv[:, :-1] < GAP_FLOOR * sv[:, :1], -math.inf)
        # one coordinate has no gap: a continuum on a line reads 1 (the rule reads 1..n-1 otherwise)
        normal = gaps.argmax(1) + 1 if n > 1 else torch.zeros(P, dtype=torch.long)
    lid = (n - normal).double()
    lid[bad] = float("nan")
    return lid
