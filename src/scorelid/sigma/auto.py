"""``sigma="auto"``: the LID read at a noise level chosen per point from its LID curve.

``estimate`` is the public entry point (``scorelid.estimate``): a number or ``[N]`` tensor of
noise levels goes straight to ``scorelid.estimators.estimate``; ``"auto"`` computes the curve on a
grid (``scorelid.sigma.grid``) and picks a level per point by a rule (``scorelid.sigma.select``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from scorelid.denoiser import Denoiser, SigmaLike
from scorelid.estimators import api
from scorelid.sigma.curve import lid_curve
from scorelid.sigma.grid import parse_sigmas
from scorelid.sigma.plateaus import Plateau
from scorelid.sigma.range import auto_grid, error_floor
from scorelid.sigma.select import DEFAULT_RULE, select_with_plateaus

__all__ = ["AUTO_NOISE", "AutoResult", "estimate", "estimate_auto"]

#: DSM/ISM noise draws per point and level of ``sigma="auto"``'s curve when ``n_noise`` is not given
#: (fixed levels default to 8).  Choosing a piece per point compares readings a few dimensions apart,
#: and a reading's Monte Carlo spread is ``sqrt(2 d / K)``: on the closed-form mixture with pieces
#: of dimension 1, 5, 12 and 3 at scales 100x apart (benchmarks/sigma_plateaus.py) K = 8 assigned
#: 0.892 of the points to their piece, K = 32 0.992 (four cases: 0.927-0.988 vs 0.992-1.000).  The
#: curve costs ``levels x K`` forward passes per point (about 30 x 32 on the default grid).
AUTO_NOISE = 32


def estimate(
    D: Denoiser,
    x: Tensor | np.ndarray,
    method: str,
    sigma: SigmaLike | str,
    n_noise: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    *,
    indices: Tensor | None = None,
    progress: bool = False,
    stats: dict | None = None,
    **options,
) -> Tensor:
    """Per-point LID of ``x`` under ``D``: ``[N]`` float64 on the CPU.

    As ``scorelid.estimators.estimate`` (see there for every argument), and ``sigma`` may also be
    ``"auto"``: per point, the level where its LID curve is flat (``estimate_auto``, which also
    returns the chosen sigma, flatness and curve; options ``sigmas``, ``rule``, ``rtol``,
    ``atol`` go there).
    """
    if isinstance(sigma, str):
        if sigma != "auto":
            raise ValueError(f"sigma must be a positive number, a [N] tensor or 'auto', got {sigma!r}")
        return estimate_auto(D, x, method, n_noise=n_noise, seed=seed, batch_size=batch_size,
                             indices=indices, progress=progress, **options).lid
    return api.estimate(D, x, method, sigma, n_noise, seed, batch_size, indices=indices, progress=progress,
                        stats=stats, **options)


@dataclass(frozen=True)
class AutoResult:
    """Result of ``estimate_auto`` (all float64 CPU tensors).

    Attributes:
        lid: ``[N]`` per-point LID at the chosen level (equal to ``estimate`` at ``sigma`` with the
            same ``n_noise``).
        sigma: ``[N]`` chosen noise level per point (data units).
        flatness: ``[N]`` ``|dLID/dlog sigma|`` at the chosen level (LID units per e-fold).
        curve: ``[S, N]`` the LID curve the choice was made on.
        sigmas: ``[S]`` the grid.
        index: ``[N]`` int64 index of the chosen level in ``sigmas``.
        rule: the rule used.
        plateaus: per point, every plateau of its curve (``scorelid.sigma.plateaus.Plateau``:
            scale, LID, width), smallest scale first: the LID of the point at each scale it has.
        floor: the model's error floor used (``None``: no floor known, e.g. a closed form).
    """

    lid: Tensor
    sigma: Tensor
    flatness: Tensor
    curve: Tensor
    sigmas: Tensor
    index: Tensor
    rule: str
    plateaus: list[list[Plateau]] = field(default_factory=list)
    floor: float | None = None


def estimate_auto(
    D: Denoiser,
    x: Tensor | np.ndarray,
    method: str = "dsm",
    sigmas: Sequence[float] | Tensor | str | None = None,
    rule: str = DEFAULT_RULE,
    per_point: bool = True,
    n_noise: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    *,
    indices: Tensor | None = None,
    progress: bool = False,
    rtol: float = 0.05,
    atol: float = 0.05,
    **options,
) -> AutoResult:
    """LID with the noise level chosen from each point's LID curve.

    Args:
        D, x, method, seed, batch_size, indices, progress, **options: as in
            ``scorelid.estimate``.
        n_noise: as in ``scorelid.estimate``; ``None``: ``AUTO_NOISE`` (32) draws for DSM and ISM
            (their fixed-level default is 8: too few to tell pieces a few dimensions apart), the
            method's own default otherwise.
        sigmas: the grid (``"a:b:k"`` or a list; at least 3 levels), or ``None``: a grid that
            follows the data and the model (``scorelid.sigma.range.auto_grid``: from the model's
            smallest trained level, or the data's smallest scale, to the data's spread).
        rule: one of ``RULES``; ``"agreement"`` also computes the error-bundle curve (with the
            same ``n_noise``; it can count at most ``n_noise`` directions, so use ``n_noise >= d``).
        per_point: ``False`` uses one level for the whole set (the ``dataset`` rule).
        rtol, atol: flatness tolerance of ``first_plateau``.

    Returns:
        ``AutoResult`` (per-point ``lid``, ``sigma``, ``flatness``; the ``curve`` and grid).
    """
    s = auto_grid(D, x)[0] if sigmas is None else parse_sigmas(sigmas)
    if n_noise is None and method in ("dsm", "ism"):
        n_noise = AUTO_NOISE
    floor = error_floor(D)
    if not per_point:
        rule = "dataset"
    curve = lid_curve(D, x, s, method, n_noise, seed, batch_size, indices=indices, progress=progress,
                      **options)
    eb = None
    if rule == "agreement":
        eb = lid_curve(D, x, s, "error_bundle", n_noise, seed, batch_size, indices=indices,
                       progress=progress)
    idx, flat, found = select_with_plateaus(curve, s, rule, int(np.prod(tuple(x.shape[1:]))), floor=floor,
                                            eb_curve=eb, rtol=rtol, atol=atol)
    lid = curve.gather(0, idx.unsqueeze(0)).squeeze(0)
    return AutoResult(lid=lid, sigma=s[idx], flatness=flat, curve=curve, sigmas=s, index=idx, rule=rule,
                      plateaus=found, floor=floor)
