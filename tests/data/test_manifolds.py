"""Benchmark manifolds: shapes, true dimensions, geometry, reproducibility, normalisation."""

import numpy as np
import pytest
import torch

from scorelid.data import MANIFOLDS, dims_family, manifold, normalization, raw_manifold, union


@pytest.mark.parametrize("name", sorted(MANIFOLDS))
def test_shapes_dtypes_and_truth(name):
    d, n = MANIFOLDS[name]
    x, d_true = manifold(name, 50, seed=3)
    assert x.shape == (50, n) and x.dtype == torch.float32
    assert d_true.shape == (50,) and d_true.dtype == torch.int64 and (d_true == d).all()
    assert torch.isfinite(x).all()


@pytest.mark.parametrize("name", sorted(MANIFOLDS))
def test_reproducible_and_seed_dependent(name):
    a, _ = manifold(name, 20, seed=5)
    b, _ = manifold(name, 20, seed=5)
    c, _ = manifold(name, 20, seed=6)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_global_numpy_rng_untouched():
    np.random.seed(123)  # noqa: NPY002 - the legacy global RNG is what we check
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    manifold("hypersphere", 10, seed=1)
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def test_sphere_unit_norm_and_padding():
    x = raw_manifold("hypersphere", 100, seed=0)
    np.testing.assert_allclose(np.linalg.norm(x[:, :17], axis=1), 1.0, atol=1e-12)
    assert (x[:, 17:] == 0).all()


def test_ball_inside_unit_ball_and_fills_it():
    x = raw_manifold("hyperball", 4000, seed=0, d=4, n=8)
    r = np.linalg.norm(x, axis=1)
    assert r.max() <= 1 + 1e-12
    # uniform in the 4-ball: P(r <= 1/2) = 1/16 = 0.0625; binomial sd ~ 0.0038
    assert abs((r <= 0.5).mean() - 0.0625) < 0.02


def test_clifford_pairs_have_unit_norm():
    d, n = MANIFOLDS["clifford_torus"]
    x = raw_manifold("clifford_torus", 30, seed=2)
    nz = np.flatnonzero(np.abs(x).sum(0) > 0)
    assert len(nz) == 2 * d
    # undo the (fixed) column permutation: pairs (cos t, sin t) have unit norm
    from scorelid.data.manifolds import _column_permutation

    inv = np.argsort(_column_permutation("clifford_torus", d, n))
    core = x[:, inv][:, : 2 * d]
    np.testing.assert_allclose(np.hypot(core[:, 0::2], core[:, 1::2]), 1.0, atol=1e-12)
    # the permutation is part of the manifold: same for every seed
    y = raw_manifold("clifford_torus", 30, seed=9)
    assert np.array_equal(np.abs(y).sum(0) > 0, np.abs(x).sum(0) > 0)


def test_twinpeaks_heights_underflow_at_d128():
    x = raw_manifold("hypertwinpeaks", 200, seed=0)
    assert ((x[:, :128] >= 0) & (x[:, :128] <= 1)).all()
    assert np.abs(x[:, 128]).max() < 1e-15  # the "peaks" are absent at d = 128
    small = raw_manifold("hypertwinpeaks", 2000, seed=0, d=2, n=4)
    assert np.abs(small[:, 2]).max() > 0.5  # but real at d = 2


def test_nonlinear_structure():
    x = raw_manifold("nonlinear", 40, seed=0, d=4, n=20)
    np.testing.assert_array_equal(x[:, :8], x[:, 8:16])  # blocks repeated
    assert (x[:, 16:] == 0).all()


def test_normalization_shared_by_train_and_eval_samples():
    mean, scale = normalization("hypersphere")
    xr = raw_manifold("hypersphere", 30, seed=11)
    x, _ = manifold("hypersphere", 30, seed=11)
    np.testing.assert_allclose(x.numpy(), (xr - mean) / scale, atol=1e-6)
    big, _ = manifold("hypersphere", 5000, seed=12)
    assert abs(big.std(0).max().item() - 1.0) < 0.05
    assert big.mean(0).abs().max().item() < 0.1


def test_overrides_and_bad_input():
    x, d = manifold("hypersphere", 10, seed=0, d=4, n=32)
    assert x.shape == (10, 32) and (d == 4).all()
    with pytest.raises(ValueError, match="unknown manifold"):
        manifold("torus9", 10)
    with pytest.raises(ValueError, match="too small"):
        manifold("clifford_torus", 10, d=32, n=60)
    with pytest.raises(ValueError, match="num"):
        manifold("hypersphere", 0)


def test_union_per_point_truth_and_disjoint_components():
    specs = [("hypersphere", 4), ("hypersphere", 16), ("hypersphere", 48)]
    x, d = union(specs, 300, seed=1, n=64, normalize=False)
    assert x.shape == (300, 64)
    assert sorted(d.unique().tolist()) == [4, 16, 48] and (d.bincount()[[4, 16, 48]] == 100).all()
    for i, k in enumerate([4, 16, 48]):
        pts = x[d == k].double()
        assert torch.allclose(pts[:, 63], torch.full_like(pts[:, 63], 4.0 * i))
        assert torch.allclose(pts[:, : k + 1].norm(dim=1), torch.ones(100, dtype=torch.float64), atol=1e-5)
    a, _ = union(specs, 50, seed=2, n=64)
    b, _ = union(specs, 50, seed=2, n=64)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="n >="):
        union(specs, 10, n=49)


def test_dims_family():
    fam = dims_family("hypersphere", [2, 8], num=5, seed=0)
    assert [(m.d, m.n) for m in fam] == [(2, 8), (8, 32)]
    assert fam[1].x.shape == (5, 32) and (fam[1].d_true == 8).all()
    fixed = dims_family("clifford_torus", [2, 4], n_of_d=16, num=3)
    assert [m.n for m in fixed] == [16, 16]
