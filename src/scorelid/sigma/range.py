"""Where a point's plateaus can lie: the noise range of the data and of the model.

``sigma="auto"`` reads each point's LID off a flat stretch of its LID curve.  A plateau of a piece of
the data with standard deviation ``l`` lies below about ``0.3 l`` (for a Gaussian piece
``E[DSM] = d / (1 + sigma^2 / l^2)``), so a grid that starts above ``l`` never shows it; and a
plateau below the model's own error floor describes the model, not the data.  This module finds:

* ``data_range(x)``: from the smallest scale in the data (nearest-neighbour distances) to its spread
  (the largest per-coordinate standard deviation);
* ``model_range(D)``: the noise levels a model was trained on, when it says (a scorelid checkpoint's
  ``config["train"]``, a diffusers adapter's ``sigma_min``); ``None`` for a closed form or any other
  callable;
* ``error_floor(D)``: for a scorelid checkpoint, the noise level below which its DSM training loss
  per sigma (``history["lid_by_sigma"]``) rises steeply, i.e. the model's error dominates;
* ``auto_grid(D, x)``: the log grid that spans both, about six levels per decade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from scorelid.denoiser import Denoiser
from scorelid.sigma.grid import log_grid

__all__ = ["LEVELS_PER_DECADE", "NoiseRange", "auto_grid", "data_range", "error_floor", "model_range"]

#: Grid density of ``auto_grid``: levels about 1.47x apart, as in ``DEFAULT_GRID``.
LEVELS_PER_DECADE = 6
#: ``data_range``'s small end: this fraction of the 1% quantile of nearest-neighbour distances (a
#: d-dimensional piece of standard deviation l has neighbours about l sqrt(2d) N^(-1/d) apart, and
#: its plateau lies below about 0.3 l).
NEIGHBOUR_FRACTION = 1 / 30
#: Points used for the nearest-neighbour distances (a seeded subsample of larger sets).
MAX_NEIGHBOUR_POINTS = 2000
#: Steepest training-loss log-slope ``|dlog LID / dlog sigma|`` still counted above the error floor.
FLOOR_SLOPE = 0.5


@dataclass(frozen=True)
class NoiseRange:
    """A range of noise levels ``[lo, hi]`` (VE scale, data units) and where it comes from."""

    lo: float
    hi: float
    source: str


def data_range(x: Tensor | np.ndarray, seed: int = 0) -> NoiseRange:
    """The data's own scales: ``lo`` from nearest-neighbour distances, ``hi`` its largest
    per-coordinate standard deviation.  ``x`` ``[N, *shape]`` with N >= 2."""
    pts = torch.as_tensor(x).reshape(len(x), -1).to(torch.float64)
    if pts.shape[0] < 2:
        raise ValueError("the data's scale needs at least 2 points")
    if pts.shape[0] > MAX_NEIGHBOUR_POINTS:
        keep = torch.randperm(pts.shape[0], generator=torch.Generator().manual_seed(seed))
        pts = pts[keep[:MAX_NEIGHBOUR_POINTS]]
    nn = torch.full((pts.shape[0],), math.inf, dtype=torch.float64)
    for start in range(0, pts.shape[0], 256):
        d = torch.cdist(pts[start:start + 256], pts)
        d[torch.arange(d.shape[0]), torch.arange(start, start + d.shape[0])] = math.inf
        d[d == 0] = math.inf  # duplicates carry no scale
        nn[start:start + d.shape[0]] = d.min(1).values
    nn = nn[torch.isfinite(nn)]
    hi = float(pts.std(0).max())
    if nn.numel() == 0 or not hi > 0:
        raise ValueError("the data has no spread (all points equal): no noise scale to choose")
    lo = float(torch.quantile(nn, 0.01)) * NEIGHBOUR_FRACTION
    return NoiseRange(min(lo, hi / 10), hi, "data")


def model_range(D: Denoiser) -> NoiseRange | None:
    """Noise levels ``D`` was trained on, if it says; else ``None``."""
    config = getattr(D, "config", None)
    train = config.get("train") if isinstance(config, dict) else None
    if isinstance(train, dict) and "sigma_min" in train and "sigma_max" in train:
        return NoiseRange(float(train["sigma_min"]), float(train["sigma_max"]), "training")
    lo = getattr(D, "sigma_min", None)
    if isinstance(lo, int | float) and lo > 0:
        hi = getattr(D, "sigma_max", math.inf)
        return NoiseRange(float(lo), float(hi) if isinstance(hi, int | float) else math.inf, "model")
    return None


def error_floor(D: Denoiser) -> float | None:
    """The noise level below which ``D``'s DSM training loss rises steeply, if ``D`` records it.

    Reads ``D.history["lid_by_sigma"]`` (rows ``sigma_lo``, ``sigma_hi``, ``mean_lid``: the training
    loss per log-spaced sigma bucket, on the LID scale).  From the smallest bucket up, the floor is
    the lower edge of the first bucket where ``|dlog LID / dlog sigma| <= FLOOR_SLOPE`` (the model
    error's ``delta^2 / sigma^2`` rise has a log-slope near -2).  ``None`` without a history.
    """
    history = getattr(D, "history", None)
    rows = history.get("lid_by_sigma") if isinstance(history, dict) else None
    rows = [r for r in rows or [] if r.get("count", 1) and np.isfinite(r.get("mean_lid", np.nan))
            and r["mean_lid"] > 0]
    if len(rows) < 3:
        return None
    mid = np.log([r["sigma_mid"] for r in rows])
    lid = np.log([r["mean_lid"] for r in rows])
    g = np.gradient(lid, mid)
    for r, gi in zip(rows, g, strict=True):
        if abs(gi) <= FLOOR_SLOPE:
            return float(r["sigma_lo"])
    return float(rows[0]["sigma_lo"])


def auto_grid(D: Denoiser, x: Tensor | np.ndarray, seed: int = 0) -> tuple[Tensor, NoiseRange]:
    """The grid of ``sigma="auto"``: ``[S]`` float64, log-spaced, ``LEVELS_PER_DECADE`` per decade.

    From the model's smallest trained level (or, for a callable that does not say, the data's
    smallest scale) to the data's spread (capped by the model's largest trained level).
    """
    data = data_range(x, seed)
    model = model_range(D)
    lo = model.lo if model is not None else data.lo
    hi = min(data.hi, model.hi) if model is not None else data.hi
    if not hi > lo * 1.5:  # keep at least a few levels
        hi = lo * 10
    k = max(5, round(math.log10(hi / lo) * LEVELS_PER_DECADE) + 1)
    return log_grid(lo, hi, k), NoiseRange(lo, hi, model.source if model is not None else data.source)
