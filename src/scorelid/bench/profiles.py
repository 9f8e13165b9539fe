"""Benchmark profiles: which manifolds, models, estimators and baselines a ``scorelid bench`` runs.

``quick``: CPU, MLP only with ``QUICK_RECIPE`` (about a minute of training per manifold), DSM
with ``K = 64`` noise draws per point (with ``K = 8`` the Monte Carlo spread alone gives an MAE of
about ``0.8 sqrt(2d/K)``, 1.6 at d = 16; ``K = 64`` costs ~1 s per 1,000 points and sigma), the
baselines at ``k = 50`` (the authors' README value, and the ``k`` of their CPU figures in
``paper-protocol.md``; ESS at ``k = 100`` costs ~50 s per 1,000 points here, ``k = 50`` ~15 s),
FLIPD with the exact trace up to ``n = 128`` and Hutchinson's (8 Rademacher probes) for
hypertwinpeaks (``n = 256``, where the exact trace took ~18 s per 1,000 points and sigma here
against ~0.6 s), the adaptive rows ``dsm@auto`` (curve with the same ``K = 64`` as the fixed
rows, so that they compare: 12 levels x 64 draws = 768 forward passes per point, ~13 s per
1,000 points at n = 64) and ``flipd@auto`` (Hutchinson, 8 probes, ~2.5 s), the error and
normal bundles at sigma = 0.05 only and on the first 250 of the 1,000 evaluation points
(``K = n`` forward passes per point), one torch thread.

``cpu-dit``: CPU, a small DiT (``CPU_DIT_RECIPE``: hidden 64, 4 heads, 4 layers, patches of 4;
3,000 steps on one thread, ~6-24 min per manifold by its token count) instead of the quick MLP,
which it beats by far on the nonlinear manifold (``benchmarks/nonlinear_study.py``).  DSM and
``dsm@auto`` with ``K = 64``, FLIPD with Hutchinson's trace (8 probes; the exact trace costs ``n``
JVPs through attention), the bundles as in ``quick``, no baselines (they do not depend on the
model: ``quick`` has them), estimation on the torch threads the machine gives.

``paper``: for a GPU, MLP and DiT with ``PAPER_RECIPE``, baselines at ``k = 100``, ``K = 64`` for
DSM and its adaptive curve, the bundles at every sigma.

Sigma is on the VE scale in the normalised data's units (see ``scorelid.data``); the paper's
columns are flow times ``t``, which equal ``sigma / (1 + sigma)``, within 5% at these levels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from scorelid.sigma import DEFAULT_GRID, DEFAULT_RULE

__all__ = ["PROFILES", "Profile", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """Settings of one benchmark run (everything that changes its numbers, except seed and device).

    Attributes:
        name: profile name.
        manifolds: manifold names (``scorelid.data.MANIFOLDS``).
        dims: optional ``{name: (d, n)}`` overrides of the manifolds' dimensions.
        n_train, n_eval: training points and held-out evaluation points per manifold.
        archs: architectures to train (``"mlp"``, ``"dit"``).
        recipes: ``{arch: train_denoiser keyword arguments}``.
        sigmas: estimation noise levels for DSM and FLIPD (VE scale).
        methods: row builders to run per model (``scorelid.bench.rows.ROW_BUILDERS``).
        bundle_sigmas: noise levels of the error and normal bundles.
        dsm_noise: noise draws per point for DSM.
        flipd_exact_max_n: exact Jacobian trace up to this ambient dimension, Hutchinson above.
        flipd_probes: Hutchinson probes.
        baselines: scikit-dimension baselines (``scorelid.estimators.baselines.BASELINES``).
        baseline_k: their neighbourhood size.
        batch_size: rows per denoiser call (``None``: the estimators' default).
        bundle_points: evaluate the error and normal bundles on the first this many evaluation
            points only (``None``: all); they cost ``n`` forward passes per point.
        num_threads: torch CPU threads for estimation (``None``: leave as is).  On our shared
            2-core machine one thread ran DSM ~30x faster than two (3,800 vs ~100 points/s).
        auto_sigmas: the grid of the adaptive rows (``dsm_auto``, ``flipd_auto`` in ``methods``).
        auto_rule: their selection rule (``scorelid.sigma.select.RULES``).
        auto_noise: DSM noise draws per point for ``dsm@auto``'s curve (``None``: ``dsm_noise``).
    """

    name: str
    manifolds: tuple[str, ...]
    n_train: int = 2000
    n_eval: int = 1000
    archs: tuple[str, ...] = ("mlp",)
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    sigmas: tuple[float, ...] = (0.01, 0.02, 0.05)
    methods: tuple[str, ...] = ("dsm", "flipd", "error_bundle", "normal_bundle")
    bundle_sigmas: tuple[float, ...] = (0.05,)
    dsm_noise: int = 8
    flipd_exact_max_n: int = 256
    flipd_probes: int = 8
    baselines: tuple[str, ...] = ("mle", "twonn", "ess", "lpca")
    baseline_k: int = 50
    dims: dict[str, tuple[int, int]] = field(default_factory=dict)
    batch_size: int | None = None
    bundle_points: int | None = None
    num_threads: int | None = None
    auto_sigmas: tuple[float, ...] = DEFAULT_GRID
    auto_rule: str = DEFAULT_RULE
    auto_noise: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def fingerprint(self) -> str:
        """Short hash of every setting: a results directory belongs to one profile."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> Profile:
        return dataclasses.replace(self, **changes)


_FIVE = ("hypersphere", "hyperball", "hypertwinpeaks", "clifford_torus", "nonlinear")
_METHODS = ("dsm", "dsm_auto", "flipd", "flipd_auto", "error_bundle", "normal_bundle")


def _quick() -> Profile:
    from scorelid.training.loop import QUICK_RECIPE

    recipe = {k: v for k, v in QUICK_RECIPE.items() if k != "arch"}
    return Profile(name="quick", manifolds=_FIVE, archs=("mlp",), recipes={"mlp": recipe}, baseline_k=50,
                   methods=_METHODS, dsm_noise=64, bundle_sigmas=(0.05,),
                   flipd_exact_max_n=128, bundle_points=250, num_threads=1)


def _cpu_dit() -> Profile:
    from scorelid.training.loop import CPU_DIT_RECIPE

    recipe = {k: v for k, v in CPU_DIT_RECIPE.items() if k != "arch"}
    return Profile(name="cpu-dit", manifolds=_FIVE, archs=("dit",), recipes={"dit": recipe},
                   methods=("dsm", "dsm_auto", "flipd", "error_bundle", "normal_bundle"), baselines=(),
                   dsm_noise=64, bundle_sigmas=(0.05,), flipd_exact_max_n=0, bundle_points=250)


def _paper() -> Profile:
    from scorelid.training.loop import PAPER_RECIPE

    recipes = {a: {k: v for k, v in r.items() if k != "arch"} for a, r in PAPER_RECIPE.items()}
    return Profile(name="paper", manifolds=_FIVE, archs=("mlp", "dit"), recipes=recipes, baseline_k=100,
                   methods=_METHODS, dsm_noise=64, bundle_sigmas=(0.01, 0.02, 0.05),
                   flipd_exact_max_n=256)


PROFILES = {"quick": _quick, "cpu-dit": _cpu_dit, "paper": _paper}


def get_profile(name: str, manifolds: list[str] | tuple[str, ...] | None = None) -> Profile:
    """The named profile, optionally restricted to some ``manifolds`` (``ValueError`` if unknown)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    prof = PROFILES[name]()
    if manifolds:
        from scorelid.data import MANIFOLDS

        bad = [m for m in manifolds if m not in MANIFOLDS]
        if bad:
            raise ValueError(f"unknown manifold(s) {bad}; choose from {sorted(MANIFOLDS)}")
        prof = prof.replace(manifolds=tuple(dict.fromkeys(manifolds)))
    return prof
