"""DSM against closed forms.  Sizes follow from the Monte Carlo spread, never from a lucky seed.

For a flat manifold each DSM draw is ~ chi^2_d (variance 2d), so the mean over N points and K draws
has standard error sqrt(2d / (N K)); every tolerance below is at least 6 standard errors.
"""

import math

import pytest
import torch
from lid_cases import CASES, SIGMA, points_for

import scorelid
from scorelid.data.analytic import GaussianSubspace, GaussianSubspaceMixture


@pytest.mark.parametrize(("d", "n"), CASES)
def test_mean_dsm_within_3_percent(d, n):
    g = GaussianSubspace(d, n, seed=d)
    K = 8
    N = max(200, points_for(d, 0.03, 2 * d, K))
    x, _ = g.sample(N, seed=1)
    lid = scorelid.estimate(g, x, "dsm", SIGMA, n_noise=K, batch_size=65536)
    assert lid.shape == (N,) and lid.dtype == torch.float64
    assert abs(lid.mean().item() - d) < 0.03 * d
    # and it matches the closed-form expectation of the estimator, not only its limit
    assert abs(lid.mean().item() - g.expected_dsm(x, SIGMA).mean().item()) < 0.03 * d


def test_dsm_per_point_spread_shrinks_like_inverse_sqrt_k():
    # One point repeated with distinct indices: independent noise, so the replicas show the
    # per-point sampling distribution of the estimate.
    d, R = 16, 3000
    g = GaussianSubspace(d, 64, seed=0)
    x, _ = g.sample(1, seed=3)
    xs = x.expand(R, -1)
    stds = {}
    for K in (4, 16, 64):
        stds[K] = scorelid.estimate(g, xs, "dsm", SIGMA, n_noise=K, batch_size=65536).std().item()
    # theory: sqrt(2d / K); the std of R replicas is known to ~1/sqrt(2R) = 1.3 %
    for K, s in stds.items():
        assert abs(s / math.sqrt(2 * d / K) - 1) < 0.08
    assert abs(stds[4] / stds[16] - 2) < 0.16
    assert abs(stds[4] / stds[64] - 4) < 0.32


def test_dsm_sees_no_autograd():
    g = GaussianSubspace(2, 4, seed=0)
    seen = []

    def D(y, sigma):
        seen.append(torch.is_grad_enabled())
        return g(y, sigma)

    x, _ = g.sample(10)
    scorelid.estimate(D, x, "dsm", 0.05)
    assert seen and not any(seen)


def test_dsm_works_on_images_and_half_precision():
    g = GaussianSubspace(6, 48, seed=2)
    x, _ = g.sample(400, seed=0)
    img = x.reshape(400, 3, 4, 4)
    a = scorelid.estimate(g, x, "dsm", 0.05)
    b = scorelid.estimate(g, img, "dsm", 0.05)
    torch.testing.assert_close(a, b)
    # bfloat16 inputs: the squared norms are accumulated in float32, the mean stays near d
    lid16 = scorelid.estimate(g, x.to(torch.bfloat16), "dsm", 0.05)
    assert lid16.dtype == torch.float64
    assert abs(lid16.mean().item() - a.mean().item()) < 0.05 * 6


def test_dsm_separates_mixture_components():
    mix = GaussianSubspaceMixture(dims=[4, 16, 32], n=64, seed=0)
    x, d = mix.sample(900, seed=1)
    lid = scorelid.estimate(mix, x, "dsm", SIGMA, n_noise=32)
    dims = torch.tensor(mix.dims)
    nearest = dims[(lid[:, None] - dims[None].double()).abs().argmin(1)]
    # per-point spread sqrt(2d/K) <= 1.41 at K=32: the nearest true d is right for all but a
    # handful (the 16/32 boundary is 5.7 standard deviations away)
    assert (nearest == d).float().mean() > 0.99
    for dim in mix.dims:
        assert abs(lid[d == dim].mean().item() - dim) < 0.05 * dim
