"""Benchmark profiles."""

import numpy as np
import pytest

from scorelid.bench.profiles import get_profile
from scorelid.sigma import DEFAULT_RULE
from scorelid.training.loop import CPU_DIT_RECIPE, PAPER_RECIPE, QUICK_RECIPE


def test_quick_and_paper():
    q = get_profile("quick")
    assert q.archs == ("mlp",) and q.recipes["mlp"]["steps"] == QUICK_RECIPE["steps"]
    assert q.n_train == 2000 and q.n_eval == 1000 and q.sigmas == (0.01, 0.02, 0.05)
    assert q.baseline_k == 50 and q.num_threads == 1
    assert q.dsm_noise == 64 and q.auto_noise is None and {"dsm_auto", "flipd_auto"} <= set(q.methods)
    assert 0.05 in q.auto_sigmas and q.auto_rule == DEFAULT_RULE
    p = get_profile("paper")
    assert p.archs == ("mlp", "dit") and p.recipes["dit"]["depth"] == PAPER_RECIPE["dit"]["depth"]
    assert p.baseline_k == 100
    assert q.fingerprint() != p.fingerprint() and q.fingerprint() == get_profile("quick").fingerprint()


def test_cpu_dit():
    c = get_profile("cpu-dit")
    assert c.archs == ("dit",) and c.baselines == () and c.flipd_exact_max_n == 0
    assert c.recipes["dit"] == {k: v for k, v in CPU_DIT_RECIPE.items() if k != "arch"}
    assert c.recipes["dit"]["hidden"] == 64 and c.recipes["dit"]["num_threads"] == 1
    assert c.dsm_noise == 64 and "dsm_auto" in c.methods
    assert c.fingerprint() != get_profile("quick").fingerprint()


def test_subset_and_errors():
    assert get_profile("quick", ["nonlinear", "hyperball"]).manifolds == ("nonlinear", "hyperball")
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("slow")
    with pytest.raises(ValueError, match="unknown manifold"):
        get_profile("quick", ["cube"])


def test_paper_profile_runs_end_to_end_on_cpu(tmp_path):
    """The GPU profile's real network sizes and row set, shrunk in points and steps, run on the CPU.

    Guards the ``paper`` path (DiT and the wide MLP through every row builder) that CI's machine
    cannot time.  With a learning rate of 1e-9 the three training steps leave each model at its
    Wiener skip (the networks' output layers start at zero), the Gaussian fit, whose DSM reading at
    small sigma is the rank of the data's covariance: 17 for the 16-sphere (it spans 17 of the 64
    dimensions).  (At the recipes' own learning rates even three Adam steps move the wide MLP's
    1024-unit output layer enough to read 19.2: Adam's first steps are sign-like.)
    """
    import dataclasses

    from scorelid.bench import run_bench

    p = get_profile("paper", ["hypersphere"])
    recipes = {a: {**r, "steps": 3, "batch_size": 32, "lr": 1e-9} for a, r in p.recipes.items()}
    p = dataclasses.replace(p, n_train=300, n_eval=12, recipes=recipes, baseline_k=10, dsm_noise=16,
                            baselines=("mle",))
    recs = run_bench(p, tmp_path / "paper", report=False)
    rows = {(r["arch"], r["method"], r["sigma"]) for r in recs}
    for arch in ("mlp", "dit"):
        assert {(arch, "dsm", s) for s in p.sigmas} <= rows and {(arch, "flipd", s) for s in p.sigmas} <= rows
        assert {(arch, "error_bundle", s) for s in p.bundle_sigmas} <= rows
        dsm = next(r for r in recs if (r["arch"], r["method"], r["sigma"]) == (arch, "dsm", 0.01))
        assert dsm["n_points"] == 12 and abs(dsm["mean_lid"] - 17) < 1.0, dsm
    assert all(np.isfinite(r["mae"]) for r in recs)
