"""Benchmark profiles."""

import pytest

from scorelid.bench.profiles import get_profile
from scorelid.sigma_select import DEFAULT_RULE
from scorelid.train import PAPER_RECIPE, QUICK_RECIPE


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


def test_subset_and_errors():
    assert get_profile("quick", ["nonlinear", "hyperball"]).manifolds == ("nonlinear", "hyperball")
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("slow")
    with pytest.raises(ValueError, match="unknown manifold"):
        get_profile("quick", ["cube"])
