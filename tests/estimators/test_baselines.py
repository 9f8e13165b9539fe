"""scikit-dimension baselines behind the per-point interface, on flat Gaussian subspaces."""

import numpy as np
import pytest
import torch

from scorelid.data.analytic import GaussianSubspace
from scorelid.estimators.baselines import BASELINES, baseline_lid, neighbour_indices


@pytest.fixture(scope="module")
def flat():
    g = GaussianSubspace(d=3, n=10, seed=1)
    x_ref, _ = g.sample(500, seed=2)
    x, d_true = g.sample(60, seed=3)
    return x, x_ref, d_true


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_recovers_flat_dimension(flat, method):
    x, x_ref, _ = flat
    lid = baseline_lid(x, method, k=40, reference=x_ref)
    assert lid.shape == (60,) and lid.dtype == torch.float64
    assert torch.isfinite(lid).all()
    # a 3-flat: every estimator's mean over 60 points within 0.6 of 3 (MLE/TwoNN/ESS spread per
    # point is ~0.5-1 at k=40, so the mean's spread is ~0.1); lPCA on an exact flat patch is exact
    assert abs(float(lid.mean()) - 3) < 0.6
    if method == "lpca":
        assert torch.equal(lid, torch.full((60,), 3.0, dtype=torch.float64))


def test_higher_dimension_gives_higher_estimate():
    x5, _ = GaussianSubspace(d=6, n=10, seed=0).sample(400, seed=1)
    x2, _ = GaussianSubspace(d=2, n=10, seed=0).sample(400, seed=1)
    assert float(baseline_lid(x5, "mle", k=30).mean()) > float(baseline_lid(x2, "mle", k=30).mean()) + 3


def test_chunking_does_not_change_results(flat):
    x, x_ref, _ = flat
    a = baseline_lid(x, "ess", k=30, reference=x_ref, chunk=7, seed=4)
    b = baseline_lid(x, "ess", k=30, reference=x_ref, chunk=100, seed=4)
    torch.testing.assert_close(a, b, equal_nan=True)


def test_neighbours_exclude_self_and_search_the_pool():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))
    pool = np.concatenate([x, x[:1] + 1e-6, rng.normal(size=(20, 3))])
    dist, idx = neighbour_indices(x, pool, 4, self_rows=True)
    assert idx.shape == (5, 4) and dist.shape == (5, 4)
    assert not (idx == np.arange(5)[:, None]).any()
    assert idx[0, 0] == 5  # the near-duplicate in the reference part is x_0's nearest neighbour
    assert (np.diff(dist, axis=1) >= 0).all()


def test_errors():
    x = torch.randn(20, 4)
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_lid(x, "danco")
    with pytest.raises(ValueError, match="k=20 neighbours need at least 21 points"):
        baseline_lid(x, "mle", k=20)
    with pytest.raises(ValueError, match="k must be an integer >= 2"):
        baseline_lid(x, "mle", k=1)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        baseline_lid(bad, "mle", k=5)
    with pytest.raises(ValueError, match="reference has 3 columns"):
        baseline_lid(x, "mle", k=5, reference=torch.randn(10, 3))
    with pytest.raises(ValueError, match="shape"):
        baseline_lid(torch.randn(20), "mle", k=5)
    # the reference enlarges the pool, so k may exceed len(x)
    assert baseline_lid(x, "mle", k=25, reference=torch.randn(30, 4)).shape == (20,)


def test_batched_lpca_equals_scikit_dimension():
    """Our batched Fukunaga-Olsen rule gives scikit-dimension's per-patch lPCA on curved patches
    of varied spectra (a sphere and anisotropic Gaussians, k < n and k > n)."""
    from skdim.id import lPCA

    from scorelid.estimators.baselines import lpca_fo

    rng = np.random.default_rng(5)
    sph = rng.normal(size=(400, 6))
    sph /= np.linalg.norm(sph, axis=1, keepdims=True)
    x = np.concatenate([sph, np.zeros((400, 4))], axis=1) + 0.01 * rng.normal(size=(400, 10))
    scales = np.geomspace(1.0, 0.01, 10)
    x2 = rng.normal(size=(300, 10)) * scales
    for data, k in ((x, 30), (x, 8), (x2, 40)):
        _, idx = neighbour_indices(data[:50], data, k, self_rows=True)
        ours = lpca_fo(data[idx])
        ref = np.array([lPCA(ver="FO").fit(data[r]).dimension_ for r in idx], dtype=np.float64)
        np.testing.assert_array_equal(ours, ref)
        assert len(np.unique(ours)) > 1  # the patches do not all give the same answer
    lid = baseline_lid(torch.from_numpy(x[:50]), "lpca", k=30, reference=torch.from_numpy(x[50:]))
    assert 4.0 <= float(lid.mean()) <= 6.0  # a 5-sphere, slightly curved patches
