"""LID across noise scales: ``lid_curve(D, x, sigmas)`` -> ``[S, N]``.

The curve of point ``x`` is its estimate at every level of a grid ``sigma_1 < ... < sigma_S``.
For DSM the curve uses common random numbers: point ``i`` draws its ``K`` noise vectors
``eps_k`` once (from ``scorelid.estimators.noise.point_noise(seed, i)``, exactly as ``estimate``
does) and reuses them at every ``sigma``, so

    curve[s, i] = (1/K) sum_k ||D(x_i + sigma_s eps_k, sigma_s) - x_i||^2 / sigma_s^2

equals ``estimate(D, x, "dsm", sigma_s, K, seed)[i]`` and the differences between levels carry
no fresh Monte Carlo noise (the curve is smooth in ``sigma``).  All ``S * K`` noised copies of a
chunk of points go through the denoiser together (one call per ``batch_size`` rows), with a
per-row ``sigma``.  Other methods are computed level by level through ``estimate`` (their noise
is also seeded per point, so the same common-random-number property holds).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from scorelid.denoiser import Denoiser
from scorelid.estimators.api import METHODS, default_batch_size, estimate, validate_points
from scorelid.estimators.common import denoise, sq_norm
from scorelid.estimators.noise import point_noise
from scorelid.guards import BatchSizeWarning, free_accelerator_memory, is_out_of_memory

__all__ = ["lid_curve", "validate_sigmas"]


def validate_sigmas(sigmas: Sequence[float] | Tensor | np.ndarray) -> Tensor:
    """``sigmas`` as a strictly increasing ``[S]`` float64 tensor of positive finite values (S >= 1)."""
    s = torch.as_tensor(np.asarray(sigmas, dtype=np.float64)).reshape(-1)
    if s.numel() == 0:
        raise ValueError("sigmas is empty")
    if not (torch.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"sigmas must be finite and > 0, got {s.tolist()}")
    if s.numel() > 1 and not (s[1:] > s[:-1]).all():
        raise ValueError(f"sigmas must be strictly increasing, got {s.tolist()}")
    return s


def lid_curve(
    D: Denoiser,
    x: Tensor | np.ndarray,
    sigmas: Sequence[float] | Tensor | np.ndarray,
    method: str = "dsm",
    n_noise: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    *,
    indices: Tensor | None = None,
    progress: bool = False,
    **options,
) -> Tensor:
    """Per-point LID at every noise level: ``[S, N]`` float64 on the CPU.

    Args:
        D: denoiser ``D(y, sigma)`` (VE scale).
        x: points ``[N, *shape]``.
        sigmas: ``S`` strictly increasing noise levels (data units), e.g. from
            ``scorelid.sigma_select.parse_sigmas``.
        method, n_noise, seed, batch_size, indices, **options: as in ``scorelid.estimate``;
            row ``s`` equals ``estimate(D, x, method, sigmas[s], n_noise, seed, ...)``.
        progress: show a progress bar.

    Returns:
        ``curve[s, i]``: LID of point ``i`` at ``sigmas[s]``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    s = validate_sigmas(sigmas)
    x = validate_points(x)
    if method != "dsm":
        rows = [estimate(D, x, method, float(v), n_noise, seed, batch_size, indices=indices,
                         progress=progress, **options) for v in s]
        return torch.stack(rows)
    if options:
        raise ValueError(f"dsm takes no options, got {sorted(options)}")
    N, n = x.shape[0], x[0].numel()
    K = 8 if n_noise is None else n_noise
    if not isinstance(K, int | np.integer) or K < 1:
        raise ValueError(f"n_noise must be an integer >= 1, got {n_noise!r}")
    bs = default_batch_size(n) if batch_size is None else batch_size
    if not isinstance(bs, int | np.integer) or bs < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    idx = torch.arange(N) if indices is None else torch.as_tensor(indices, dtype=torch.long).cpu()
    if idx.shape != (N,):
        raise ValueError(f"indices must have shape [{N}], got {tuple(idx.shape)}")
    S = s.numel()
    out = torch.empty(S, N, dtype=torch.float64)
    with tqdm(total=N, desc="lid_curve", unit="pt", disable=not progress, leave=False) as bar, \
            torch.inference_mode():
        start = 0
        while start < N:
            step = max(1, bs // (S * K))  # points per chunk: all their S*K rows in about one batch
            sl = slice(start, start + step)
            try:
                out[:, sl] = _dsm_curve_chunk(D, x[sl], s, idx[sl], K, seed, bs)
                oom = False
            except Exception as exc:
                if not is_out_of_memory(exc) or bs == 1:
                    raise
                oom = True  # handled below, once the failed chunk's tensors are released
            if oom:  # as in estimate: halve, retry the same points (same noise, same result)
                free_accelerator_memory()
                warnings.warn(f"out of memory at batch size {bs}; retrying with batch size {max(1, bs // 2)}",
                              BatchSizeWarning, stacklevel=2)
                bs = max(1, bs // 2)
                continue
            bar.update(min(step, N - start))
            start += step
    return out


def _dsm_curve_chunk(D: Denoiser, x: Tensor, s: Tensor, idx: Tensor, K: int, seed: int, bs: int) -> Tensor:
    """DSM curve ``[S, P]`` of a chunk ``x`` ``[P, *shape]`` with shared noise across levels."""
    P, S = x.shape[0], s.numel()
    eps = point_noise(seed, idx, K, x.shape[1:], device=x.device, dtype=x.dtype)  # [P, K, *shape]
    sig = s.to(device=x.device, dtype=x.dtype)
    # rows ordered (level, point, draw): y = x + sigma_s eps_k, exactly as estimate's noised_copies
    y = torch.cat([(x.unsqueeze(1) + sig[j] * eps).reshape(P * K, *x.shape[1:]) for j in range(S)])
    row_sigma = sig.repeat_interleave(P * K)
    den = denoise(D, y, row_sigma, bs).reshape(S, P, K, *x.shape[1:])
    out = torch.empty(S, P, dtype=torch.float64)
    for j in range(S):
        err = (den[j] - x.unsqueeze(1)) / float(s[j])
        out[j] = sq_norm(err.reshape(P * K, -1)).reshape(P, K).mean(1).double().cpu()
    return out


def log_grid(lo: float, hi: float, k: int) -> Tensor:
    """``k`` log-spaced levels from ``lo`` to ``hi`` inclusive: ``[k]`` float64."""
    return torch.exp(torch.linspace(math.log(lo), math.log(hi), k, dtype=torch.float64))
