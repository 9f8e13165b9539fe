"""Closed-form denoisers whose true local intrinsic dimension is known.

``GaussianSubspace``: data ``x = mu + U z`` with ``U`` an ``n x d`` orthonormal basis and
``z ~ N(0, lambda I_d)``, ``lambda = scale**2``.  With ``r = y - mu`` the exact posterior mean is

    D(y, sigma) = mu + U (lambda / (lambda + sigma^2)) U^T r.

``GaussianSubspaceMixture``: an equal-weight mixture of such Gaussians on affine subspaces of
different dimensions.  Its posterior mean is the responsibility-weighted mean of the component
posterior means, responsibilities ``softmax_j log N(y; mu_j, lambda_j U_j U_j^T + sigma^2 I)``.

Both compute in float64 internally and return the input's dtype.  They are used to check every
estimator before any network is trained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from scorelid.denoiser import SigmaLike, sigma_like

__all__ = ["BiasedMixture", "CliffordTorus", "GaussianSubspace", "GaussianSubspaceMixture"]


def _random_basis(n: int, d: int, gen: torch.Generator) -> Tensor:
    """An ``[n, d]`` matrix with orthonormal columns, uniformly random (QR of a Gaussian)."""
    if d == 0:
        return torch.zeros(n, 0, dtype=torch.float64)
    a = torch.randn(n, d, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    return q * torch.sign(torch.diagonal(r))


def _check_dims(d: int, n: int) -> None:
    if n < 1:
        raise ValueError(f"ambient dimension n must be >= 1, got {n}")
    if not 0 <= d <= n:
        raise ValueError(f"subspace dimension d must satisfy 0 <= d <= n={n}, got {d}")


class GaussianSubspace:
    """A Gaussian on a random ``d``-dimensional linear subspace of ``R^n``.

    Args:
        d: intrinsic dimension.
        n: ambient dimension.
        scale: standard deviation along each tangent direction (``lambda = scale**2``).
        seed: seed of the random basis.
        mean: optional ``[n]`` offset ``mu`` (default: the origin).
    """

    def __init__(
        self, d: int, n: int, scale: float = 1.0, seed: int = 0, mean: Tensor | None = None
    ) -> None:
        _check_dims(d, n)
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.d, self.n, self.scale = int(d), int(n), float(scale)
        gen = torch.Generator().manual_seed(seed)
        self.basis = _random_basis(n, d, gen)  # U: [n, d]
        self.mean = (
            torch.zeros(n, dtype=torch.float64)
            if mean is None
            else torch.as_tensor(mean, dtype=torch.float64).reshape(n)
        )

    @property
    def variance(self) -> float:
        """``lambda``: the variance along each tangent direction."""
        return self.scale**2

    def __call__(self, y: Tensor, sigma: SigmaLike) -> Tensor:
        """Exact posterior mean ``E[x | y]``; ``y``: ``[B, n]`` (or ``[B, *shape]`` with n elements)."""
        shape, dtype = y.shape, y.dtype
        yf = y.reshape(shape[0], -1).to(torch.float64)
        s2 = sigma_like(sigma, yf).to(torch.float64) ** 2  # [B, 1]
        U, mu = self.basis.to(yf.device), self.mean.to(yf.device)
        z = (yf - mu) @ U  # [B, d] tangent coordinates
        out = mu + (self.variance / (self.variance + s2)) * z @ U.T
        return out.to(dtype).reshape(shape)

    def tangent_coords(self, x: Tensor) -> Tensor:
        """``z = U^T (x - mu)``: ``[B, d]``."""
        xf = x.reshape(x.shape[0], -1).to(torch.float64)
        return (xf - self.mean.to(xf.device)) @ self.basis.to(xf.device)

    def expected_dsm(self, x: Tensor, sigma: float) -> Tensor:
        """``E_eps ||D(x + sigma eps) - x||^2 / sigma^2`` for on-manifold ``x``: ``[B]`` float64.

        Equals ``sum_i (sigma^2 z_i^2 + lambda^2) / (lambda + sigma^2)^2``, which tends to ``d``
        as ``sigma -> 0`` (and to 0 when ``sigma >> scale``).
        """
        z = self.tangent_coords(x)
        lam, s2 = self.variance, float(sigma) ** 2
        return ((s2 * z**2 + lam**2) / (lam + s2) ** 2).sum(dim=1)

    def sample(self, num: int, seed: int = 0) -> tuple[Tensor, Tensor]:
        """Draw ``num`` points: ``x`` ``[num, n]`` float32 and true LID ``d_true`` ``[num]`` int64."""
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(num, self.d, generator=gen, dtype=torch.float64) * self.scale
        x = self.mean + z @ self.basis.T
        return x.to(torch.float32), torch.full((num,), self.d, dtype=torch.int64)


class GaussianSubspaceMixture:
    """An equal-weight mixture of Gaussians on affine subspaces of different dimensions.

    Args:
        dims: intrinsic dimension of each component.
        n: ambient dimension.
        scales: tangent standard deviation of each component (default 1.0 each).
        spread: norm of each component's random offset ``mu_j``; large enough (default 10) that
            the components are far apart compared with their own extent.
        seed: seed of the bases and offsets.
    """

    def __init__(
        self,
        dims: Sequence[int],
        n: int,
        scales: Sequence[float] | None = None,
        spread: float = 10.0,
        seed: int = 0,
    ) -> None:
        if len(dims) == 0:
            raise ValueError("dims must name at least one component")
        scales = [1.0] * len(dims) if scales is None else list(scales)
        if len(scales) != len(dims):
            raise ValueError(f"got {len(scales)} scales for {len(dims)} components")
        gen = torch.Generator().manual_seed(seed)
        self.n = int(n)
        self.dims = [int(d) for d in dims]
        self.components: list[GaussianSubspace] = []
        for j, (d, s) in enumerate(zip(self.dims, scales, strict=True)):
            direction = torch.randn(n, generator=gen, dtype=torch.float64)
            mu = spread * direction / direction.norm()
            self.components.append(
                GaussianSubspace(d, n, scale=s, seed=seed * 1009 + 7919 * (j + 1), mean=mu)
            )

    def responsibilities(self, y: Tensor, sigma: SigmaLike) -> Tensor:
        """Posterior component probabilities ``[B, J]`` (float64)."""
        yf = y.reshape(y.shape[0], -1).to(torch.float64)
        s2 = sigma_like(sigma, yf).to(torch.float64).squeeze(1) ** 2  # [B]
        logp = []
        for c in self.components:
            r = yf - c.mean.to(yf.device)
            proj = r @ c.basis.to(yf.device)
            lam = c.variance
            maha = ((r**2).sum(1) - (lam / (lam + s2)) * (proj**2).sum(1)) / s2
            logdet = c.d * torch.log(lam + s2) + (self.n - c.d) * torch.log(s2)
            logp.append(-0.5 * (maha + logdet + self.n * math.log(2 * math.pi)))
        return torch.softmax(torch.stack(logp, dim=1), dim=1)

    def __call__(self, y: Tensor, sigma: SigmaLike) -> Tensor:
        """Exact posterior mean ``E[x | y]`` of the mixture, y's shape and dtype."""
        shape, dtype = y.shape, y.dtype
        yf = y.reshape(shape[0], -1).to(torch.float64)
        w = self.responsibilities(yf, sigma)  # [B, J]
        means = torch.stack([c(yf, sigma) for c in self.components], dim=1)  # [B, J, n]
        return (w.unsqueeze(-1) * means).sum(1).to(dtype).reshape(shape)

    def sample(self, num: int, seed: int = 0) -> tuple[Tensor, Tensor]:
        """Draw ``num`` points: ``x`` ``[num, n]`` float32 and per-point true LID ``[num]`` int64."""
        gen = torch.Generator().manual_seed(seed)
        comp = torch.randint(len(self.components), (num,), generator=gen)
        x = torch.empty(num, self.n, dtype=torch.float64)
        for j, c in enumerate(self.components):
            idx = (comp == j).nonzero().squeeze(1)
            z = torch.randn(len(idx), c.d, generator=gen, dtype=torch.float64) * c.scale
            x[idx] = c.mean + z @ c.basis.T
        d_true = torch.tensor(self.dims, dtype=torch.int64)[comp]
        return x.to(torch.float32), d_true


