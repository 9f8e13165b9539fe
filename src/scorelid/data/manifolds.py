"""Benchmark manifolds with known local intrinsic dimension (the paper's Table 1 data).

Five manifolds, built with scikit-dimension's generators where it has them and embedded into
``n`` ambient coordinates as the authors' code does (zero-padding; column permutation for the
Clifford torus):

============== ===== ===== =====================================================================
name           d     n     what the generator really produces
============== ===== ===== =====================================================================
hypersphere    16    64    ``skdim.datasets.hyperSphere``: uniform on the unit ``S^d`` in
                           ``R^(d+1)`` (``d + 1`` = 17 coordinates), zero-padded to ``n``.
hyperball      16    64    ``skdim.datasets.hyperBall``: uniform in the unit ``d``-ball (``d``
                           coordinates, a full-dimensional solid), zero-padded to ``n``.
hypertwinpeaks 128   256   ``skdim.datasets.hyperTwinPeaks``: ``u ~ U[0,1]^d`` plus a height
                           ``prod_i sin(2 pi u_i)``.  At ``d = 128`` the product underflows to
                           ~1e-24 or less: the data is in effect a flat 128-cube, no peaks.
clifford_torus 32    128   not in scikit-dimension: ``d`` unit circles ``(cos t_i, sin t_i)``,
                           ``t_i ~ U[0, 2 pi)``, i.e. a flat ``d``-torus in ``2d`` coordinates,
                           zero-padded to ``n`` and with its columns permuted (needs ``n >= 2d``).
nonlinear      32    128   scikit-dimension's ``BenchmarkManifolds`` ``Mn1_Nonlinear`` generator
                           (Campadelli et al.): ``X ~ U[0,1]^d``, coordinates
                           ``tan(X_i cos X_{d-1-i})`` and ``arctan(X_{d-1-i} sin X_i)``, each
                           block twice (``4d`` coordinates; needs pandas), zero-padded to ``n``.
============== ===== ===== =====================================================================

Reproducibility: scikit-dimension 0.5's generators take a ``random_state``; we pass each a
``numpy.random.RandomState`` seeded from ``(seed, name, d, n)``, so the same call gives the same
points and different seeds give independent samples (train and evaluation points must use
different seeds).  Nothing touches numpy's global RNG.

Normalisation (where it happens, and why): the paper centres every data set and divides it by its
largest per-coordinate standard deviation.  The authors compute these statistics on each sample;
we compute them once per manifold from a fixed reference sample (``REFERENCE_SEED``, up to
``REFERENCE_NUM`` points), so that training and evaluation samples drawn with different seeds go
through *exactly the same* affine map and the noise level ``sigma`` means the same thing for both.
``manifold(..., normalize=False)`` gives the raw geometry.  The trained denoiser additionally stores
its own training-data mean and scale (see ``scorelid.nn.precond``), so it works in the units of
whatever data it was trained on.

Fixed structure (the Clifford torus's column permutation, the offsets of a union) depends only on
the manifold's parameters, never on ``seed``: it is part of the manifold, not of the sample.

scikit-dimension quirk: ``hyperBall(center=...)`` compares ``center == []``, which raises for a
numpy array centre; we never pass a centre (the ball is centred at the origin, then centred again
by the normalisation).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "MANIFOLDS",
    "REFERENCE_NUM",
    "REFERENCE_SEED",
    "FamilyMember",
    "dims_family",
    "manifold",
    "normalization",
    "raw_manifold",
    "union",
]

#: name -> the paper's default (intrinsic dimension d, ambient dimension n)
MANIFOLDS: dict[str, tuple[int, int]] = {
    "hypersphere": (16, 64),
    "hyperball": (16, 64),
    "hypertwinpeaks": (128, 256),
    "clifford_torus": (32, 128),
    "nonlinear": (32, 128),
}

REFERENCE_SEED = 20251014
REFERENCE_NUM = 20_000
_STRUCTURE_SEED = 7919


def _rng(seed: int, *key: object) -> np.random.RandomState:
    """A legacy ``RandomState`` (what scikit-dimension consumes) seeded from ``seed`` and a key."""
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    tag = zlib.crc32(repr(key).encode())
    return np.random.RandomState(np.random.SeedSequence([int(seed), tag]).generate_state(1)[0])


def _coords_needed(name: str, d: int) -> int:
    """Generator coordinates before padding."""
    return {"hypersphere": d + 1, "hyperball": d, "hypertwinpeaks": d + 1,
            "clifford_torus": 2 * d, "nonlinear": 4 * d}[name]


def _check(name: str, d: int | None, n: int | None) -> tuple[int, int]:
    if name not in MANIFOLDS:
        raise ValueError(f"unknown manifold {name!r}; choose one of {sorted(MANIFOLDS)}")
    d0, n0 = MANIFOLDS[name]
    d = d0 if d is None else d
    n = (n0 if d == d0 else max(n0, _coords_needed(name, d))) if n is None else n
    if not isinstance(d, int | np.integer) or d < 1:
        raise ValueError(f"{name}: intrinsic dimension d must be an integer >= 1, got {d!r}")
    if not isinstance(n, int | np.integer) or n < _coords_needed(name, d):
        raise ValueError(
            f"{name}: ambient dimension n={n!r} too small for d={d}; "
            f"the generator needs n >= {_coords_needed(name, d)}"
        )
    return int(d), int(n)


def _generate(name: str, num: int, d: int, rs: np.random.RandomState) -> np.ndarray:
    """Unpadded generator output ``[num, _coords_needed(name, d)]`` (float64)."""
    import skdim.datasets as sd

    if name == "hypersphere":
        return sd.hyperSphere(num, d, random_state=rs)
    if name == "hyperball":
        return sd.hyperBall(num, d, random_state=rs)
    if name == "hypertwinpeaks":
        return sd.hyperTwinPeaks(num, d, random_state=rs)
    if name == "clifford_torus":
        theta = rs.uniform(0.0, 2 * np.pi, size=(num, d))
        out = np.empty((num, 2 * d))
        out[:, 0::2], out[:, 1::2] = np.cos(theta), np.sin(theta)
        return out
    if name == "nonlinear":
        try:
            bm = sd.BenchmarkManifolds(random_state=rs)
        except ImportError as exc:  # pragma: no cover - pandas is a bench dependency
            raise ValueError("the nonlinear manifold needs pandas (pip install 'scorelid[bench]')") from exc
        return bm.generate("Mn1_Nonlinear", n=num, dim=4 * d, d=d)
    raise ValueError(f"unknown manifold {name!r}")  # pragma: no cover - checked before


def _column_permutation(name: str, d: int, n: int) -> np.ndarray | None:
    if name != "clifford_torus":
        return None
    return _rng(_STRUCTURE_SEED, "perm", name, d, n).permutation(n)


def raw_manifold(name: str, num: int, seed: int = 0, *, d: int | None = None,
                 n: int | None = None) -> np.ndarray:
    """Un-normalised points ``[num, n]`` (float64): generator output, zero-padded, permuted."""
    d, n = _check(name, d, n)
    if not isinstance(num, int | np.integer) or num < 1:
        raise ValueError(f"num must be an integer >= 1, got {num!r}")
    core = _generate(name, int(num), d, _rng(seed, name, d, n))
    x = np.zeros((int(num), n))
    x[:, : core.shape[1]] = core
    perm = _column_permutation(name, d, n)
    return x[:, perm] if perm is not None else x


def _reference_num(n: int) -> int:
    return int(max(2000, min(REFERENCE_NUM, 2**25 // max(n, 1))))


@functools.lru_cache(maxsize=64)
def normalization(name: str, d: int | None = None, n: int | None = None) -> tuple[np.ndarray, float]:
    """The fixed affine map of a manifold: ``(mean [n], scale)`` with ``x_norm = (x - mean) / scale``.

    ``scale`` is the largest per-coordinate standard deviation of a reference sample drawn with
    ``REFERENCE_SEED`` (the paper's normalisation, computed once instead of per sample).
    """
    d, n = _check(name, d, n)
    ref = raw_manifold(name, _reference_num(n), REFERENCE_SEED, d=d, n=n)
    mean = ref.mean(0)
    scale = float(ref.std(0).max())
    mean.setflags(write=False)
    return mean, scale


def manifold(name: str, num: int, seed: int = 0, *, d: int | None = None, n: int | None = None,
             normalize: bool = True) -> tuple[Tensor, Tensor]:
    """Sample one benchmark manifold.

    Args:
        name: one of ``MANIFOLDS``.
        num: number of points.
        seed: sample seed; draw training and evaluation points with different seeds.
        d, n: override the intrinsic / ambient dimension (defaults from ``MANIFOLDS``).
        normalize: apply the manifold's fixed centring and scaling (see ``normalization``).

    Returns:
        ``x``: ``[num, n]`` float32 points; ``d_true``: ``[num]`` int64, the true LID (``d``).
    """
    d, n = _check(name, d, n)
    x = raw_manifold(name, num, seed, d=d, n=n)
    if normalize:
        mean, scale = normalization(name, d, n)
        x = (x - mean) / scale
    return torch.from_numpy(x.astype(np.float32)), torch.full((int(num),), d, dtype=torch.int64)


def _parse_spec(spec: str | tuple) -> tuple[str, int | None]:
    if isinstance(spec, str):
        return spec, None
    if isinstance(spec, tuple | list) and len(spec) == 2 and isinstance(spec[0], str):
        return spec[0], int(spec[1])
    raise ValueError(f"union spec must be a manifold name or a (name, d) pair, got {spec!r}")


def _raw_union(parts: list[tuple[str, int]], num: int, seed: int, n: int, offset: float,
               weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts = np.floor(weights * num).astype(int)
    counts[: num - counts.sum()] += 1  # distribute the remainder, deterministic
    xs, ds = [], []
    for i, ((name, d), c) in enumerate(zip(parts, counts, strict=True)):
        if c == 0:
            continue
        x = raw_manifold(name, int(c), seed, d=d, n=n)
        # Component i is shifted by i * offset along the last coordinate, which no component's
        # generator uses (checked in ``union``), so the components are disjoint for offset > 2.
        x[:, n - 1] += i * offset
        xs.append(x)
        ds.append(np.full(int(c), d))
    x, dd = np.concatenate(xs), np.concatenate(ds)
    order = _rng(seed, "union-shuffle", tuple(parts), n).permutation(len(x))
    return x[order], dd[order]


def union(specs: Sequence[str | tuple[str, int]], num: int, seed: int = 0, *, n: int | None = None,
          offset: float = 4.0, weights: Sequence[float] | None = None,
          normalize: bool = True) -> tuple[Tensor, Tensor]:
    """Union of manifolds of different dimensions in one ambient space (per-point ground truth).

    Example: ``union([("hypersphere", 4), ("hypersphere", 16), ("hypersphere", 48)], 3000, n=64)``
    gives three unit spheres ``S^4, S^16, S^48`` in ``R^64``, component ``i`` shifted by
    ``i * offset`` along the last coordinate, ``num`` points split by ``weights`` (default equal)
    and shuffled.  Normalised with a fixed reference sample of the same union, like ``manifold``.

    Returns:
        ``x`` ``[num, n]`` float32 and ``d_true`` ``[num]`` int64 (each point's component's ``d``).
    """
    parts = [_parse_spec(s) for s in specs]
    if not parts:
        raise ValueError("union needs at least one manifold spec")
    parts = [(name, _check(name, d, None)[0]) for name, d in parts]
    need = max(_coords_needed(name, d) for name, d in parts) + 1
    n = need if n is None else int(n)
    for name, d in parts:
        _check(name, d, n)
        if name == "clifford_torus":
            raise ValueError(
                "clifford_torus permutes its columns and cannot share the offset axis in a union"
            )
    if n < need:
        raise ValueError(
            f"union needs n >= {need} (largest component's coordinates + 1 offset axis), got {n}"
        )
    if weights is None:
        w = np.full(len(parts), 1.0 / len(parts))
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != (len(parts),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(parts)} non-negative numbers with a positive sum")
        w = w / w.sum()
    if not isinstance(num, int | np.integer) or num < 1:
        raise ValueError(f"num must be an integer >= 1, got {num!r}")
    x, dd = _raw_union(parts, int(num), seed, n, offset, w)
    if normalize:
        ref, _ = _raw_union(parts, _reference_num(n), REFERENCE_SEED, n, offset, w)
        x = (x - ref.mean(0)) / ref.std(0).max()
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(dd.astype(np.int64))


class FamilyMember(NamedTuple):
    """One member of a dimension family: intrinsic ``d``, ambient ``n``, points and truth."""

    d: int
    n: int
    x: Tensor
    d_true: Tensor


def dims_family(name: str, dims: Sequence[int], n_of_d: Callable[[int], int] | int | None = None,
                num: int = 1000, seed: int = 0, *, normalize: bool = True) -> list[FamilyMember]:
    """The same manifold at several intrinsic dimensions, for the scaling study (Figure 2).

    Args:
        name: one of ``MANIFOLDS``.
        dims: intrinsic dimensions ``d``.
        n_of_d: ambient dimension as a function of ``d`` (default ``4 * d``, valid for every
            manifold), or one fixed ``n`` for all members.
        num, seed: points per member and sample seed.

    Returns:
        ``[FamilyMember(d, n, x [num, n], d_true [num]), ...]`` in the order of ``dims``.
    """
    if n_of_d is None:
        def n_of_d(d: int) -> int:
            return 4 * d
    out = []
    for d in dims:
        n = n_of_d if isinstance(n_of_d, int) else int(n_of_d(int(d)))
        x, dt = manifold(name, num, seed, d=int(d), n=n, normalize=normalize)
        out.append(FamilyMember(int(d), int(n), x, dt))
    return out
