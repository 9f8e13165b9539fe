"""Noise-level embedding shared by the networks: Fourier features of ``c_noise`` then an MLP."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["NoiseEmbedding"]


class NoiseEmbedding(nn.Module):
    """``c_noise [B] -> [B, dim]``: sinusoidal features at log-spaced frequencies, then 2 layers.

    ``c_noise = log(sigma) / 4`` (EDM) lies in about ``[-2, 1]`` for ``sigma`` in ``[3e-4, 50]``;
    frequencies from 1 to ``max_freq`` resolve that range.
    """

    def __init__(self, dim: int, n_freq: int = 32, max_freq: float = 64.0) -> None:
        super().__init__()
        freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), n_freq))
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * n_freq, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, c_noise: Tensor) -> Tensor:
        arg = c_noise.reshape(-1, 1) * self.freqs.to(c_noise.dtype)
        return self.mlp(torch.cat([torch.cos(arg), torch.sin(arg)], dim=1))
