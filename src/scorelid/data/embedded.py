"""Curved manifolds nobody tuned for: cubes, tori and spheres pushed through smooth random networks.

The benchmark manifolds (``scorelid.data.manifolds``) are the paper's: flat pieces zero-padded,
a flat torus, a sphere.  A default recipe tuned on them can fail on a researcher's own data, so
this module makes data of another kind, with a known dimension per point:

* a *latent* sample of a ``d``-dimensional shape: ``"cube"`` (``z ~ U[-1, 1]^d``, ``d`` latent
  coordinates), ``"torus"`` (``d`` angles ``t_i ~ U[0, 2 pi)`` as ``(cos t_i, sin t_i)``, ``2d``
  coordinates), ``"sphere"`` (uniform on ``S^d`` in ``R^(d + 1)``);
* pushed through a smooth random map ``R^m -> R^n``, ``f(z) = W2 tanh(gain W1 z + b1)`` with
  ``W1 [h, m] ~ N(0, 1/m)``, ``b1 ~ N(0, 1)``, ``W2 [n, h] ~ N(0, 1/h)`` and ``h = max(4n, 64)``
  hidden units: an immersion for almost every draw (``h >= m``), curved at scale ``~1/gain``;
* every piece scaled to unit RMS per coordinate and placed at a random centre (per-coordinate std
  ``spread``), so a union's pieces are disjoint in general position (``d_1 + d_2 < n``);
* the union normalised like the benchmark data: centred and divided by its largest per-coordinate
  standard deviation, with statistics from a fixed reference sample (train and evaluation samples
  drawn with different seeds go through the same affine map).

Structure (maps, centres) depends only on the spec and ``structure_seed``; ``seed`` draws points.

    >>> x, d = embedded([("cube", 4), ("cube", 10)], 7000, n=48, seed=0)   # the issue's case
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["SHAPES", "embedded", "latent_sample", "smooth_map"]

#: latent shape -> number of latent coordinates for intrinsic dimension d
SHAPES = {"cube": lambda d: d, "torus": lambda d: 2 * d, "sphere": lambda d: d + 1}
_REFERENCE_SEED = 20261204
_REFERENCE_NUM = 20_000


def _rng(*key: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def latent_sample(shape: str, d: int, num: int, rng: np.random.Generator) -> np.ndarray:
    """``[num, m]`` uniform points on the ``d``-dimensional ``shape`` (``m = SHAPES[shape](d)``)."""
    if shape == "cube":
        return rng.uniform(-1.0, 1.0, size=(num, d))
    if shape == "torus":
        t = rng.uniform(0.0, 2 * np.pi, size=(num, d))
        return np.concatenate([np.cos(t), np.sin(t)], axis=1)
    if shape == "sphere":
        g = rng.standard_normal((num, d + 1))
        return g / np.linalg.norm(g, axis=1, keepdims=True)
    raise ValueError(f"unknown shape {shape!r}; choose one of {sorted(SHAPES)}")


def smooth_map(m: int, n: int, gain: float, rng: np.random.Generator):
    """A random smooth map ``[N, m] -> [N, n]`` (one tanh layer of ``max(4n, 64)`` units)."""
    h = max(4 * n, 64)
    w1 = rng.standard_normal((m, h)) / np.sqrt(m)
    b1 = rng.standard_normal(h)
    w2 = rng.standard_normal((h, n)) / np.sqrt(h)
    return lambda z: np.tanh(gain * z @ w1 + b1) @ w2


def _parse(specs: Sequence[tuple]) -> list[tuple[str, int]]:
    parts = []
    for s in specs:
        if not (isinstance(s, tuple | list) and len(s) == 2 and s[0] in SHAPES and int(s[1]) >= 1):
            raise ValueError(f"each spec must be (shape, d) with shape in {sorted(SHAPES)}, got {s!r}")
        parts.append((str(s[0]), int(s[1])))
    if not parts:
        raise ValueError("embedded needs at least one (shape, d) spec")
    return parts


def _raw(parts: list[tuple[str, int]], num: int, seed: int, n: int, gain: float, spread: float,
         structure_seed: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.full(len(parts), num // len(parts))
    counts[: num - counts.sum()] += 1
    xs, ds = [], []
    for i, ((shape, d), c) in enumerate(zip(parts, counts, strict=True)):
        srng = _rng("embedded-structure", structure_seed, i, shape, d, n, gain)
        f = smooth_map(SHAPES[shape](d), n, gain, srng)
        centre = spread * srng.standard_normal(n)
        ref = f(latent_sample(shape, d, 4096, _rng("embedded-piece-ref", structure_seed, i, shape, d)))
        mu, rms = ref.mean(0), float(np.sqrt(ref.var(0).mean()))
        z = latent_sample(shape, d, int(c), _rng("embedded-points", seed, i, shape, d))
        xs.append((f(z) - mu) / rms + centre)
        ds.append(np.full(int(c), d))
    x, dd = np.concatenate(xs), np.concatenate(ds)
    order = _rng("embedded-shuffle", seed, tuple(parts), n).permutation(len(x))
    return x[order], dd[order]


def embedded(specs: Sequence[tuple[str, int]], num: int, n: int, seed: int = 0, *, gain: float = 1.0,
             spread: float = 1.5, structure_seed: int = 0) -> tuple[Tensor, Tensor]:
    """A union of smoothly embedded pieces in ``R^n`` with each point's true dimension.

    Args:
        specs: ``[(shape, d), ...]``, shape one of ``SHAPES``; points are split equally.
        num: number of points; n: ambient dimension (``> 2 * max d`` keeps pieces embedded).
        seed: draws the points (use different seeds for training and evaluation).
        gain: curvature of the random maps (larger: more curved).
        spread: per-coordinate std of the pieces' random centres (pieces have unit RMS).
        structure_seed: draws the maps and centres (the data set's identity).

    Returns:
        ``x`` ``[num, n]`` float32 and ``d_true`` ``[num]`` int64.
    """
    parts = _parse(specs)
    if not (isinstance(num, int | np.integer) and num >= 1):
        raise ValueError(f"num must be an integer >= 1, got {num!r}")
    if not (isinstance(n, int | np.integer) and n >= 2):
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not (gain > 0 and spread >= 0):
        raise ValueError(f"need gain > 0 and spread >= 0, got {gain}, {spread}")
    x, dd = _raw(parts, int(num), seed, int(n), gain, spread, structure_seed)
    ref, _ = _raw(parts, _REFERENCE_NUM, _REFERENCE_SEED, int(n), gain, spread, structure_seed)
    x = (x - ref.mean(0)) / ref.std(0).max()
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(dd.astype(np.int64))
