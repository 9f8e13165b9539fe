"""A diffusion transformer (DiT) for vectors: patches of ``patch`` values are the tokens.

``F(x_in [B, n], c_noise [B]) -> [B, n]``.  The vector is zero-padded to a multiple of ``patch``,
cut into ``T = ceil(n / patch)`` tokens, embedded linearly with learned position embeddings, run
through ``depth`` transformer blocks with adaLN-Zero conditioning on the noise embedding (Peebles
& Xie 2023: per-block shift/scale/gate from the embedding, gates zero-initialised), and projected
back to ``patch`` values per token by a zero-initialised head.  Paper size: hidden 128, 16 heads,
8 layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scorelid.nn.embedding import NoiseEmbedding

__all__ = ["DiT"]


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class _Block(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        inner = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, inner), nn.GELU(approximate="tanh"), nn.Linear(inner, hidden)
        )
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        B, T, H = x.shape
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=1)
        q, k, v = self.qkv(_modulate(self.norm1(x), sh1, sc1)).reshape(B, T, 3, self.heads, H // self.heads) \
            .permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, H)
        x = x + g1.unsqueeze(1) * self.proj(a)
        return x + g2.unsqueeze(1) * self.mlp(_modulate(self.norm2(x), sh2, sc2))


class DiT(nn.Module):
    """Vector DiT ``F(x_in, c_noise)``.

    Args:
        n: data dimension.
        patch: values per token.
        hidden: token width.
        heads: attention heads (must divide ``hidden``).
        depth: transformer blocks.
        mlp_ratio: MLP width / hidden.
    """

    def __init__(self, n: int, patch: int = 4, hidden: int = 128, heads: int = 16, depth: int = 8,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"heads={heads} must divide hidden={hidden}")
        self.n, self.patch = n, patch
        self.tokens = math.ceil(n / patch)
        self.embed_x = nn.Linear(patch, hidden)
        self.pos = nn.Parameter(torch.randn(1, self.tokens, hidden) * 0.02)
        self.embed_t = NoiseEmbedding(hidden)
        self.blocks = nn.ModuleList(_Block(hidden, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.head = nn.Linear(hidden, patch)
        for lin in (self.ada[1], self.head):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x_in: Tensor, c_noise: Tensor) -> Tensor:
        """``x_in [B, n]``, ``c_noise [B]`` -> ``[B, n]``."""
        B = x_in.shape[0]
        pad = self.tokens * self.patch - self.n
        x = F.pad(x_in, (0, pad)) if pad else x_in
        h = self.embed_x(x.reshape(B, self.tokens, self.patch)) + self.pos
        c = self.embed_t(c_noise)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.ada(c).chunk(2, dim=1)
        out = self.head(_modulate(self.norm(h), shift, scale)).reshape(B, -1)
        return out[:, : self.n]
