"""Choosing the noise level: read the LID off the flat part of the LID-vs-sigma curve.

A point's LID curve (``scorelid.sigma.curve.lid_curve``) has three regimes on a log-sigma grid:

* small sigma, *noise-dominated*: an imperfect denoiser's error ``delta`` adds about
  ``delta^2 / sigma^2`` to DSM, so the curve falls steeply as sigma grows;
* the *plateau*: the estimate sits near the true LID ``d`` and hardly changes with sigma;
* large sigma, *curvature/scale-dominated*: the noise outgrows the manifold's local extent and
  the curve drops (towards 0 once sigma exceeds the data's own scale) or otherwise drifts.

Every rule works on the slope ``g = dLID / dlog sigma`` (central differences of the curve on the
log grid after a light ``[1, 2, 1] / 4`` smoothing along sigma, end levels kept) and returns, per
point, the index of the chosen level; the LID reported is the *unsmoothed* curve there, so it equals
``estimate(D, x, method, sigma=chosen)`` exactly.  The *flatness* reported beside each estimate is
``|g|`` at the chosen level, in LID units per e-fold of sigma (0 = perfectly flat; a value
comparable to the LID itself means no plateau was found and the estimate is unreliable).

Rules (``RULES``):

``plateau``
    per point, every flat stretch of the curve (``scorelid.sigma.plateaus``): relative slope
    ``|dlog LID / dlog sigma| <= 0.15``, LID >= 0.5, at or above the model's error floor; the
    smallest-scale one at least 0.3 decades wide is chosen (LID is a small-sigma limit), else the
    widest, else ``min_log_slope``.  With the data-following grid of ``scorelid.sigma.range`` it
    finds the plateau of a piece 100x thinner than the rest of the data.

``min_log_slope`` (default)
    the interior level of smallest *relative* slope ``|g| / LID = |dlog LID / dlog sigma|``
    (``|LID|`` floored at ``1e-12``, a guard against 0 only).  Why: if the curve is
    ``d + a/sigma^2 - b sigma^2`` (model error plus curvature), ``|g|`` is smallest exactly where
    the two biases cancel (``|g| / LID`` is smallest nearby, where LID ~ d); and at scales
    coarser than a component the LID decays like a power of sigma (``~ d l^2 / sigma^4`` for a
    Gaussian of variance ``l``), steep in log-log terms however flat it looks in linear terms, so
    the coarse "0-dimensional plateau" that ``min_slope`` falls into is never chosen.
``first_plateau``
    the smallest sigma whose ``|g| <= rtol * LID + atol`` (defaults 0.05 and 0.05): the first
    level past the noise regime; falls back to ``min_slope`` when no level is that flat.  LID is a
    small-sigma limit, so among flat stretches the one at the smallest scale is the LID; later
    plateaus (e.g. 0 for a component far smaller than sigma) describe coarser scales.  Reads the
    curve too early when the model's error decays slowly (``|g|`` just under the tolerance).
``min_slope``
    the level of smallest ``|g|`` (argmin over the interior of the grid).
``knee``
    Kneedle-style: normalise ``log sigma`` and ``log LID`` to ``[0, 1]`` between the first level
    and the level of smallest LID, take the level farthest below the chord joining them (the
    corner of a decreasing convex curve).
``agreement``
    the interior level minimising ``|DSM - EB| + |g|``: DSM agrees with the error bundle ``EB``
    (eigenvalue count of the same errors) *and* the curve is flat; needs the error-bundle curve
    (``eb_curve``).  Agreement alone is not enough: a model error of size ``delta`` adds
    ``delta^2/sigma^2`` to DSM but a whole direction to the count while ``sigma < 10 delta`` (its
    eigenvalue exceeds the count's ``eps = 1e-2``), so both read ``d + 1`` at ``sigma = delta``,
    where the curve is steep (``g = -2``).  Even so the rule picks, per point, the level whose
    noisy DSM value is nearest an integer, which selects on Monte Carlo noise: on a curve that
    drifts across its plateau it is biased (see ``tests/test_sigma_select.py``).
``dataset``
    one level for every point: ``min_log_slope`` applied to the mean curve.

``scorelid.sigma.auto.estimate_auto`` computes the curve and applies a rule.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from scorelid.sigma.grid import validate_sigmas
from scorelid.sigma.plateaus import Plateau, choose, find_plateaus
from scorelid.sigma.slope import interior, min_log_slope, saturated, slope

__all__ = ["DEFAULT_RULE", "RULES", "select", "select_with_plateaus", "slope"]

RULES = ("plateau", "min_log_slope", "first_plateau", "min_slope", "knee", "agreement", "dataset")
DEFAULT_RULE = "min_log_slope"


def _min_slope(g: Tensor) -> Tensor:
    S = g.shape[0]
    inner = interior(S)
    return g[inner].abs().argmin(0) + (inner.start or 0)


def _first_plateau(curve: Tensor, g: Tensor, rtol: float, atol: float) -> Tensor:
    S = curve.shape[0]
    inner = interior(S)
    lo = inner.start or 0
    ok = g[inner].abs() <= rtol * curve[inner].abs() + atol  # [S', N]
    first = ok.double().argmax(0) + lo  # first True (argmax of a 0/1 column)
    return torch.where(ok.any(0), first, _min_slope(g))


def _knee(curve: Tensor, sigmas: Tensor) -> Tensor:
    """Farthest point below the chord of the normalised log curve, from the first level to the minimum."""
    N = curve.shape[1]
    t = torch.log(sigmas)
    tn = (t - t[0]) / (t[-1] - t[0])
    out = torch.empty(N, dtype=torch.long)
    c = curve.numpy()
    for i in range(N):
        end = int(np.argmin(c[:, i]))
        if end < 2:
            out[i] = end
            continue
        y = np.log(np.maximum(c[: end + 1, i], 1e-3))  # log LID: the 1/sigma^2 rise spans decades
        span = y[0] - y[-1]
        yn = (y - y[-1]) / span if span > 0 else np.zeros_like(y)
        x = tn[: end + 1].numpy() / max(float(tn[end]), 1e-12)
        chord = 1.0 - x  # line from (0, 1) to (1, 0)
        out[i] = int(np.argmax(chord - yn))
    return out


def select(
    curve: Tensor,
    sigmas: Tensor,
    rule: str = DEFAULT_RULE,
    *,
    eb_curve: Tensor | None = None,
    rtol: float = 0.05,
    atol: float = 0.05,
    floor: float | None = None,
    plateaus: list[list[Plateau]] | None = None,
    skip: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Chosen level per point: ``(index [N] int64, flatness [N] float64)``.

    Args:
        curve: ``[S, N]`` LID curve on the increasing grid ``sigmas`` ``[S]``.
        rule: one of ``RULES`` (see the module docstring).
        eb_curve: ``[S, N]`` error-bundle curve on the same grid (``rule="agreement"`` only).
        rtol, atol: flatness tolerance of ``first_plateau``: ``|g| <= rtol*LID + atol``.
        floor: the model's error floor (``plateau`` only): no plateau below it counts.
        plateaus: ``find_plateaus(curve, sigmas, floor=floor)`` when the caller already has it
            (``plateau`` only; found here otherwise).
        skip: ``[S]`` bool, levels not chosen while there is another (``min_log_slope``,
            ``plateau``, ``dataset``): the saturated ones, ``slope.saturated(curve, n)``.
    """
    if rule not in RULES:
        raise ValueError(f"unknown sigma rule {rule!r}; choose one of {RULES}")
    curve = curve.to(torch.float64).cpu()
    sigmas = validate_sigmas(sigmas)
    if curve.ndim != 2 or curve.shape[0] != sigmas.numel():
        raise ValueError(f"curve must be [S={sigmas.numel()}, N], got {tuple(curve.shape)}")
    if sigmas.numel() < 3:
        raise ValueError(f"choosing sigma needs at least 3 levels, got {sigmas.numel()}")
    g = slope(curve, sigmas)
    if rule == "plateau":
        if plateaus is None:
            plateaus = find_plateaus(curve, sigmas, floor=floor, skip=skip)
        idx = choose(curve, sigmas, plateaus, skip=skip)
    elif rule == "min_log_slope":
        idx = min_log_slope(curve, sigmas, g, skip=skip)
    elif rule == "first_plateau":
        idx = _first_plateau(curve, g, rtol, atol)
    elif rule == "min_slope":
        idx = _min_slope(g)
    elif rule == "knee":
        idx = _knee(curve, sigmas)
    elif rule == "agreement":
        if eb_curve is None or eb_curve.shape != curve.shape:
            raise ValueError("rule 'agreement' needs eb_curve of the curve's shape [S, N]")
        # agreement alone is fooled where the DSM curve crosses an integer the error bundle
        # counts (a model error of size delta adds delta^2/sigma^2 to DSM but a whole extra
        # direction to the count while sigma < 10 delta: both read d + 1 at sigma = delta, where
        # the curve is steep, g = -2); adding |g| (same units: LID per e-fold) demands flatness too
        score = (curve - eb_curve.to(torch.float64).cpu()).abs() + g.abs()
        idx = score[interior(curve.shape[0])].argmin(0) + 1
    else:  # dataset
        mean = curve.mean(1, keepdim=True)
        j = min_log_slope(mean, sigmas, skip=skip)
        idx = j.expand(curve.shape[1]).clone()
    flat = g.abs().gather(0, idx.unsqueeze(0)).squeeze(0)
    return idx.long(), flat


def select_with_plateaus(
    curve: Tensor,
    sigmas: Tensor,
    rule: str,
    n: int,
    *,
    floor: float | None = None,
    eb_curve: Tensor | None = None,
    rtol: float = 0.05,
    atol: float = 0.05,
) -> tuple[Tensor, Tensor, list[list[Plateau]]]:
    """``(index [N], flatness [N], plateaus)``: every point's plateaus (above the error ``floor``, off
    the levels saturated at the ambient dimension ``n``) and the level ``rule`` picks from the same
    curve (``select`` with those plateaus and saturated levels)."""
    skip = saturated(curve, n)
    found = find_plateaus(curve, sigmas, floor=floor, skip=skip)
    idx, flat = select(curve, sigmas, rule, eb_curve=eb_curve, rtol=rtol, atol=atol, floor=floor,
                       plateaus=found, skip=skip)
    return idx, flat, found
