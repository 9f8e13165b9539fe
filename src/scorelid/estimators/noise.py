"""Reproducible noise: every point's draws come from its own generator.

The generator of point ``i`` is seeded by ``(seed, i, stream)`` through NumPy's ``SeedSequence``,
so a point's noise does not depend on the batch size, on the order in which points are processed,
or on how many processes share the work: one process and four give the same per-point LID.
``stream`` separates independent uses (0: Gaussian noise ``eps``, 1: Rademacher probes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

NOISE_STREAM = 0
PROBE_STREAM = 1

__all__ = ["NOISE_STREAM", "PROBE_STREAM", "point_generator", "point_noise", "point_rademacher"]


def point_generator(seed: int, index: int, stream: int = NOISE_STREAM) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded by ``(seed, index, stream)``."""
    state = np.random.SeedSequence([int(seed), int(index), int(stream)]).generate_state(
        2, np.uint32
    )
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


def point_noise(
    seed: int,
    indices: Sequence[int] | Tensor,
    k: int,
    shape: Sequence[int],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    stream: int = NOISE_STREAM,
) -> Tensor:
    """Standard normal draws ``[P, k, *shape]``; row ``p`` depends only on ``(seed, indices[p])``."""
    rows = [
        torch.randn(k, *shape, generator=point_generator(seed, int(i), stream))
        for i in _as_list(indices)
    ]
    return torch.stack(rows).to(device=device, dtype=dtype)


def point_rademacher(
    seed: int,
    indices: Sequence[int] | Tensor,
    k: int,
    shape: Sequence[int],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    stream: int = PROBE_STREAM,
) -> Tensor:
    """Rademacher (±1) probes ``[P, k, *shape]``, seeded per point like :func:`point_noise`."""
    rows = [
        torch.randint(0, 2, (k, *shape), generator=point_generator(seed, int(i), stream))
        for i in _as_list(indices)
    ]
    return (torch.stack(rows) * 2 - 1).to(device=device, dtype=dtype)


def _as_list(indices: Sequence[int] | Tensor) -> list[int]:
    return indices.tolist() if isinstance(indices, Tensor) else [int(i) for i in indices]
