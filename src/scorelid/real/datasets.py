"""Real data from installed packages: digits, natural-image patches, PNG size, corruptions.

All images are grayscale with pixel values in ``[0, 1]`` (float32), flattened row-major to vectors
``[N, side * side]``; ``side`` is 8 for digits, so 8x8 patches live in the same 64-dim space.
"""

from __future__ import annotations

import io
import math

import numpy as np

__all__ = ["NATURAL_IMAGES", "digits", "image_patches", "noisy", "occluded", "png_size", "png_sizes"]

#: scikit-image sample images used for patches (all ship with the package; none is downloaded).
NATURAL_IMAGES = ("camera", "astronaut", "coffee", "chelsea", "rocket", "coins", "moon", "brick", "grass",
                  "gravel")


def digits(n_test: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digits, pixels scaled from 0..16 to ``[0, 1]``.

    Args:
        n_test: rows held out (a seeded permutation, stratified by class); 0 keeps all for training.
        seed: seed of the split.

    Returns:
        ``(x_train [N, 64] float32, y_train [N] int64, x_test [n_test, 64], y_test [n_test])``.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    if not 0 <= n_test < len(x):
        raise ValueError(f"n_test must be in [0, {len(x) - 1}], got {n_test}")
    if n_test == 0:
        return x, y, x[:0], y[:0]
    from sklearn.model_selection import train_test_split

    xtr, xte, ytr, yte = train_test_split(x, y, test_size=n_test, random_state=seed, stratify=y)
    return xtr, ytr, xte, yte


def _gray(name: str) -> np.ndarray:
    import skimage.data
    from skimage.color import rgb2gray

    if name not in NATURAL_IMAGES:
        raise ValueError(f"unknown image {name!r}; choose from {NATURAL_IMAGES}")
    im = getattr(skimage.data, name)()
    if im.ndim == 3:
        im = rgb2gray(im[..., :3])  # float in [0, 1]
    else:
        im = im.astype(np.float64) / 255.0
    return im.astype(np.float32)


def image_patches(num: int, side: int = 8, seed: int = 0, images: tuple[str, ...] = NATURAL_IMAGES,
                  stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``num`` grayscale ``side x side`` patches of scikit-image's sample images.

    Each patch picks an image uniformly, then a uniform top-left corner, from a generator seeded
    by ``seed``; ``stride > 1`` first downsamples the image by block averaging (coarser, more
    textured patches).

    Returns:
        ``(x [num, side*side] float32 in [0, 1], source [num] int64 index into images)``.
    """
    if num < 1 or side < 2 or stride < 1:
        raise ValueError(f"need num >= 1, side >= 2, stride >= 1; got {num}, {side}, {stride}")
    ims = []
    for name in images:
        im = _gray(name)
        if stride > 1:
            h, w = (im.shape[0] // stride) * stride, (im.shape[1] // stride) * stride
            im = im[:h, :w].reshape(h // stride, stride, w // stride, stride).mean(axis=(1, 3))
        if min(im.shape) < side:
            raise ValueError(f"image {name!r} is smaller than a {side}x{side} patch")
        ims.append(im)
    rng = np.random.default_rng(seed)
    src = rng.integers(0, len(ims), size=num)
    out = np.empty((num, side * side), dtype=np.float32)
    for i, k in enumerate(src):
        im = ims[k]
        r = rng.integers(0, im.shape[0] - side + 1)
        c = rng.integers(0, im.shape[1] - side + 1)
        out[i] = im[r:r + side, c:c + side].reshape(-1)
    return out, src.astype(np.int64)


def noisy(x: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    """``x + std * N(0, I)`` clipped to ``[0, 1]``: ``[N, n]`` float32."""
    rng = np.random.default_rng(seed)
    return np.clip(x + std * rng.standard_normal(x.shape), 0.0, 1.0).astype(np.float32)


def occluded(x: np.ndarray, block: int = 3, value: float = 0.0, seed: int = 0) -> np.ndarray:
    """Square images ``x`` ``[N, side*side]`` with one random ``block x block`` square set to ``value``."""
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1] or not 1 <= block <= side:
        raise ValueError(f"need square images and 1 <= block <= side; got {x.shape[1]} pixels, block {block}")
    rng = np.random.default_rng(seed)
    out = x.reshape(-1, side, side).copy()
    for i in range(len(out)):
        r, c = rng.integers(0, side - block + 1, size=2)
        out[i, r:r + block, c:c + block] = value
    return out.reshape(x.shape).astype(np.float32)


def png_size(image: np.ndarray) -> int:
    """Bytes of ``image`` (``[H, W]`` in ``[0, 1]``, or uint8) saved as an 8-bit grayscale PNG (level 9).

    The PNG container adds a constant overhead (~70 bytes), which leaves rank correlations unchanged.
    """
    from PIL import Image

    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"png_size needs a 2-D [H, W] image, got shape {a.shape}")
    if a.dtype != np.uint8:
        if not np.isfinite(a).all():
            raise ValueError("png_size: image has non-finite values")
        a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=9)
    return buf.tell()


def png_sizes(x: np.ndarray, side: int | None = None) -> np.ndarray:
    """PNG sizes ``[N]`` of flattened square images ``x`` ``[N, side*side]`` in ``[0, 1]``."""
    side = side or math.isqrt(x.shape[1])
    if side * side != x.shape[1]:
        raise ValueError(f"rows of {x.shape[1]} pixels are not {side}x{side} images")
    return np.array([png_size(r.reshape(side, side)) for r in x], dtype=np.int64)
