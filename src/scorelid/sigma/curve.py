"""LID across noise scales: ``lid_curve(D, x, sigmas)`` -> ``[S, N]``.

The curve of point ``x`` is its estimate at every level of a grid ``sigma_1 < ... < sigma_S``.
For DSM the curve uses common random numbers: point ``i`` draws its ``K`` noise vectors
``eps_k`` once (from ``scorelid.estimators.noise.point_noise(seed, i)``, exactly as ``estimate``
does) and reuses them at every ``sigma``, so

    curve[s, i] = (1/K) sum_k ||D(x_i + sigma_s eps_k, sigma_s) - x_i||^2 / sigma_s^2

is ``estimate(D, x, "dsm", sigma_s, K, seed)[i]`` and the differences between levels carry no
fresh Monte Carlo noise (the curve is smooth in ``sigma``).  Every method, DSM included, is
computed level by level through ``estimate``: there is one implementation of each estimator, and
a row of the curve is bit-identical to the estimate at that level.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from scorelid.denoiser import Denoiser
from scorelid.estimators.api import METHODS, estimate, validate_points
from scorelid.sigma.grid import validate_sigmas

__all__ = ["lid_curve"]


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
            ``scorelid.sigma.grid.parse_sigmas``.
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
    levels = tqdm(s.tolist(), desc=f"{method} curve", unit="sigma", disable=not progress, leave=False)
    rows = []
    stats: dict = {}
    for v in levels:
        rows.append(estimate(D, x, method, v, n_noise, seed, batch_size, indices=indices, stats=stats,
                             **options))
        # a batch size reduced after running out of memory carries over to the next levels
        batch_size = stats["batch_size"]
    return torch.stack(rows)
