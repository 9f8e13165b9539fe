"""AUROC against hand-computed values; k-NN LID baselines on known dimensions."""

import numpy as np
import pytest

from scorelid.real.anomaly import auroc, knn_lid


def test_auroc_hand_computed():
    # pairs (out, in): 2>1, 2=2 (half), 2<3, 4>1, 4>2, 4>3 -> (1 + 0.5 + 0 + 3) / 6
    assert auroc([1, 2, 3], [2, 4]) == pytest.approx(4.5 / 6)
    assert auroc([0, 1], [2, 3]) == 1.0
    assert auroc([2, 3], [0, 1]) == 0.0
    assert auroc([1, 1], [1]) == 0.5
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(1.0, size=200)
    brute = np.mean((b[:, None] > a[None]) + 0.5 * (b[:, None] == a[None]))
    assert auroc(a, b) == pytest.approx(brute, abs=1e-12)
    with pytest.raises(ValueError, match="at least one"):
        auroc([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        auroc([np.nan], [1.0])


@pytest.mark.parametrize("method", ["mle", "twonn"])
def test_knn_lid_gaussian_subspace(method):
    """Points on a 3-dim linear subspace of R^10: mean k-NN LID ~3 (bias of k=20 MLE < 10%)."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((10, 3)))
    x = rng.standard_normal((3000, 3)) @ q.T
    ref, query = x[200:], x[:200]
    assert abs(np.median(knn_lid(query, ref, method, 20)) - 3.0) < 0.35
    assert abs(np.median(knn_lid(ref, ref, method, 20, exclude_self=True)) - 3.0) < 0.35
    with pytest.raises(ValueError, match="k must be"):
        knn_lid(query, ref[:5], method, 20)
    with pytest.raises(ValueError, match="unknown k-NN"):
        knn_lid(query, ref, "pca")
