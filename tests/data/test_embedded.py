"""Smoothly embedded cubes, tori and spheres (``scorelid.data.embedded``)."""

import numpy as np
import pytest
import torch

from scorelid.data.embedded import SHAPES, embedded, latent_sample


def test_shapes_truth_and_normalisation():
    x, d = embedded([("cube", 3), ("torus", 2), ("sphere", 4)], 3001, n=20, seed=0)
    assert x.shape == (3001, 20) and x.dtype == torch.float32
    assert sorted(np.unique(d.numpy()).tolist()) == [2, 3, 4]
    # the first spec takes the remainder
    assert np.bincount(d.numpy())[[2, 3, 4]].tolist() == [1000, 1001, 1000]
    big, _ = embedded([("cube", 3), ("torus", 2), ("sphere", 4)], 20_000, n=20, seed=5)
    assert abs(float(big.std(0).max()) - 1.0) < 0.03
    assert float(big.mean(0).abs().max()) < 0.05


def test_seeds_draw_points_structure_is_fixed():
    a, _ = embedded([("cube", 2)], 50, n=8, seed=0)
    b, _ = embedded([("cube", 2)], 50, n=8, seed=0)
    c, _ = embedded([("cube", 2)], 50, n=8, seed=1)
    e, _ = embedded([("cube", 2)], 50, n=8, seed=0, structure_seed=1)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, e)


@pytest.mark.parametrize("shape,d", [("cube", 3), ("torus", 2), ("sphere", 3)])
def test_local_dimension_is_d(shape, d):
    """Neighbourhoods of a dense sample span d directions: the (d+1)-th local singular value is
    small next to the d-th (a smooth immersion of a d-dimensional shape, not a thicker set)."""
    x, _ = embedded([(shape, d)], 40_000, n=12, seed=0)
    x = x.double()
    for i in range(5):
        dist = (x - x[i]).norm(dim=1)
        patch = x[dist.argsort()[1:60]]
        s = torch.linalg.svdvals(patch - patch.mean(0))
        assert s[d] < 0.25 * s[d - 1], (i, s[: d + 2])


def test_latent_shapes():
    rng = np.random.default_rng(0)
    for shape, m in SHAPES.items():
        z = latent_sample(shape, 3, 10, rng)
        assert z.shape == (10, m(3))
    z = latent_sample("sphere", 3, 10, rng)
    assert np.allclose(np.linalg.norm(z, axis=1), 1.0)


@pytest.mark.parametrize("kwargs,match", [
    ({"specs": [("blob", 2)]}, "shape"),
    ({"specs": []}, "at least one"),
    ({"num": 0}, "num"),
    ({"n": 1}, "n must"),
    ({"gain": 0.0}, "gain"),
])
def test_bad_input(kwargs, match):
    args = {"specs": [("cube", 2)], "num": 10, "n": 6, **kwargs}
    with pytest.raises(ValueError, match=match):
        embedded(**args)
