"""``estimate``: the one entry point to every LID estimator."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from scorelid.denoiser import Denoiser, SigmaLike, is_per_point
from scorelid.estimators.bundles import error_bundle, normal_bundle
from scorelid.estimators.common import Context
from scorelid.estimators.dsm import dsm
from scorelid.estimators.flipd import flipd
from scorelid.estimators.ism import ism
from scorelid.runtime.guards import (
    BatchSizeWarning,
    NonFiniteWarning,
    free_accelerator_memory,
    is_out_of_memory,
)

__all__ = ["AUTO_BUNDLE_MAX_N", "METHODS", "call_shape", "default_batch_size", "estimate", "resolve_method",
           "validate_points", "validate_sigma"]

#: Elements per aligned block: CPU kernels vectorise over 16-64 elements per step and finish a
#: tensor (or a thread's share of it) with a scalar loop whose results can differ in the last bit.
_ALIGN_ELEMENTS = 64
#: Points per padded chunk, at most (a call on one point costs that many points' work).
_MAX_POINTS = 16


@dataclass(frozen=True)
class _Method:
    fn: Callable[..., Tensor]
    needs_grad: bool
    default_noise: Callable[[int], int]  # n -> default K
    rows_per_point: Callable[[int], int]  # K -> denoiser rows per point


METHODS: dict[str, _Method] = {
    "dsm": _Method(dsm, False, lambda n: 8, lambda k: k),
    "ism": _Method(ism, True, lambda n: 8, lambda k: k),
    "flipd": _Method(flipd, True, lambda n: 1, lambda k: 1),
    "normal_bundle": _Method(normal_bundle, False, lambda n: 2 * n, lambda k: k + 1),
    "error_bundle": _Method(error_bundle, False, lambda n: n, lambda k: k),
}


#: ``method="auto"`` is the normal bundle up to this many coordinates (``K = 2n`` rows and an SVD of a
#: ``[K, n]`` stack per point), DSM above
AUTO_BUNDLE_MAX_N = 1024


def resolve_method(method: str, n: int, n_noise: int | None = None) -> str:
    """``method``, with ``"auto"`` resolved for points of ``n`` coordinates: the normal bundle when it
    can run (``n <= AUTO_BUNDLE_MAX_N``, and ``n_noise``, if given, at least ``n``), else ``"dsm"`` (so
    an explicit small ``n_noise`` keeps meaning DSM's noise draws).  Other names pass unchanged."""
    if method != "auto":
        return method
    bundle = n <= AUTO_BUNDLE_MAX_N and (n_noise is None or n_noise >= n)
    return "normal_bundle" if bundle else "dsm"


def default_batch_size(n: int) -> int:
    """Rows per denoiser call when none is given: about 1M input values, at most 1024 rows."""
    return max(1, min(1024, 2**20 // max(1, n)))


def call_shape(batch_size: int, rows_per_point: int, row_numel: int) -> tuple[int, int]:
    """Rows per denoiser call and points per chunk: the fixed shapes that make results exact.

    ``estimate`` pads every chunk of points to exactly ``points`` points (repeating the chunk's
    last point) and splits its rows into calls of ``rows`` rows, so the denoiser and every tensor
    operation see the same shapes however many points are asked for together.  Both numbers are
    kept multiples of ``64 / gcd(64, row_numel)`` (while the batch size allows): every call then
    holds a whole number of 64-element blocks, so no point's row lies in a vectorised kernel's
    scalar tail.  ``rows`` never exceeds ``batch_size``; ``points`` is at most 16 (or one aligned
    block), so that a call on a few points wastes little on padding.

    Args:
        batch_size: the rows per call asked for (memory budget).
        rows_per_point: denoiser rows one point needs (``K`` for DSM).
        row_numel: elements in one row (``n``).

    Returns:
        ``(rows, points)``.
    """
    align = _ALIGN_ELEMENTS // math.gcd(_ALIGN_ELEMENTS, row_numel)  # rows per aligned block
    rows = batch_size if batch_size < align else batch_size - batch_size % align
    # at most _MAX_POINTS points (or one aligned block of them): a call on a few points pays for
    # the padding, so the chunk stays small; rows per call are unaffected (the traces push more
    # basis vectors or probes through together)
    points = min(max(1, rows // rows_per_point), max(_MAX_POINTS, align))
    if rows >= align:  # a multiple of the block, so that every call of points * j rows is aligned
        points = -(-points // align) * align
    return rows, points


def validate_points(x: Tensor | np.ndarray) -> Tensor:
    """``x`` as a floating tensor ``[N, *shape]`` with N >= 1, finite; else ``ValueError``."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise ValueError(f"x must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"x must have shape [N, *shape] (at least 2 dims), got {tuple(x.shape)}")
    if x.shape[0] == 0 or x[0].numel() == 0:
        raise ValueError(f"x is empty (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        x = x.float()
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(1)
    if bad.any():
        rows = bad.nonzero().squeeze(1)[:5].tolist()
        raise ValueError(
            f"x has non-finite values (NaN or inf) in {int(bad.sum())} rows, e.g. rows {rows}"
        )
    return x


def validate_sigma(sigma: SigmaLike, num: int, device: torch.device, dtype: torch.dtype):
    """A positive finite float, or a ``[num]`` tensor of them on x's device; else ``ValueError``."""
    if isinstance(sigma, Tensor | np.ndarray) and np.ndim(sigma) > 0:
        s = torch.as_tensor(sigma, dtype=dtype, device=device).reshape(-1)
        if s.shape[0] != num:
            raise ValueError(f"sigma has {s.shape[0]} values for {num} points")
        if not (torch.isfinite(s).all() and (s > 0).all()):
            raise ValueError("sigma must be finite and > 0 for every point")
        return s
    try:
        s = float(sigma)
    except (TypeError, ValueError):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}") from None
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"sigma must be finite and > 0, got {s}")
    return s


def estimate(
    D: Denoiser,
    x: Tensor | np.ndarray,
    method: str,
    sigma: SigmaLike,
    n_noise: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    *,
    indices: Tensor | None = None,
    progress: bool = False,
    stats: dict | None = None,
    **options,
) -> Tensor:
    """Per-point local intrinsic dimension of ``x`` under denoiser ``D``.

    Args:
        D: denoiser ``D(y, sigma)`` on the variance-exploding scale (see ``scorelid.denoiser``).
        x: data points ``[N, *shape]`` (vectors ``[N, n]`` or images ``[N, C, H, W]``), any
            device and floating dtype; the denoiser sees that device and dtype.
        method: ``"dsm"``, ``"ism"``, ``"flipd"``, ``"normal_bundle"`` or ``"error_bundle"``.
        sigma: noise level (VE scale, units of ``x``): a float or ``[N]`` per-point values.
            (``scorelid.estimate``, the public entry point, also takes ``"auto"``: see
            ``scorelid.sigma.auto``.)
        n_noise: noise draws ``K`` per point; default 8 (``dsm``, ``ism``), ``2n`` (``normal_bundle``:
            it needs ``K >= n``, and with ``K = n`` the sampled normal spectrum reaches down into the
            tangent one on a curved manifold) or ``n`` (``error_bundle``: it can count at most ``K``
            tangent directions; the paper's code used 8).  Unused by ``flipd``.
        seed: point ``i``'s noise comes from a generator seeded by ``(seed, indices[i])``.
        batch_size: rows per denoiser call (default: ``default_batch_size(n)``), kept a multiple
            of ``64 / gcd(64, n)`` when it is larger (``call_shape``).  Every chunk of points is
            padded to the same number of points, so the denoiser always sees the same shapes and
            a point's result is bit-identical whatever other points are estimated with it; a
            different ``batch_size`` can change float32 rounding (about 1e-7 relative).
        indices: global indices of the rows of ``x`` (default ``0..N-1``); set them when ``x`` is
            a shard of a larger set so that the noise matches the unsharded run.
        progress: show a progress bar.
        stats: if a dict is given, it is filled with ``batch_size`` (the rows per denoiser call
            finally used: smaller than asked after out-of-memory errors), ``oom_retries`` and
            ``nonfinite`` (the number of points whose LID is NaN).
        **options: method options: ``trace`` (``"exact"``/``"hutchinson"``), ``n_probes`` and
            ``ad`` (``"auto"``/``"forward"``/``"reverse"``) for ``ism``/``flipd``; ``eps`` for
            ``error_bundle``; ``threshold`` and ``center`` for ``normal_bundle``.

    Returns:
        ``[N]`` float64 tensor on the CPU: the per-point LID.  Its mean is the dataset's LID.

    Guards (``scorelid.runtime.guards``):
        * non-finite inputs ``x`` or ``sigma`` raise ``ValueError``; a non-finite model output
          makes only that point's LID NaN, with one ``NonFiniteWarning`` giving the count;
        * half-precision models get half-precision inputs, but errors, norms and traces are
          accumulated in float32 or wider;
        * out of memory (``torch.OutOfMemoryError``, or a ``RuntimeError`` saying "out of
          memory"): the batch size is halved and the batch retried, with a ``BatchSizeWarning``
          naming the new size; the same points are retried with the same noise.
    """
    if isinstance(sigma, str):
        if sigma == "auto":  # the curve and its rules sit above the estimators (scorelid.sigma)
            raise ValueError("sigma='auto' is chosen from LID curves: call scorelid.estimate "
                             "(scorelid.sigma.estimate), not scorelid.estimators.estimate")
        raise ValueError(f"sigma must be a positive number or a [N] tensor, got {sigma!r}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    spec = METHODS[method]
    if spec.needs_grad and not getattr(D, "differentiable", True):
        forward_only = ", ".join(sorted(m for m, s in METHODS.items() if not s.needs_grad))
        raise ValueError(f"method {method!r} needs the denoiser's Jacobian, but {type(D).__name__} has no "
                         f"gradients (e.g. an ONNX model); use a forward-only method: {forward_only}")
    x = validate_points(x)
    N, n = x.shape[0], x[0].numel()
    sigma = validate_sigma(sigma, N, x.device, x.dtype)
    K = spec.default_noise(n) if n_noise is None else n_noise
    if not isinstance(K, int | np.integer) or K < 1:
        raise ValueError(f"n_noise must be an integer >= 1, got {n_noise!r}")
    bs = default_batch_size(n) if batch_size is None else batch_size
    if not isinstance(bs, int | np.integer) or bs < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if indices is None:
        indices = torch.arange(N)
    indices = torch.as_tensor(indices, dtype=torch.long).cpu()
    if indices.shape != (N,):
        raise ValueError(f"indices must have shape [{N}], got {tuple(indices.shape)}")

    rows, _ = call_shape(int(bs), spec.rows_per_point(int(K)), n)
    ctx = Context(n_noise=int(K), seed=int(seed), batch_size=rows)
    out = torch.empty(N, dtype=torch.float64)
    retries = 0
    bar = tqdm(total=N, desc=method, unit="pt", disable=not progress, leave=False)
    grad_ctx = torch.inference_mode if not spec.needs_grad else torch.enable_grad
    with bar, grad_ctx():
        start = 0
        while start < N:
            _, step = call_shape(ctx.batch_size, spec.rows_per_point(ctx.n_noise), n)
            sl = slice(start, min(start + step, N))
            xb, sb, ib = _padded(x[sl], sigma[sl] if is_per_point(sigma) else sigma, indices[sl], step)
            try:
                out[sl] = spec.fn(D, xb, sb, ib, ctx, **options)[: sl.stop - sl.start]
                oom = False
            except Exception as exc:
                if not is_out_of_memory(exc) or ctx.batch_size == 1:
                    raise
                oom = True  # handled below, once the failed batch's tensors are released
            if oom:
                ctx = _halved(ctx, n)
                retries += 1
                continue  # the same points again, in smaller batches: same noise
            bar.update(sl.stop - sl.start)
            start = sl.stop
    bad = ~torch.isfinite(out)
    if bad.any():
        out[bad] = float("nan")
        warnings.warn(
            f"{int(bad.sum())} of {N} points got a non-finite {method} value (the denoiser returned "
            f"NaN or inf there); their LID is NaN", NonFiniteWarning, stacklevel=2)
    if stats is not None:
        stats.update(batch_size=ctx.batch_size, oom_retries=retries, nonfinite=int(bad.sum()))
    return out


def _padded(x: Tensor, sigma: SigmaLike, indices: Tensor, points: int) -> tuple[Tensor, SigmaLike, Tensor]:
    """A chunk ``x`` ``[P, *shape]`` (with its sigma and indices) padded to ``points`` rows.

    The padding repeats the last point (a valid input for the model); its results are dropped.
    """
    pad = points - x.shape[0]
    if pad <= 0:
        return x, sigma, indices
    x = torch.cat([x, x[-1:].expand(pad, *x.shape[1:])])
    indices = torch.cat([indices, indices[-1:].expand(pad)])
    if is_per_point(sigma):
        sigma = torch.cat([sigma, sigma[-1:].expand(pad)])
    return x, sigma, indices


def _halved(ctx: Context, row_numel: int) -> Context:
    """``ctx`` with half the batch size, after an out-of-memory error (warns with the new size)."""
    free_accelerator_memory()
    rows, _ = call_shape(max(1, ctx.batch_size // 2), 1, row_numel)
    new = Context(n_noise=ctx.n_noise, seed=ctx.seed, batch_size=rows)
    warnings.warn(f"out of memory at batch size {ctx.batch_size}; retrying with batch size {new.batch_size}",
                  BatchSizeWarning, stacklevel=3)
    return new
