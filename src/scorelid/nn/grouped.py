"""One small residual MLP per group of coordinates, run side by side: a factorised denoiser network.

When the coordinates of the data fall into mutually independent groups
(``scorelid.data.independence``), the ideal denoiser of each group reads only that group and the
noise level.  ``GroupedMLP`` builds exactly that function class: group ``k`` of size ``m_k`` has
its own input layer, residual blocks and head (the ``MLP``'s, see ``scorelid.nn.mlp``, at width
``width``), and only the noise embedding is shared.  The groups run as one batched computation:
every group is padded to the largest size ``m`` and the weights are stacked ``[G, in, out]``.

``F(x_in [B, n], c_noise [B]) -> [B, n_out]`` in the ``MLP``'s output layout (``F``, then with
``gate`` the gains ``G`` and a shared gain ``g0``, then with ``delta`` the residual ``Delta``), so
``EDMDenoiser`` treats both alike.  Each group's shared gain is added to its members' gains and the
global ``g0`` is 0 (a gain shared across groups would couple them).  Coordinates in no group (those
without spread) get 0 everywhere.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from scorelid.nn.embedding import NoiseEmbedding
from scorelid.nn.mlp import film_residual

__all__ = ["GroupedMLP"]


class _GroupLinear(nn.Module):
    """``G`` independent linear maps ``[G, B, a] -> [G, B, b]`` (``nn.Linear``'s initialisation)."""

    def __init__(self, groups: int, a: int, b: int, zero: bool = False) -> None:
        super().__init__()
        bound = 1 / math.sqrt(a)
        self.weight = nn.Parameter(torch.empty(groups, a, b).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, b).uniform_(-bound, bound))
        if zero:
            nn.init.zeros_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, h: Tensor) -> Tensor:
        return torch.baddbmm(self.bias[:, None, :], h, self.weight)


class _Block(nn.Module):
    def __init__(self, groups: int, width: int, emb_dim: int, expansion: int, glu: bool, norm: bool) -> None:
        super().__init__()
        self.glu, self.norm, self.groups, self.width = glu, norm, groups, width
        self.film = nn.Linear(emb_dim, 2 * groups * width)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.fc1 = _GroupLinear(groups, width, (2 if glu else 1) * expansion * width)
        self.fc2 = _GroupLinear(groups, expansion * width, width)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        film = self.film(emb).reshape(len(emb), self.groups, 2 * self.width).transpose(0, 1)  # [G, B, 2w]
        scale, shift = film.chunk(2, dim=2)
        return film_residual(h, scale, shift, self._norm, self.fc1, self.fc2, self.glu)

    def _norm(self, h: Tensor) -> Tensor:
        return F.layer_norm(h, (self.width,)) if self.norm else h


class GroupedMLP(nn.Module):
    """Residual MLPs ``F_k(x_in[g_k], c_noise)``, one per coordinate group ``g_k``.

    Args:
        n: data dimension.
        groups: disjoint lists of coordinate indices in ``[0, n)`` (at least one non-empty).
        width, depth, emb_dim, expansion, glu, norm, gate, squares, delta: as ``MLP``'s, per group
            (``width`` is each group's hidden width; the noise embedding is narrower than the
            MLP's by default: each block's FiLM layer maps it to ``2 G width`` values, and at 128
            wide it was most of a step's time).
    """

    def __init__(self, n: int, groups: list[list[int]] | None = None, width: int = 32, depth: int = 3,
                 emb_dim: int = 32, expansion: int = 1, glu: bool = False, norm: bool = False,
                 gate: bool = False, squares: bool = False, delta: bool = False) -> None:
        super().__init__()
        groups = [[int(i) for i in g] for g in (groups or []) if len(g)]
        flat = [i for g in groups for i in g]
        if not groups or len(set(flat)) != len(flat) or min(flat) < 0 or max(flat) >= n:
            raise ValueError(f"groups must be disjoint non-empty lists of indices in [0, {n}), "
                             f"got {groups!r}")
        G, m = len(groups), max(len(g) for g in groups)
        self.n, self.m, self.gate, self.delta, self.squares = n, m, gate, delta, squares
        idx = torch.full((G, m), n, dtype=torch.long)  # index n: a zero column (padding)
        for k, g in enumerate(groups):
            idx[k, : len(g)] = torch.tensor(g)
        self.register_buffer("idx", idx, persistent=False)
        self.register_buffer("valid", (idx < n).reshape(-1), persistent=False)
        self.register_buffer("member", idx.reshape(-1)[idx.reshape(-1) < n], persistent=False)
        self.embed = NoiseEmbedding(emb_dim)
        self.inp = _GroupLinear(G, 2 * m if squares else m, width)
        self.blocks = nn.ModuleList(_Block(G, width, emb_dim, expansion, glu, norm) for _ in range(depth))
        self.out_norm = norm
        self.width = width
        self.out = _GroupLinear(G, width, m + (m + 1 if gate else 0) + (m if delta else 0), zero=True)

    def _scatter(self, v: Tensor) -> Tensor:
        """Per-group values ``[B, G, m]`` -> per-coordinate ``[B, n]`` (0 outside every group)."""
        out = v.new_zeros(len(v), self.n)
        return out.index_copy(1, self.member, v.reshape(len(v), -1)[:, self.valid])

    def forward(self, x_in: Tensor, c_noise: Tensor) -> Tensor:
        """``x_in [B, n]``, ``c_noise [B]`` -> ``[B, n_out]`` in ``MLP``'s layout."""
        B, m = len(x_in), self.m
        xg = torch.cat([x_in, x_in.new_zeros(B, 1)], dim=1).T[self.idx]  # [G, m, B]
        xg = xg.transpose(1, 2)  # [G, B, m]
        h0 = self.inp(torch.cat([xg, xg * xg], dim=2) if self.squares else xg)
        emb = self.embed(c_noise)
        h = h0
        for block in self.blocks:
            h = block(h, emb)
        h = h + h0
        o = self.out(F.layer_norm(h, (self.width,)) if self.out_norm else h).transpose(0, 1)  # [B, G, m_out]
        parts = [self._scatter(o[..., :m])]
        if self.gate:
            gains = o[..., m : 2 * m] + o[..., 2 * m : 2 * m + 1]  # each group's shared gain on its members
            parts += [self._scatter(gains), x_in.new_zeros(B, 1)]
        if self.delta:
            parts.append(self._scatter(o[..., -m:]))
        return torch.cat(parts, dim=1)
