"""Noise levels: VE sigma <-> a model's timestep, and the policy below the trained range.

A discrete VP schedule (DDPM, SD 1.x/2.x) trains at levels ``sigma_t = sqrt((1 - abar_t) / abar_t)``,
``t = 0 .. T-1``, increasing in ``t``.  A continuous VE ``sigma`` maps to a fractional timestep by
interpolating ``log sigma`` linearly between the two neighbouring trained levels (k-diffusion's
``DiscreteSchedule.sigma_to_t``), or to the nearest level with ``snap=True``.

Below the smallest trained level (SD2: ``sigma_0 = 0.0292``) the network never saw the input:
``below_range="error"`` refuses with a ``ValueError``; ``"extrapolate"`` continues the log-linear
map of the first two levels (a negative, fractional timestep) and warns.  Nothing is clamped.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["BELOW_RANGE", "NoiseLevel", "check_below_range", "vp_sigmas"]

BELOW_RANGE = ("error", "extrapolate")
# Slack in log sigma above the largest trained level: a sigma that went through float32 (relative
# rounding 6e-8) must still count as that level (the table is float64); anything further is refused.
TOP_TOLERANCE = 1e-6


@dataclass(frozen=True)
class NoiseLevel:
    """What a requested VE ``sigma`` becomes for the model.

    Attributes:
        sigma: the requested VE noise level.
        sigma_used: the VE level of the timestep the network receives (differs from ``sigma``
            only when snapping to a trained level).
        timestep: the timestep passed to the network (fractional unless snapped).
        extrapolated: True when ``sigma`` lies below the smallest trained level.
    """

    sigma: float
    sigma_used: float
    timestep: float
    extrapolated: bool


def vp_sigmas(alphas_cumprod: Tensor) -> Tensor:
    """VE levels ``sqrt((1 - abar) / abar)`` of a VP schedule: ``[T]`` float64, increasing."""
    a = alphas_cumprod.to(torch.float64)
    return ((1 - a) / a).sqrt()


def check_below_range(sigma_min_req: float, sigma_min: float, policy: str, what: str) -> bool:
    """Apply the below-range policy; returns True when extrapolating."""
    if policy not in BELOW_RANGE:
        raise ValueError(f"below_range must be one of {BELOW_RANGE}, got {policy!r}")
    if sigma_min_req >= sigma_min * (1 - 1e-6):
        return False
    if policy == "error":
        raise ValueError(
            f"sigma={sigma_min_req:.4g} is below the smallest noise level {what} was trained on "
            f"(sigma={sigma_min:.4g} on the VE scale); use a larger sigma or below_range='extrapolate'"
        )
    warnings.warn(
        f"sigma={sigma_min_req:.4g} is below {what}'s smallest trained level {sigma_min:.4g}: "
        "extrapolating the timestep (the network never saw this level)",
        stacklevel=3,
    )
    return True


def log_interp_timestep(sigma: Tensor, sigmas: Tensor, snap: bool = False) -> Tensor:
    """Fractional timestep of each VE ``sigma`` ``[B]`` on the increasing table ``sigmas`` ``[T]``.

    Inside the table: linear in ``log sigma`` between neighbours; below it: the line through the
    first two levels (caller decides whether that is allowed); above the largest level: error.
    """
    ls = sigma.to(torch.float64).log()
    table = sigmas.to(device=ls.device, dtype=torch.float64).log()
    if (ls > table[-1] + TOP_TOLERANCE).any():
        raise ValueError(
            f"sigma={float(ls.max().exp()):.4g} is above the largest trained level {math.exp(table[-1]):.4g}"
        )
    ls = ls.clamp(max=float(table[-1]))  # the top level, rounded up in float32, is the top level
    lo = torch.searchsorted(table, ls, right=True).sub(1).clamp(0, table.numel() - 2)
    w = (ls - table[lo]) / (table[lo + 1] - table[lo])
    t = lo.to(torch.float64) + w
    if snap:
        t = t.round().clamp(0, table.numel() - 1)
    return t


def timestep_sigma(t: Tensor, sigmas: Tensor) -> Tensor:
    """Inverse of :func:`log_interp_timestep`: VE level of fractional timesteps ``t``."""
    t = t.to(torch.float64)
    table = sigmas.to(device=t.device, dtype=torch.float64).log()
    lo = t.floor().long().clamp(0, table.numel() - 2)
    w = t - lo.to(torch.float64)
    return (table[lo] + w * (table[lo + 1] - table[lo])).exp()
