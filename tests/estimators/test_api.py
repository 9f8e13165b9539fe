"""The estimate() entry point: validation, reproducibility, batching, sharding."""

import numpy as np
import pytest
import torch

import scorelid
from scorelid.data.analytic import GaussianSubspace

G = GaussianSubspace(3, 10, seed=0)
X, _ = G.sample(40, seed=0)


@pytest.mark.parametrize("method", sorted(scorelid.METHODS))
def test_same_seed_same_numbers_any_batch_size(method):
    a = scorelid.estimate(G, X, method, 0.05, seed=7)
    b = scorelid.estimate(G, X, method, 0.05, seed=7, batch_size=13)
    torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)
    if method not in ("flipd", "normal_bundle", "error_bundle"):
        c = scorelid.estimate(G, X, method, 0.05, seed=8)
        assert not torch.equal(a, c)


@pytest.mark.parametrize("method", ["dsm", "ism"])
def test_shards_with_global_indices_match_the_whole(method):
    whole = scorelid.estimate(G, X, method, 0.05, seed=1)
    parts = [
        scorelid.estimate(G, X[s], method, 0.05, seed=1, indices=torch.arange(40)[s])
        for s in (slice(0, 17), slice(17, 40))
    ]
    torch.testing.assert_close(torch.cat(parts), whole, atol=1e-12, rtol=1e-12)


def test_per_point_sigma_matches_scalar_runs():
    sig = torch.tensor([0.02] * 20 + [0.2] * 20)
    both = scorelid.estimate(G, X, "dsm", sig, seed=2)
    lo = scorelid.estimate(G, X, "dsm", 0.02, seed=2)
    hi = scorelid.estimate(G, X, "dsm", 0.2, seed=2)
    torch.testing.assert_close(both, torch.cat([lo[:20], hi[20:]]), atol=1e-5, rtol=1e-5)


def test_numpy_input_and_progress_bar():
    lid = scorelid.estimate(G, X.numpy(), "dsm", 0.05, progress=True)
    assert lid.shape == (40,)


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"x": torch.full((3, 10), float("nan"))}, "non-finite"),
        ({"x": torch.zeros(0, 10)}, "empty"),
        ({"x": torch.zeros(10)}, "at least 2 dims"),
        ({"sigma": 0.0}, "sigma must be finite and > 0"),
        ({"sigma": -1.0}, "sigma must be finite and > 0"),
        ({"sigma": float("nan")}, "sigma must be finite and > 0"),
        ({"sigma": "big"}, "sigma must be a positive number"),
        ({"sigma": torch.ones(3)}, "sigma has 3 values for 40 points"),
        ({"n_noise": 0}, "n_noise must be an integer >= 1"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"method": "mle"}, "unknown method 'mle'"),
        ({"D": lambda y, s: y[:, :5]}, "shape"),
        ({"method": "flipd", "trace": "approx"}, "trace must be one of"),
    ],
)
def test_bad_input_raises_value_error_naming_it(kwargs, msg):
    args = {"D": G, "x": X, "method": "dsm", "sigma": 0.05}
    args.update(kwargs)
    with pytest.raises(ValueError, match=msg):
        scorelid.estimate(args.pop("D"), args.pop("x"), args.pop("method"), args.pop("sigma"), **args)


def test_integer_input_is_cast():
    x = np.arange(20).reshape(2, 10)
    assert scorelid.estimate(G, x, "dsm", 0.05).dtype == torch.float64


def test_resolve_method_auto():
    """``method="auto"``: the normal bundle while it can run (n <= 1024, K >= n), DSM otherwise."""
    from scorelid.estimators import AUTO_BUNDLE_MAX_N, resolve_method

    assert resolve_method("auto", 48) == "normal_bundle" == resolve_method("auto", 48, 96)
    assert resolve_method("auto", AUTO_BUNDLE_MAX_N + 1) == "dsm"
    assert resolve_method("auto", 48, 8) == "dsm"  # an explicit small n_noise keeps meaning DSM
    assert resolve_method("flipd", 5000) == "flipd"
