"""A noise-conditioned MLP with skip connections (the FLIPD authors' style of vector network).

``F(x_in [B, n], c_noise [B]) -> [B, n]``: an input projection to ``width``, ``depth`` residual
blocks ``h <- h + W2 SiLU(W1 FiLM(h, emb))`` whose input is scaled and shifted by the noise
embedding, and a zero-initialised output projection, so an untrained network outputs 0
and the preconditioned denoiser starts as its skip path.  Long skips (U-Net style) add the input
projection to the last block's output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from scorelid.nn.embedding import NoiseEmbedding

__all__ = ["MLP"]


def film_residual(h: Tensor, scale: Tensor, shift: Tensor, norm: Callable[[Tensor], Tensor],
                  fc1: Callable[[Tensor], Tensor], fc2: Callable[[Tensor], Tensor], glu: bool) -> Tensor:
    """One residual block ``h + fc2(SiLU(fc1(norm(h) * (1 + scale) + shift)))`` on hidden states
    ``h [..., width]`` with FiLM ``scale``/``shift`` of the same shape; with ``glu`` the SwiGLU form
    ``fc2(SiLU(a) * b)`` (``a, b``: the halves of ``fc1``'s output)."""
    z = fc1(norm(h) * (1 + scale) + shift)
    if glu:
        a, b = z.chunk(2, dim=-1)
        return h + fc2(F.silu(a) * b)
    return h + fc2(F.silu(z))


class _Block(nn.Module):
    def __init__(self, width: int, emb_dim: int, expansion: int, glu: bool, norm: bool) -> None:
        super().__init__()
        self.glu = glu
        self.norm = nn.LayerNorm(width, elementwise_affine=False) if norm else nn.Identity()
        self.film = nn.Linear(emb_dim, 2 * width)
        self.fc1 = nn.Linear(width, (2 if glu else 1) * expansion * width)
        self.fc2 = nn.Linear(expansion * width, width)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        scale, shift = self.film(emb).chunk(2, dim=1)
        return film_residual(h, scale, shift, self.norm, self.fc1, self.fc2, self.glu)


class MLP(nn.Module):
    """Residual MLP ``F(x_in, c_noise)`` on vectors.

    Args:
        n: data dimension.
        width: hidden width.
        depth: number of residual blocks.
        emb_dim: noise-embedding width.
        expansion: hidden expansion inside a block.
        norm: LayerNorm before each block and before the head.  Off by default: LayerNorm makes a
            block blind to the scale of its input, and the scale (e.g. the distance ``|y|`` from a
            sphere's centre) is exactly what a denoiser needs to find the normal direction.
        squares: feed ``[x_in, x_in**2]`` to the input layer (elementwise squares), so that
            quadratic functions of single coordinates -- e.g. ``|y - c|^2`` for a sphere, or the
            radius of each coordinate pair of a Clifford torus -- are linear in the features.  An
            inductive bias towards coordinate-aligned quadrics (see docs/training.md).
        gate: output ``[B, 2n + 1]``: ``F``, per-coordinate gains ``G`` and a shared gain ``g0``,
            which the preconditioning applies as an input-dependent diagonal skip ``(G + g0) * u``
            (see ``scorelid.nn.precond``).
        delta: also output ``n`` values ``Delta`` that the preconditioning adds to the skip path
            without the ``c_out`` factor (an "x-prediction" residual, see ``scorelid.nn.precond``).
        glu: gated blocks ``W2 (SiLU(a) * b)`` (SwiGLU, Shazeer 2020) instead of ``W2 SiLU(a)``;
            products of linear features make quadratic forms such as ``|y|^2`` (curvature of
            spheres and tori) cheap to represent.
    """

    def __init__(self, n: int, width: int = 512, depth: int = 4, emb_dim: int = 128,
                 expansion: int = 1, glu: bool = False, norm: bool = False, gate: bool = False,
                 squares: bool = False, delta: bool = False) -> None:
        super().__init__()
        self.embed = NoiseEmbedding(emb_dim)
        self.squares = squares
        self.inp = nn.Linear(2 * n if squares else n, width)
        self.blocks = nn.ModuleList(_Block(width, emb_dim, expansion, glu, norm) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width) if norm else nn.Identity()
        self.gate, self.delta = gate, delta
        self.out = nn.Linear(width, n + (n + 1 if gate else 0) + (n if delta else 0))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x_in: Tensor, c_noise: Tensor) -> Tensor:
        """``x_in [B, n]``, ``c_noise [B]`` -> ``[B, n_out]``.

        ``n_out = n`` (``F``), plus ``n + 1`` gate values with ``gate``, plus ``n`` with ``delta``.
        """
        emb = self.embed(c_noise)
        h0 = self.inp(torch.cat([x_in, x_in * x_in], dim=1) if self.squares else x_in)
        h = h0
        for block in self.blocks:
            h = block(h, emb)
        return self.out(self.out_norm(h + h0))
