"""The slope of an LID curve on a log grid: ``g = dLID / dlog sigma``, lightly smoothed."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["LOG_SLOPE_FLOOR", "SATURATION", "interior", "min_log_slope", "relative_slope", "saturated",
           "slope"]

#: LID floor of the relative slope ``|g| / max(|LID|, floor)``: a guard against 0.
LOG_SLOPE_FLOOR = 1e-12
#: A level whose mean reading over the points is within this fraction of the ambient dimension
#: ``n`` (``|mean / n - 1| <= 1 - SATURATION``) is saturated: the model removes (almost) no noise
#: there, so the curve is flat at ``n`` because the model knows nothing at that scale, not because
#: the data has dimension ``n``.  (A model error that blows the reading up far above ``n`` is not
#: saturation: a thin piece's points can still read their plateau there.)  Rules
#: never choose a saturated level while there is another.  On curved data a quick model's DSM curve
#: is flat at n below its resolution and the flattest level was that one (43 and 48 read for d = 4
#: and 10 in R^48, benchmarks/unseen_data.py).  The mean, not each point: one point's reading with K
#: draws scatters by ``sqrt(2n/K)`` around n there.
SATURATION = 0.95


def saturated(curve: Tensor, n: int) -> Tensor:
    """``[S]`` bool: the levels of ``curve`` ``[S, N]`` whose mean over the points is within
    ``1 - SATURATION`` of ``n`` (relative)."""
    return (curve.to(torch.float64).mean(1).cpu() / n - 1).abs() <= 1 - SATURATION


def _smooth(curve: Tensor) -> Tensor:
    """``[1, 2, 1] / 4`` smoothing along the level axis, end levels kept (exact for curves linear
    in the level index, i.e. in ``log sigma`` on a log-uniform grid)."""
    out = curve.clone()
    if curve.shape[0] >= 3:
        out[1:-1] = (curve[:-2] + 2 * curve[1:-1] + curve[2:]) / 4
    return out


def slope(curve: Tensor, sigmas: Tensor, smooth: bool = True) -> Tensor:
    """``dLID/dlog sigma`` ``[S, N]`` (central differences inside, one-sided at the ends)."""
    if curve.shape[0] < 2:
        raise ValueError("a slope needs at least 2 noise levels")
    c = _smooth(curve) if smooth else curve
    t = torch.log(sigmas.to(torch.float64)).reshape(-1, *([1] * (curve.ndim - 1)))
    return torch.from_numpy(np.gradient(c.numpy(), t.reshape(-1).numpy(), axis=0))


def relative_slope(curve: Tensor, sigmas: Tensor, g: Tensor | None = None) -> Tensor:
    """``|dlog LID / dlog sigma|`` as ``|g| / max(|LID|, LOG_SLOPE_FLOOR)``: ``[S, N]`` (``g``: the
    curve's ``slope`` when already computed)."""
    g = slope(curve, sigmas) if g is None else g
    return g.abs() / curve.abs().clamp_min(LOG_SLOPE_FLOOR)


def interior(S: int) -> slice:
    """The grid levels a rule may choose: all but the two ends (every level when ``S < 3``)."""
    return slice(1, S - 1) if S >= 3 else slice(0, S)


def min_log_slope(curve: Tensor, sigmas: Tensor, g: Tensor | None = None,
                  skip: Tensor | None = None) -> Tensor:
    """Per point ``[N]``: the interior level of smallest ``relative_slope``, not one of the levels
    marked in ``skip`` ``[S]`` (bool, e.g. ``saturated``) unless every interior level is."""
    inner = interior(curve.shape[0])
    rel = relative_slope(curve, sigmas, g)[inner]
    if skip is not None and not bool(skip[inner].all()):
        rel = rel.masked_fill(skip[inner].unsqueeze(1).to(rel.device), float("inf"))
    return rel.argmin(0) + (inner.start or 0)