class BiasedMixture:
    """A mixture's exact posterior mean plus a known model error: ``E[x|y] + sum_j w_j(y) delta_j u``.

    ``w_j(y)`` are the mixture's responsibilities and ``u`` a fixed random unit vector, so points of
    component ``j`` see an offset of size ``delta_j``.  DSM then reads about ``d + delta_j^2 / sigma^2``:
    the small-sigma noise regime of an imperfect network, with a known size, for testing how noise
    levels are chosen.

    Args:
        m: the mixture.
        deltas: error size per component (data units).
        seed: seed of ``u``.
    """

    def __init__(self, m: GaussianSubspaceMixture, deltas: Sequence[float], seed: int = 0) -> None:
        if len(deltas) != len(m.components):
            raise ValueError(f"got {len(deltas)} deltas for {len(m.components)} components")
        self.m, self.deltas = m, torch.tensor(list(deltas), dtype=torch.float64)
        u = torch.randn(m.n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        self.u = u / u.norm()

    @classmethod
    def relative(cls, m: GaussianSubspaceMixture, rel: float, seed: int = 0) -> BiasedMixture:
        """Errors of ``rel`` times each component's scale (its tangent standard deviation)."""
        return cls(m, [rel * float(c.variance) ** 0.5 for c in m.components], seed)

    def __call__(self, y: Tensor, sigma: SigmaLike) -> Tensor:
        """``[B, n]`` -> ``[B, n]``, y's dtype."""
        w = self.m.responsibilities(y, sigma)
        return (self.m(y, sigma).double() + (w @ self.deltas)[:, None] * self.u).to(y.dtype)


class CliffordTorus:
    """A curved manifold with an exact posterior mean: the flat torus ``(S^1)^k`` of ``k`` circles of
    radius ``r`` in orthogonal planes of ``R^n`` (``2k <= n``), uniformly distributed; LID ``k``.

    The Gaussian likelihood factorises over the planes and the angles are independent, so per plane
    the posterior of the angle given the plane's coordinates ``p = (p_1, p_2)`` is von Mises with
    concentration ``kappa = r |p| / sigma^2`` about ``atan2(p_2, p_1)``, and

        E[x | y] = sum_j  r I_1(kappa_j) / I_0(kappa_j)  p_j / |p_j|   (in plane j; 0 off the planes).

    Args:
        k: number of circles (the intrinsic dimension).
        n: ambient dimension (>= 2k); the planes are spanned by a random orthonormal ``n x 2k`` basis.
        radius: circle radius ``r``.
        seed: seed of the basis.
    """

    def __init__(self, k: int, n: int, radius: float = 1.0, seed: int = 0) -> None:
        if k < 1 or 2 * k > n:
            raise ValueError(f"need 1 <= k and 2k <= n, got k={k}, n={n}")
        self.k, self.n, self.d, self.radius = int(k), int(n), int(k), float(radius)
        q, _ = torch.linalg.qr(torch.randn(n, 2 * k, generator=torch.Generator().manual_seed(seed),
                                           dtype=torch.float64))
        self.basis = q  # [n, 2k]: columns 2j, 2j+1 span plane j

    def sample(self, num: int, seed: int = 0) -> tuple[Tensor, Tensor]:
        """``x`` ``[num, n]`` float32 and the true LID ``[num]`` (``k`` everywhere)."""
        theta = 2 * math.pi * torch.rand(num, self.k, generator=torch.Generator().manual_seed(seed),
                                         dtype=torch.float64)
        planes = self.radius * torch.stack([theta.cos(), theta.sin()], dim=-1).reshape(num, 2 * self.k)
        return (planes @ self.basis.T).float(), torch.full((num,), self.k, dtype=torch.long)

    def __call__(self, y: Tensor, sigma: SigmaLike) -> Tensor:
        """Exact ``E[x | y]``: ``[B, n]`` -> ``[B, n]``, y's dtype."""
        yf = y.reshape(y.shape[0], -1).to(torch.float64)
        s2 = sigma_like(sigma, yf).to(torch.float64) ** 2  # [B, 1]
        p = (yf @ self.basis.to(yf.device)).reshape(-1, self.k, 2)  # plane coordinates
        rho = p.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
        kappa = self.radius * rho / s2.unsqueeze(-1)
        ratio = torch.special.i1e(kappa) / torch.special.i0e(kappa)  # I1/I0, overflow-free
        mean = (self.radius * ratio * p / rho).reshape(-1, 2 * self.k)
        return (mean @ self.basis.T.to(yf.device)).to(y.dtype).reshape(y.shape)
