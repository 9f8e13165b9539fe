"""Plateaus of a point's LID curve: every scale at which the point has a dimension.

A point can have several: a thin 10-dimensional piece of width 0.01 that lies along a 2-dimensional
sheet reads 10 for ``sigma`` well below 0.01 and 2 between the width and the sheet's own extent.  On
a log grid the LID curve is flat on each such stretch and steep between them (model error adds
``delta^2 / sigma^2`` at small sigma; a piece coarser than ``sigma`` decays like a power of sigma).

``find_plateaus`` marks, per point, the levels where the relative slope
``|dlog LID / dlog sigma|`` (curve smoothed as in ``slope.slope``) is at most ``max_slope``, the LID
is at least ``min_lid`` (a decayed curve near 0 describes no dimension) and ``sigma`` is at or above
the model's error floor and not saturated (``slope.saturated``: the mean reading within 5% of the
ambient dimension, where a model that removes no noise reads ``n`` flat); each run of consecutive
marked levels is a ``Plateau``.

``choose`` picks, per point, the smallest-scale plateau at least ``min_width`` decades wide (LID is
a small-sigma limit, so the finest scale the model can resolve is the point's LID); if none is that
wide, the widest; if the point has none, the level of smallest relative slope (``min_log_slope``).
The LID reported is the unsmoothed curve at the flattest level of the chosen plateau, so it equals
``estimate`` at that sigma.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from scorelid.sigma.slope import min_log_slope, relative_slope

__all__ = ["MAX_SLOPE", "MIN_LID", "MIN_WIDTH", "Plateau", "choose", "find_plateaus"]

#: Flatness: largest ``|dlog LID / dlog sigma|`` on a plateau (a Gaussian piece of scale l reads
#: ``d / (1 + sigma^2/l^2)``: within 8% of d while this holds).
MAX_SLOPE = 0.15
#: Smallest LID a plateau may have.
MIN_LID = 0.5
#: Width (decades of sigma) a plateau needs to be trusted over a wider one at a coarser scale.
MIN_WIDTH = 0.3


@dataclass(frozen=True)
class Plateau:
    """A flat stretch of one point's LID curve.

    Attributes:
        start, stop: grid indices of its first and last level (inclusive).
        index: grid index of its flattest level (where its LID is read).
        sigma: the noise level at ``index`` (data units).
        lid: the point's LID there.
        width: ``log10(sigma[stop] / sigma[start])`` plus one grid step: decades of sigma covered.
    """

    start: int
    stop: int
    index: int
    sigma: float
    lid: float
    width: float

    def as_text(self) -> str:
        """``"sigma:lid:width"`` with 4 significant digits."""
        return f"{self.sigma:.4g}:{self.lid:.4g}:{self.width:.3g}"


def find_plateaus(
    curve: Tensor,
    sigmas: Tensor,
    *,
    floor: float | None = None,
    max_slope: float = MAX_SLOPE,
    min_lid: float = MIN_LID,
    skip: Tensor | None = None,
) -> list[list[Plateau]]:
    """Plateaus of each point's curve, smallest scale first.

    Args:
        curve: ``[S, N]`` LID curve on the increasing log grid ``sigmas`` ``[S]``.
        floor: the model's error floor (levels below it are never part of a plateau); ``None``: none.
        max_slope, min_lid: see the module docstring.
        skip: ``[S]`` bool, levels never part of a plateau (``slope.saturated``); ``None``: none.

    Returns:
        ``N`` lists of ``Plateau``.
    """
    curve = curve.to(torch.float64).cpu()
    s = sigmas.to(torch.float64).cpu()
    rel = relative_slope(curve, s)
    ok = (rel <= max_slope) & (curve >= min_lid)
    if floor is not None:
        ok &= (s >= floor * (1 - 1e-9)).unsqueeze(1)
    if skip is not None:
        ok &= ~skip.unsqueeze(1)
    step = float(torch.log10(s[-1] / s[0])) / (len(s) - 1) if len(s) > 1 else 0.0
    out: list[list[Plateau]] = []
    okn, reln, cn = ok.numpy(), rel.numpy(), curve.numpy()
    for i in range(curve.shape[1]):
        found, j = [], 0
        while j < len(s):
            if not okn[j, i]:
                j += 1
                continue
            k = j
            while k + 1 < len(s) and okn[k + 1, i]:
                k += 1
            best = j + int(reln[j : k + 1, i].argmin())
            width = math.log10(float(s[k] / s[j])) + step
            found.append(Plateau(j, k, best, float(s[best]), float(cn[best, i]), width))
            j = k + 1
        out.append(found)
    return out


def choose(
    curve: Tensor, sigmas: Tensor, plateaus: list[list[Plateau]], min_width: float = MIN_WIDTH,
    skip: Tensor | None = None,
) -> Tensor:
    """Chosen grid index per point ``[N]`` (int64): see the module docstring (``skip``: the levels
    the fallback avoids, ``slope.saturated``)."""
    fb = min_log_slope(curve.to(torch.float64).cpu(), sigmas.to(torch.float64).cpu(), skip=skip)
    idx = torch.empty(curve.shape[1], dtype=torch.long)
    for i, found in enumerate(plateaus):
        wide = [p for p in found if p.width >= min_width - 1e-9]
        if wide:
            idx[i] = wide[0].index
        elif found:
            idx[i] = max(found, key=lambda p: p.width).index
        else:
            idx[i] = fb[i]
    return idx
