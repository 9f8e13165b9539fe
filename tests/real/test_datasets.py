"""Real datasets: shapes, ranges, determinism; PNG size sanity; corruptions."""

import numpy as np
import pytest

from scorelid.real.datasets import digits, image_patches, noisy, occluded, png_size, png_sizes


def test_digits_split_shapes_and_determinism():
    xtr, _, xte, yte = digits(300, seed=0)
    assert xtr.shape == (1497, 64) and xte.shape == (300, 64) and xtr.dtype == np.float32
    assert xtr.min() == 0.0 and xtr.max() == 1.0
    assert np.bincount(yte, minlength=10).min() >= 29  # stratified: 30 per class (+-1)
    again = digits(300, seed=0)
    np.testing.assert_array_equal(again[2], xte)
    assert not np.array_equal(digits(300, seed=1)[2], xte)
    assert digits(0)[0].shape == (1797, 64)
    with pytest.raises(ValueError, match="n_test"):
        digits(5000)


def test_patches_shapes_range_determinism():
    x, src = image_patches(50, side=8, seed=0)
    assert x.shape == (50, 64) and src.shape == (50,)
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(image_patches(50, seed=0)[0], x)
    assert not np.array_equal(image_patches(50, seed=1)[0], x)
    assert image_patches(4, side=16, stride=2)[0].shape == (4, 256)
    with pytest.raises(ValueError, match="unknown image"):
        image_patches(2, images=("nope",))


def test_png_size_orders_constant_gradient_noise():
    rng = np.random.default_rng(0)
    const = np.full((16, 16), 0.5)
    grad = np.tile(np.linspace(0, 1, 16), (16, 1))
    noise = rng.random((16, 16))
    s_const, s_grad, s_noise = png_size(const), png_size(grad), png_size(noise)
    assert s_const < s_grad < s_noise
    assert s_noise > 16 * 16  # 8-bit noise cannot be compressed below its raw size
    assert png_size((const * 255).astype(np.uint8)) == s_const
    np.testing.assert_array_equal(png_sizes(np.stack([const.ravel(), noise.ravel()])), [s_const, s_noise])
    with pytest.raises(ValueError, match="2-D"):
        png_size(np.zeros(5))
    with pytest.raises(ValueError, match="not 4x4"):
        png_sizes(np.zeros((2, 9)), side=4)


def test_corruptions():
    x = np.zeros((5, 64), np.float32)
    occ = occluded(x, block=3, value=1.0, seed=0)
    assert (occ.sum(axis=1) == 9).all()  # exactly one 3x3 square per image
    sq = occ[0].reshape(8, 8)
    r, c = np.argwhere(sq == 1).min(axis=0)
    assert sq[r:r + 3, c:c + 3].sum() == 9
    nz = noisy(np.full((1000, 4), 0.5, np.float32), 0.1, seed=0)
    assert abs(nz.std() - 0.1) < 0.01 and 0 <= nz.min() and nz.max() <= 1
    with pytest.raises(ValueError, match="square"):
        occluded(np.zeros((2, 10)))
