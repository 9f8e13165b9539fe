"""ISM: per draw, 2 tr J - n + ||D(x~) - x~||^2 / sigma^2; for a flat manifold the last term is
~ chi^2_{n-d} (variance 2(n - d)), which sets the sample sizes below."""

import pytest
import torch
from lid_cases import CASES, SIGMA, points_for

import scorelid
from scorelid.data.analytic import GaussianSubspace, GaussianSubspaceMixture


@pytest.mark.parametrize(("d", "n"), CASES)
def test_mean_ism_within_3_percent(d, n):
    g = GaussianSubspace(d, n, seed=d)
    K = 16
    N = max(200, points_for(d, 0.03, 2 * (n - d) + 2 * d, K))
    x, _ = g.sample(N, seed=1)
    lid = scorelid.estimate(g, x, "ism", SIGMA, n_noise=K, batch_size=65536)
    assert abs(lid.mean().item() - d) < 0.03 * d


def test_ism_equals_dsm_in_expectation_on_a_nonlinear_denoiser():
    # Stein's lemma holds for any smooth denoiser, trained or not: check it on a mixture
    # (nonlinear posterior mean) at a sigma where responsibilities vary.
    mix = GaussianSubspaceMixture(dims=[1, 2], n=3, spread=1.0, seed=1)
    x, _ = mix.sample(3000, seed=2)
    ism = scorelid.estimate(mix, x, "ism", 0.5, n_noise=8, batch_size=65536)
    dsm = scorelid.estimate(mix, x, "dsm", 0.5, n_noise=8, batch_size=65536)
    se = (ism.var() / len(x) + dsm.var() / len(x)).sqrt()
    assert abs(ism.mean() - dsm.mean()) < 6 * se


def test_ism_hutchinson_is_unbiased():
    g = GaussianSubspace(8, 32, seed=0)
    x, _ = g.sample(2000, seed=1)
    exact = scorelid.estimate(g, x, "ism", SIGMA, n_noise=4, ad="reverse")
    hutch = scorelid.estimate(g, x, "ism", SIGMA, n_noise=4, trace="hutchinson", n_probes=4, ad="reverse")
    se = (hutch - exact).std() / len(x) ** 0.5
    assert abs((hutch - exact).mean()) < 6 * se
    assert not torch.equal(hutch, exact)


def test_ism_separates_mixture_components():
    # ISM's per-point spread is sqrt(2(n - d) / K): 1.9 for d=4 at K=32, so the 4/16 boundary at
    # 10 is 3.1 standard deviations away; expect all but about 0.1 % of points on the right side
    mix = GaussianSubspaceMixture(dims=[4, 16, 32], n=64, seed=0)
    x, d = mix.sample(300, seed=1)
    lid = scorelid.estimate(mix, x, "ism", SIGMA, n_noise=32, ad="reverse")  # faster for this map
    dims = torch.tensor(mix.dims)
    nearest = dims[(lid[:, None] - dims[None].double()).abs().argmin(1)]
    assert (nearest == d).float().mean() >= 0.97
