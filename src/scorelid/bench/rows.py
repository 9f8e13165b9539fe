"""Result rows of the manifold benchmark: what a row computes and the registry of row builders.

Rows are built by ``ROW_BUILDERS``: ``{name: builder(profile, n) -> [RowSpec, ...]}`` (``n``: the
ambient dimension); a profile lists the builders it runs in ``profile.methods``.  Add a row type
with ``register_rows``.  A row's function returns the per-point LIDs ``[N]``, or a ``RowOutput``
that adds record fields (e.g. the chosen sigma of an adaptive row) and per-point arrays (saved to
the unit's extras under ``"<row key>::<name>"``, e.g. ``"dsm@auto::curve"``; see
``scorelid.bench.store``).

Built-in builders: ``dsm``, ``flipd``, ``error_bundle``, ``normal_bundle`` (fixed sigmas) and
``dsm_auto``, ``flipd_auto`` (issue 7: the noise level chosen per point from the LID curve on
``profile.auto_sigmas`` by ``scorelid.sigma.select.estimate_auto`` with ``profile.auto_rule``;
rows ``dsm@auto`` / ``flipd@auto`` with ``sigma = None`` and the grid's fixed-level MAEs, the
oracle level and the chosen levels' quantiles in the record).  ``baseline_rows``: the k-NN
baselines of the profile (no model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from scorelid.bench.profiles import Profile

__all__ = ["ROW_BUILDERS", "RowOutput", "RowSpec", "UnitData", "baseline_rows", "model_rows", "register_rows"]


@dataclass
class UnitData:
    """What a row's function sees: evaluation points ``x [N, n]`` (on ``device``), training points
    ``x_train [M, n]`` (CPU), true LIDs ``d_true [N]``, the denoiser (``None`` for baselines);
    ``progress``: show the estimators' progress bars (off in the bench's worker processes)."""

    x: Tensor
    x_train: Tensor
    d_true: Tensor
    denoiser: Any
    device: torch.device
    seed: int
    profile: Profile
    progress: bool = True


@dataclass(frozen=True)
class RowSpec:
    """One result row: ``fn(unit) -> [N]`` per-point LIDs (``[n_points]`` when set: the first
    ``n_points`` evaluation points).  ``options``: a short text shown in the results (e.g.
    ``"K=8"``, ``"trace=exact"``, ``"k=50"``)."""

    method: str
    sigma: float | None
    fn: Callable[[UnitData], Tensor]
    options: str = ""
    key: str = field(default="")
    n_points: int | None = None  # rows evaluate only the first n_points evaluation points

    def row_key(self) -> str:
        return self.key or (self.method if self.sigma is None else f"{self.method}@{self.sigma!r}")


@dataclass
class RowOutput:
    """A row's result with extras: ``lid [N]``; ``fields``: JSON-able values added to the record;
    ``arrays``: per-row arrays (any shape) saved to ``units/<unit>.extra.npz``."""

    lid: Tensor
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def _est(method: str, sigma: float, points: int | None = None, **kw: Any) -> Callable[[UnitData], Tensor]:
    from scorelid.estimators import estimate

    def fn(u: UnitData) -> Tensor:
        x = u.x if points is None else u.x[:points]
        return estimate(u.denoiser, x, method, sigma, seed=u.seed, batch_size=u.profile.batch_size,
                        progress=u.progress, **kw)

    return fn


def _dsm_rows(p: Profile, n: int) -> list[RowSpec]:
    return [RowSpec("dsm", s, _est("dsm", s, n_noise=p.dsm_noise), f"K={p.dsm_noise}") for s in p.sigmas]


def _flipd_rows(p: Profile, n: int) -> list[RowSpec]:
    if n <= p.flipd_exact_max_n:
        return [RowSpec("flipd", s, _est("flipd", s, trace="exact"), "trace=exact") for s in p.sigmas]
    return [RowSpec("flipd", s, _est("flipd", s, trace="hutchinson", n_probes=p.flipd_probes),
                    f"trace=hutchinson,probes={p.flipd_probes}") for s in p.sigmas]


def _auto(method: str, p: Profile, **kw: Any) -> Callable[[UnitData], RowOutput]:
    def fn(u: UnitData) -> RowOutput:
        from scorelid.sigma import estimate_auto

        res = estimate_auto(u.denoiser, u.x, method, list(p.auto_sigmas), rule=p.auto_rule, seed=u.seed,
                            batch_size=u.profile.batch_size, progress=u.progress, **kw)
        d = u.d_true.double().reshape(1, -1)
        grid_mae = (res.curve - d).abs().mean(1)  # [S]: MAE of each fixed level of the grid (same noise)
        best = int(grid_mae.argmin())
        sig = res.sigma
        fields = {"rule": res.rule, "grid": res.sigmas.tolist(), "grid_mae": grid_mae.tolist(),
                  "grid_mean_lid": res.curve.mean(1).tolist(), "oracle_sigma": float(res.sigmas[best]),
                  "oracle_mae": float(grid_mae[best]), "sigma_median": float(sig.median()),
                  "sigma_q10": float(sig.quantile(0.1)), "sigma_q90": float(sig.quantile(0.9)),
                  "flatness_median": float(res.flatness.median())}
        arrays = {"curve": res.curve.float().numpy(), "sigma": sig.numpy(), "flatness": res.flatness.numpy(),
                  "grid": res.sigmas.numpy()}
        return RowOutput(res.lid, fields, arrays)

    return fn


def _grid_text(p: Profile) -> str:
    g = p.auto_sigmas
    return f"grid={g[0]:g}..{g[-1]:g}x{len(g)},rule={p.auto_rule}"


def _dsm_auto_rows(p: Profile, n: int) -> list[RowSpec]:
    k = p.auto_noise or p.dsm_noise
    return [RowSpec("dsm@auto", None, _auto("dsm", p, n_noise=k), f"K={k},{_grid_text(p)}")]


def _flipd_auto_rows(p: Profile, n: int) -> list[RowSpec]:
    # Hutchinson's trace at every size: the exact trace at every level of the grid costs S * n JVPs
    kw = {"trace": "hutchinson", "n_probes": p.flipd_probes}
    return [RowSpec("flipd@auto", None, _auto("flipd", p, **kw),
                    f"trace=hutchinson,probes={p.flipd_probes},{_grid_text(p)}")]


def _bundle_rows(method: str, p: Profile, n: int) -> list[RowSpec]:
    from scorelid.estimators import METHODS

    m = p.bundle_points
    k = METHODS[method].default_noise(n)
    return [RowSpec(method, s, _est(method, s, m, n_noise=k), f"K={k}" + (f",first {m} points" if m else ""),
                    n_points=m) for s in p.bundle_sigmas]


def _error_bundle_rows(p: Profile, n: int) -> list[RowSpec]:
    return _bundle_rows("error_bundle", p, n)


def _normal_bundle_rows(p: Profile, n: int) -> list[RowSpec]:
    return _bundle_rows("normal_bundle", p, n)


#: builder name -> ``builder(profile, n) -> [RowSpec]`` (model rows; baselines are separate)
ROW_BUILDERS: dict[str, Callable[[Profile, int], list[RowSpec]]] = {
    "dsm": _dsm_rows,
    "flipd": _flipd_rows,
    "error_bundle": _error_bundle_rows,
    "normal_bundle": _normal_bundle_rows,
    "dsm_auto": _dsm_auto_rows,
    "flipd_auto": _flipd_auto_rows,
}


def register_rows(name: str, builder: Callable[[Profile, int], list[RowSpec]]) -> None:
    """Add (or replace) a row builder; profiles run it when ``name`` is in ``profile.methods``."""
    ROW_BUILDERS[name] = builder


def baseline_rows(p: Profile) -> list[RowSpec]:
    """One row per k-NN baseline of ``p`` (``p.baseline_k`` neighbours among the training points)."""
    from scorelid.estimators.baselines import baseline_lid

    def make(m: str) -> Callable[[UnitData], Tensor]:
        return lambda u: baseline_lid(u.x.cpu(), m, p.baseline_k, reference=u.x_train, seed=u.seed,
                                      progress=u.progress)

    return [RowSpec(m, None, make(m), f"k={p.baseline_k}") for m in p.baselines]


def model_rows(p: Profile, n: int) -> list[RowSpec]:
    """The rows of every builder in ``p.methods`` for a model of ambient dimension ``n``."""
    return [r for b in p.methods for r in ROW_BUILDERS[b](p, n)]
