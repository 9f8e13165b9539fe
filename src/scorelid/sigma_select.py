"""Choosing the noise level: read the LID off the flat part of the LID-vs-sigma curve.

A point's LID curve (``scorelid.curves.lid_curve``) has three regimes on a log-sigma grid:

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

``estimate_auto`` computes the curve and applies a rule; ``auto_rows`` and ``plot_lid_curves`` are
hooks for the benchmark runner and report.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from scorelid.curves import lid_curve, log_grid, validate_sigmas
from scorelid.denoiser import Denoiser

__all__ = ["DEFAULT_GRID", "DEFAULT_RULE", "RULES", "AutoResult", "auto_rows", "estimate_auto",
           "parse_sigmas", "plot_lid_curves", "select", "slope"]

#: Default grid (data units): 12 levels, about 1.45x apart, from 0.005 to 0.3 (the range the
#: quick-recipe models are trained on), including the usual fixed choices 0.01, 0.02 and 0.05.
DEFAULT_GRID = (0.005, 0.007, 0.01, 0.014, 0.02, 0.03, 0.05, 0.07, 0.1, 0.14, 0.2, 0.3)
RULES = ("min_log_slope", "first_plateau", "min_slope", "knee", "agreement", "dataset")
DEFAULT_RULE = "min_log_slope"
#: LID floor of the relative slope ``|g| / max(|LID|, floor)`` (``min_log_slope``): a guard against 0.
LOG_SLOPE_FLOOR = 1e-12


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


@dataclass(frozen=True)
class AutoResult:
    """Result of ``estimate_auto`` (all float64 CPU tensors).

    Attributes:
        lid: ``[N]`` per-point LID at the chosen level (equal to ``estimate`` at ``sigma``).
        sigma: ``[N]`` chosen noise level per point (data units).
        flatness: ``[N]`` ``|dLID/dlog sigma|`` at the chosen level (LID units per e-fold).
        curve: ``[S, N]`` the LID curve the choice was made on.
        sigmas: ``[S]`` the grid.
        index: ``[N]`` int64 index of the chosen level in ``sigmas``.
        rule: the rule used.
    """

    lid: Tensor
    sigma: Tensor
    flatness: Tensor
    curve: Tensor
    sigmas: Tensor
    index: Tensor
    rule: str


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


def _interior(S: int) -> slice:
    return slice(1, S - 1) if S >= 3 else slice(0, S)


def _min_slope(g: Tensor) -> Tensor:
    S = g.shape[0]
    inner = _interior(S)
    return g[inner].abs().argmin(0) + (inner.start or 0)


def _min_log_slope(curve: Tensor, g: Tensor) -> Tensor:
    inner = _interior(curve.shape[0])
    rel = g[inner].abs() / curve[inner].abs().clamp_min(LOG_SLOPE_FLOOR)
    return rel.argmin(0) + (inner.start or 0)


def _first_plateau(curve: Tensor, g: Tensor, rtol: float, atol: float) -> Tensor:
    S = curve.shape[0]
    inner = _interior(S)
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
) -> tuple[Tensor, Tensor]:
    """Chosen level per point: ``(index [N] int64, flatness [N] float64)``.

    Args:
        curve: ``[S, N]`` LID curve on the increasing grid ``sigmas`` ``[S]``.
        rule: one of ``RULES`` (see the module docstring).
        eb_curve: ``[S, N]`` error-bundle curve on the same grid (``rule="agreement"`` only).
        rtol, atol: flatness tolerance of ``first_plateau``: ``|g| <= rtol*LID + atol``.
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
    if rule == "min_log_slope":
        idx = _min_log_slope(curve, g)
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
        idx = score[_interior(curve.shape[0])].argmin(0) + 1
    else:  # dataset
        mean = curve.mean(1, keepdim=True)
        j = _min_log_slope(mean, slope(mean, sigmas))
        idx = j.expand(curve.shape[1]).clone()
    flat = g.abs().gather(0, idx.unsqueeze(0)).squeeze(0)
    return idx.long(), flat


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
        D, x, method, n_noise, seed, batch_size, indices, progress, **options: as in
            ``scorelid.estimate``.
        sigmas: the grid (``"a:b:k"``, a list, or ``None`` for ``DEFAULT_GRID``); at least 3.
        rule: one of ``RULES``; ``"agreement"`` also computes the error-bundle curve (with the
            same ``n_noise``; it can count at most ``n_noise`` directions, so use ``n_noise >= d``).
        per_point: ``False`` uses one level for the whole set (the ``dataset`` rule).
        rtol, atol: flatness tolerance of ``first_plateau``.

    Returns:
        ``AutoResult`` (per-point ``lid``, ``sigma``, ``flatness``; the ``curve`` and grid).
    """
    s = torch.tensor(DEFAULT_GRID, dtype=torch.float64) if sigmas is None else parse_sigmas(sigmas)
    if not per_point:
        rule = "dataset"
    curve = lid_curve(D, x, s, method, n_noise, seed, batch_size, indices=indices, progress=progress,
                      **options)
    eb = None
    if rule == "agreement":
        eb = lid_curve(D, x, s, "error_bundle", n_noise, seed, batch_size, indices=indices,
                       progress=progress)
    idx, flat = select(curve, s, rule, eb_curve=eb, rtol=rtol, atol=atol)
    lid = curve.gather(0, idx.unsqueeze(0)).squeeze(0)
    return AutoResult(lid=lid, sigma=s[idx], flatness=flat, curve=curve, sigmas=s, index=idx, rule=rule)


def auto_rows(
    D: Denoiser,
    x_eval: Tensor,
    d_true: Tensor,
    methods: Sequence[str] = ("dsm", "flipd"),
    rules: Sequence[str] = (DEFAULT_RULE,),
    sigmas: Sequence[float] | Tensor | str | None = None,
    seed: int = 0,
    **options,
) -> list[dict]:
    """Benchmark rows for the adaptive estimators (one curve per method, every rule on it).

    Returns one dict per (method, rule): ``method`` (``"dsm@auto"``, or ``"dsm@auto:<rule>"`` for
    a non-default rule), ``mae``, ``mean_lid``, ``d_true_mean``, ``sigma_median``, ``sigma_q10``,
    ``sigma_q90``, ``flatness_median``, and ``lid`` (the ``[N]`` tensor, for per-point files).
    """
    s = torch.tensor(DEFAULT_GRID, dtype=torch.float64) if sigmas is None else parse_sigmas(sigmas)
    d = torch.as_tensor(d_true, dtype=torch.float64).reshape(-1)
    rows = []
    for m in methods:
        kw = dict(options) if m != "dsm" else {}
        curve = lid_curve(D, x_eval, s, m, seed=seed, **kw)
        for r in rules:
            if r == "agreement":
                continue  # needs the error-bundle curve with n_noise >= d: see estimate_auto
            idx, flat = select(curve, s, r)
            lid = curve.gather(0, idx.unsqueeze(0)).squeeze(0)
            sig = s[idx]
            name = f"{m}@auto" if r == DEFAULT_RULE else f"{m}@auto:{r}"
            rows.append({"method": name, "mae": float((lid - d).abs().mean()), "mean_lid": float(lid.mean()),
                         "d_true_mean": float(d.mean()), "sigma_median": float(sig.median()),
                         "sigma_q10": float(sig.quantile(0.1)), "sigma_q90": float(sig.quantile(0.9)),
                         "flatness_median": float(flat.median()), "lid": lid})
    return rows


def plot_lid_curves(curves_by_manifold: dict[str, dict], out_png: str) -> None:
    """One panel per data set: mean and median LID curve over points, 10-90% and 25-75% bands,
    the true d if known, and the chosen sigma (median, and its 10-90% range over points).

    ``curves_by_manifold[name]`` holds ``sigmas`` ``[S]``, ``curve`` ``[S, N]``, optionally
    ``d_true`` (number), ``sigma`` (chosen levels ``[N]`` or a number) and ``label``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scorelid.io import atomic_path

    names = list(curves_by_manifold)
    if not names:
        raise ValueError("no curves to plot")
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        item = curves_by_manifold[name]
        s = np.asarray(item["sigmas"], dtype=float)
        c = np.asarray(item["curve"], dtype=float)
        ax.plot(s, c.mean(1), "o-", ms=3, color="C0", label=item.get("label", "mean LID"))
        ax.plot(s, np.median(c, axis=1), "-", lw=1, color="C1", label="median")
        ax.fill_between(s, np.quantile(c, 0.1, axis=1), np.quantile(c, 0.9, axis=1), alpha=0.18,
                        color="C0", label="10-90%")
        ax.fill_between(s, np.quantile(c, 0.25, axis=1), np.quantile(c, 0.75, axis=1), alpha=0.3,
                        color="C0", label="25-75%")
        if item.get("d_true") is not None:
            ax.axhline(float(item["d_true"]), color="k", ls="--", lw=1, label="true d")
        if item.get("sigma") is not None:
            chosen = np.asarray(item["sigma"], dtype=float).reshape(-1)
            ax.axvline(float(np.median(chosen)), color="C3", lw=1.2, label="chosen sigma (median)")
            if chosen.size > 1 and np.ptp(chosen) > 0:
                ax.axvspan(float(np.quantile(chosen, 0.1)), float(np.quantile(chosen, 0.9)), color="C3",
                           alpha=0.08, label="chosen sigma 10-90%")
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel("sigma")
        ax.set_ylabel("LID")
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
