"""Noise-level grids: the default grid, ``"a:b:k"`` / list parsing, log spacing, validation."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["DEFAULT_GRID", "log_grid", "parse_sigmas", "validate_sigmas"]

#: Default grid (data units): 12 levels, about 1.45x apart, from 0.005 to 0.3 (the range the
#: quick-recipe models are trained on), including the usual fixed choices 0.01, 0.02 and 0.05.
DEFAULT_GRID = (0.005, 0.007, 0.01, 0.014, 0.02, 0.03, 0.05, 0.07, 0.1, 0.14, 0.2, 0.3)


def validate_sigmas(sigmas: Sequence[float] | Tensor | np.ndarray) -> Tensor:
    """``sigmas`` as a strictly increasing ``[S]`` float64 tensor of positive finite values (S >= 1)."""
    s = torch.as_tensor(np.asarray(sigmas, dtype=np.float64)).reshape(-1)
    if s.numel() == 0:
        raise ValueError("sigmas is empty")
    if not (torch.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"sigmas must be finite and > 0, got {s.tolist()}")
    if s.numel() > 1 and not (s[1:] > s[:-1]).all():
        raise ValueError(f"sigmas must be strictly increasing, got {s.tolist()}")
    return s


def log_grid(lo: float, hi: float, k: int) -> Tensor:
    """``k`` log-spaced levels from ``lo`` to ``hi`` inclusive: ``[k]`` float64."""
    return torch.exp(torch.linspace(math.log(lo), math.log(hi), k, dtype=torch.float64))


def parse_sigmas(spec: str | Sequence[float]) -> Tensor:
    """Noise levels from ``"a:b:k"`` (``k`` log-spaced levels from ``a`` to ``b``), ``"a,b,c"``
    (a list, sorted) or a sequence of numbers: ``[S]`` float64, strictly increasing, all > 0.

    Raises ``ValueError`` naming the problem (not a number, sigma <= 0, ``k < 2``, ``a >= b``,
    repeated levels).
    """
    if not isinstance(spec, str):
        vals = sorted(float(v) for v in spec)
        return _checked_list(vals, repr(list(spec)))
    text = spec.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"sigma grid {spec!r} must be 'a:b:k' (from a to b, k log-spaced levels)")
        try:
            a, b = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"sigma grid {spec!r}: a and b must be numbers") from None
        try:
            k = int(parts[2])
        except ValueError:
            raise ValueError(f"sigma grid {spec!r}: k must be an integer") from None
        if not (math.isfinite(a) and math.isfinite(b)) or a <= 0 or b <= 0:
            raise ValueError(f"sigma grid {spec!r}: levels must be finite and > 0")
        if a >= b:
            raise ValueError(f"sigma grid {spec!r}: need a < b, got a={a}, b={b}")
        if k < 2:
            raise ValueError(f"sigma grid {spec!r}: need k >= 2 levels, got {k}")
        return log_grid(a, b, k)
    try:
        vals = sorted(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"sigmas {spec!r} must be 'a:b:k' or a comma list of numbers") from None
    return _checked_list(vals, repr(spec))


def _checked_list(vals: list[float], name: str) -> Tensor:
    if not vals:
        raise ValueError(f"sigmas {name} is empty")
    if any(not math.isfinite(v) or v <= 0 for v in vals):
        raise ValueError(f"sigmas {name}: every level must be finite and > 0")
    if any(b == a for a, b in itertools.pairwise(vals)):
        raise ValueError(f"sigmas {name}: repeated level")
    return torch.tensor(vals, dtype=torch.float64)
