"""Noise levels for training: ``SigmaSampler`` draws ``sigma`` (data units) from one of ``SIGMA_DISTS``.

``"loguniform"``: ``log sigma ~ U[log sigma_min, log sigma_max]`` (data units);
``"lognormal"``: EDM's ``log(sigma / scale) ~ N(p_mean, p_std^2)`` (normalised units).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["SIGMA_DISTS", "SigmaSampler"]

SIGMA_DISTS = ("loguniform", "lognormal")


class SigmaSampler:
    """Noise levels for training, in data units: ``sample(B, gen) -> [B]``.

    Args:
        dist: ``"loguniform"`` or ``"lognormal"``.
        sigma_min, sigma_max: range of the log-uniform law (data units).
        p_mean, p_std: mean and std of ``log(sigma / scale)`` for the log-normal law.
        scale: the data's scale (largest per-coordinate std), to convert normalised units.
    """

    def __init__(self, dist: str, sigma_min: float, sigma_max: float, p_mean: float, p_std: float,
                 scale: float) -> None:
        if dist not in SIGMA_DISTS:
            raise ValueError(f"unknown sigma_dist {dist!r}; choose one of {SIGMA_DISTS}")
        if not (0 < sigma_min < sigma_max):
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.dist, self.scale = dist, scale
        self.lo, self.hi = math.log(sigma_min), math.log(sigma_max)
        self.p_mean, self.p_std = p_mean, p_std

    def sample(self, B: int, gen: torch.Generator) -> Tensor:
        if self.dist == "loguniform":
            return torch.exp(self.lo + (self.hi - self.lo) * torch.rand(B, generator=gen))
        return self.scale * torch.exp(self.p_mean + self.p_std * torch.randn(B, generator=gen))

    def bucket_edges(self, n_buckets: int) -> Tensor:
        """Log-spaced bucket edges ``[n_buckets + 1]`` covering the bulk of the law (data units)."""
        if self.dist == "loguniform":
            lo, hi = self.lo, self.hi
        else:
            lo = self.p_mean - 2.5 * self.p_std + math.log(self.scale)
            hi = self.p_mean + 2.5 * self.p_std + math.log(self.scale)
        return torch.exp(torch.linspace(lo, hi, n_buckets + 1, dtype=torch.float64))
