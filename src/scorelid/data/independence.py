"""Split the coordinates of data into statistically independent groups.

If the coordinates of ``x`` fall into groups ``g_1, ..., g_G`` that are mutually independent, the
data density factorises, ``p(x) = prod_k p_k(x_{g_k})``, and so does its noisy version: the ideal
denoiser of group ``k`` reads only ``x_{g_k}`` and the noise level, and the local intrinsic
dimension is the sum of the groups' (a product manifold).  A denoiser built as one small network
per group (``scorelid.nn.grouped``) then learns ``G`` low-dimensional problems instead of one
high-dimensional one.  The benchmark's ``Mn1_Nonlinear`` is 16 independent 2-d pieces, the Clifford
torus 32 independent circles, the hypertwinpeaks cube 128 independent coordinates.

The test (an HSIC with a finite feature map; Gretton et al. 2005).  Each coordinate ``j`` is
rank-transformed to ``u_j in (0, 1)`` and mapped to ``K - 2`` features ``phi_k(u_j) = sqrt(2)
cos(pi k u_j)``, ``k = 1..K-2`` (``n_features``; orthonormal for a uniform ``u``; ``k = 1`` sees
monotone dependence, ``k = 2`` dependence of magnitudes such as ``x_i^2 + x_j^2 = 1``), plus the two
moment features below: ``K`` per coordinate.  For two sets of coordinates ``A`` and
``B`` with feature matrices ``Phi_A [N, a]`` and ``Phi_B [N, b]`` (centred), the statistic
``T = N ||Phi_A^T Phi_B / N||_F^2`` has, if ``A`` and ``B`` are independent, mean
``tr(S_A) tr(S_B)`` and variance about ``2 ||S_A||_F^2 ||S_B||_F^2`` (``S``: the feature
covariances); the p-value is the tail of the Gamma law with that mean and variance.  The two
moment features of a coordinate are its standardised value ``v`` and ``v^2``.

The grouping.  Coordinates with no spread (zero padding, below ``1e-6`` of the largest standard
deviation) belong to no group.  Pairs with ``p < pair_p`` are joined (connected components); then,
while some group is dependent on the rest of the coordinates taken together (``p < group_p``,
against the others' features and against their per-feature sums: a dependence spread thinly over
many pairs, such as a sphere's ``sum x_i^2 = 1``, is plain in the sum), it is merged with the
group it shares most excess with.  On a null of independent coordinates (150 draws of 4
coordinates, ``N = 500``) the smallest of 600 group p-values was ``10^-3.6``; a coordinate of
``S^16`` (``S^64``) against the others at ``N = 500`` gives ``10^-78`` (``10^-47``).  A wrong
merge only costs efficiency (the result is as general as one group); a wrong split is a wrong
model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["FLAT_STD", "independent_groups", "pack_groups"]

#: coordinates whose standard deviation is below this fraction of the largest are constant
FLAT_STD = 1e-6


def _features(x: np.ndarray, n_cos: int) -> np.ndarray:
    """Features ``[N, n * (n_cos + 2)]`` (coordinate-major), centred: per coordinate the ``n_cos``
    rank cosines, then the standardised value ``v`` and its square ``v^2`` (``v`` clipped to
    ``[-6, 6]``)."""
    N, n = x.shape
    ranks = np.argsort(np.argsort(x, axis=0, kind="stable"), axis=0, kind="stable")
    u = (ranks + 0.5) / N  # [N, n] in (0, 1)
    k = np.arange(1, n_cos + 1)
    cos = math.sqrt(2.0) * np.cos(math.pi * u[:, :, None] * k)  # [N, n, n_cos]
    v = np.clip((x - x.mean(0)) / x.std(0), -6.0, 6.0)
    phi = np.concatenate([cos, v[:, :, None], v[:, :, None] ** 2], axis=2).reshape(N, n * (n_cos + 2))
    return phi - phi.mean(0)


def _log10_p(stat: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """log10 of the upper tail ``P(T >= stat)`` of a Gamma law with the null ``mean`` and ``var``
    (the usual approximation of an HSIC's null; elementwise, floored at -300)."""
    k = torch.as_tensor(mean**2 / var, dtype=torch.float64)
    p = torch.special.gammaincc(k, torch.as_tensor(stat * mean / var, dtype=torch.float64))
    return np.log10(np.maximum(p.numpy(), 1e-300))


def _gamma_log10_p(stat: float, mean: float, var: float) -> float:
    return float(_log10_p(np.asarray(stat), np.asarray(mean), np.asarray(max(var, 1e-300))))


def independent_groups(x: Any, *, n_features: int = 3, pair_p: float = 1e-8, group_p: float = 1e-6,
                       max_points: int = 5_000, max_coords: int = 512, seed: int = 0) -> list[list[int]]:
    """Groups of coordinates of ``x [N, n]`` that look mutually independent (see the module doc).

    Args:
        x: data points ``[N, n]`` (array or tensor), ``N >= 8``.
        n_features: rank-cosine features per coordinate (``K - 2``: each coordinate also has its
            standardised value and its square).
        pair_p, group_p: the independence p-values below which two coordinates, or a group and the
            rest, are joined.
        max_points: at most this many points (a seeded subsample) are used.
        max_coords: data with more non-constant coordinates than this is not tested (one group:
            the test's memory grows as their square, and images do not factorise by pixel).
        seed: seeds the subsample.

    Returns:
        The groups, each a sorted list of coordinate indices, ordered by their first index; the
        coordinates with no spread are in none.  One group holding every non-constant coordinate
        means no independent split was found.
    """
    a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
    if a.ndim != 2 or a.shape[0] < 8:
        raise ValueError(f"independent_groups needs points [N >= 8, n], got shape {a.shape}")
    if a.shape[0] > max_points:  # subsample before any copy: x may be large
        a = a[np.sort(np.random.default_rng(seed).choice(a.shape[0], max_points, replace=False))]
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError("independent_groups: the data has NaN or infinite values")
    std = a.std(0)
    if not std.max() > 0:
        return []
    live = np.flatnonzero(std > FLAT_STD * std.max())
    if len(live) == 1 or len(live) > max_coords:
        return [live.tolist()]
    N, K = a.shape[0], n_features + 2
    phi = _features(a[:, live], n_features)
    S = phi.T @ phi / N  # [m K, m K]
    m = len(live)
    blocks = S.reshape(m, K, m, K).transpose(0, 2, 1, 3)  # [m, m, K, K]
    diag = np.einsum("iikl->ikl", blocks)  # each coordinate's own feature covariance [m, K, K]
    tr = np.einsum("ikk->i", diag)
    fro = np.sqrt((diag**2).sum((1, 2)))
    stat = N * (blocks**2).sum((2, 3))  # [m, m] pair statistics
    excess = stat - np.outer(tr, tr)  # minus their null means
    log_p = _log10_p(stat, np.outer(tr, tr), 2.0 * np.outer(fro, fro) ** 2)
    np.fill_diagonal(log_p, 0.0)
    label = _components(log_p < math.log10(pair_p))
    groups = _merge_dependent(label, S, excess, K, N, math.log10(group_p))
    return sorted(sorted(int(live[i]) for i in g) for g in groups)


def _components(adj: np.ndarray) -> list[int]:
    """Connected-component label per node of a boolean adjacency matrix."""
    m = len(adj)
    label = [-1] * m
    for start in range(m):
        if label[start] >= 0:
            continue
        label[start], stack = start, [start]
        while stack:
            i = stack.pop()
            for j in np.flatnonzero(adj[i]):
                if label[j] < 0:
                    label[j] = start
                    stack.append(int(j))
    return label


class _GroupTest:
    """Dependence of a group of coordinates on all the others, from the feature covariance ``S``
    ``[m K, m K]`` of ``N`` points, in ``O(|g| K m K)`` per group (rows of ``S`` only).

    ``log10_p(g)`` is the smaller of two HSIC p-values: against the other coordinates' features,
    and against their per-feature sums ``sum_{j not in g} phi_k(u_j)`` (``K`` columns, each at unit
    variance: a constraint spread thinly over many coordinates, such as ``sum_j x_j^2 = 1``, is
    weak in each coordinate and strong in the sum).  It depends on ``g`` alone (the others are
    always everything else), so it is computed once per group.
    """

    def __init__(self, S: np.ndarray, K: int, N: int) -> None:
        self.S, self.K, self.N = S, K, N
        self.E = np.zeros((len(S), K))
        self.E[np.arange(len(S)), np.arange(len(S)) % K] = 1.0  # column (j, k) -> feature index k
        self.SE = S @ self.E  # [m K, K]
        self.C = self.E.T @ self.SE  # covariance of the per-feature sums over every coordinate
        self.tr, self.fro2 = float(np.trace(S)), float((S**2).sum())
        self._cache: dict[tuple[int, ...], float] = {}

    def cols(self, g: list[int]) -> np.ndarray:
        return (np.asarray(g)[:, None] * self.K + np.arange(self.K)).ravel()

    def log10_p(self, g: list[int]) -> float:
        key = tuple(sorted(g))
        if key not in self._cache:
            self._cache[key] = self._compute(self.cols(key))
        return self._cache[key]

    def _compute(self, ig: np.ndarray) -> float:
        S_g = self.S[ig]
        S_gg = S_g[:, ig]
        gg2, tr_g = float((S_gg**2).sum()), float(np.trace(S_gg))
        cross2 = float((S_g**2).sum()) - gg2  # |S[g, rest]|^2
        rest2 = self.fro2 - 2 * cross2 - gg2  # |S[rest, rest]|^2
        p_all = _gamma_log10_p(self.N * cross2, tr_g * (self.tr - tr_g), 2 * gg2 * rest2)
        E_g, SE_g = self.E[ig], self.SE[ig]
        cross = SE_g - S_gg @ E_g  # cov(features of g, sums over the rest)  [|g| K, K]
        cov = self.C - E_g.T @ SE_g - SE_g.T @ E_g + E_g.T @ S_gg @ E_g  # cov of the rest's sums
        d = 1 / np.sqrt(np.maximum(np.diag(cov), 1e-12))
        cross, cov = cross * d, cov * np.outer(d, d)
        p_sum = _gamma_log10_p(self.N * float((cross**2).sum()), tr_g * float(np.trace(cov)),
                               2 * gg2 * float((cov**2).sum()))
        return min(p_all, p_sum)


def _merge_dependent(label: list[int], S: np.ndarray, excess: np.ndarray, K: int, N: int,
                     log_p_max: float) -> list[list[int]]:
    """Merge groups that depend on the rest taken together, most dependent first."""
    groups = [[i for i in range(len(label)) if label[i] == r] for r in dict.fromkeys(label)]
    test = _GroupTest(S, K, N)
    while len(groups) > 1:
        log_p = [test.log10_p(g) for g in groups]
        worst = int(np.argmin(log_p))
        if log_p[worst] >= log_p_max:
            break
        g = groups.pop(worst)
        shared = [float(excess[np.ix_(g, h)].sum()) for h in groups]
        groups[int(np.argmax(shared))].extend(g)
    return groups


def pack_groups(groups: list[list[int]], min_size: int) -> list[list[int]]:
    """Unite consecutive groups until each has at least ``min_size`` coordinates (the last may
    have fewer if the rest are too few to fill it; it then joins the one before).

    A union of independent groups is still independent of the others, so packed groups are a
    coarser, still exact, factorisation; a network per pack costs less than one per tiny group
    (``GroupedMLP``'s activations grow with the number of groups).
    """
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1, got {min_size!r}")
    packs: list[list[int]] = []
    for g in groups:
        if packs and len(packs[-1]) < min_size:
            packs[-1] = packs[-1] + list(g)
        else:
            packs.append(list(g))
    if len(packs) > 1 and len(packs[-1]) < min_size:
        last = packs.pop()
        packs[-1] = packs[-1] + last
    return [sorted(p) for p in packs]
