import pytest
import torch

from scorelid import score, sigma_like
from scorelid.data.analytic import GaussianSubspace
from scorelid.denoiser import check_denoised


def test_score_is_tweedie_for_full_rank_gaussian():
    # d = n: data N(0, I), so p_sigma = N(0, (1 + sigma^2) I) and s(y) = -y / (1 + sigma^2)
    g = GaussianSubspace(d=5, n=5, seed=3)
    y = torch.randn(7, 5, dtype=torch.float64)
    for sigma in (0.1, 0.7):
        torch.testing.assert_close(score(g, y, sigma), -y / (1 + sigma**2))


def test_score_accepts_per_row_sigma_and_images():
    g = GaussianSubspace(d=3, n=12, seed=1)
    y = torch.randn(4, 3, 2, 2, dtype=torch.float64)  # image-shaped, n = 12
    sig = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    s = score(g, y, sig)
    assert s.shape == y.shape
    for i in range(4):
        torch.testing.assert_close(s[i : i + 1], score(g, y[i : i + 1], float(sig[i])))


def test_sigma_like_shapes_and_errors():
    y = torch.zeros(3, 2, 5)
    assert sigma_like(0.5, y).shape == (3, 1, 1)
    assert sigma_like(torch.ones(3), y).shape == (3, 1, 1)
    with pytest.raises(ValueError, match="sigma must be a float or a \\[B\\] tensor"):
        sigma_like(torch.ones(4), y)


def test_check_denoised_names_the_problem():
    y = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="shape"):
        check_denoised(torch.zeros(2, 4), y)
    with pytest.raises(ValueError, match="non-finite"):
        check_denoised(torch.full((2, 3), float("nan")), y)
    with pytest.raises(ValueError, match=r"torch\.Tensor"):
        check_denoised([1, 2], y)
