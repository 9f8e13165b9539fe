import math

import pytest
import torch
from lid_cases import CASES, SIGMA

import scorelid
from scorelid.data.analytic import GaussianSubspace, GaussianSubspaceMixture


@pytest.mark.parametrize(("d", "n"), CASES)
def test_exact_flipd_within_3_percent(d, n):
    g = GaussianSubspace(d, n, seed=d)
    x, _ = g.sample(300, seed=1)
    lid = scorelid.estimate(g, x, "flipd", SIGMA)
    assert abs(lid.mean().item() - d) < 0.03 * d
    # closed form: tr J_D = d / (1 + s^2), fit term = s^2 ||z||^2 / (1 + s^2)^2
    z2 = (g.tangent_coords(x) ** 2).sum(1)
    ref = d / (1 + SIGMA**2) + SIGMA**2 * z2 / (1 + SIGMA**2) ** 2
    torch.testing.assert_close(lid, ref, atol=1e-3 * d, rtol=0)


@pytest.mark.parametrize(("d", "n"), CASES)
def test_hutchinson_flipd_within_5_percent(d, n):
    g = GaussianSubspace(d, n, seed=d)
    # Rademacher variance of v^T P v is 2 (d - sum_i P_ii^2) <= 2d; with 64 probes and N points
    # the standard error of the mean is sqrt(2d / (64 N)); N = 2000 keeps 5 % beyond 6 of them.
    x, _ = g.sample(2000, seed=1)
    lid = scorelid.estimate(g, x, "flipd", SIGMA, trace="hutchinson", n_probes=64)
    assert abs(lid.mean().item() - d) < 0.05 * d
    se = math.sqrt(2 * d / 64 / 2000)
    assert 0.05 * d > 6 * se


def test_flipd_forward_and_reverse_modes_agree():
    mix = GaussianSubspaceMixture(dims=[2, 5], n=8, spread=2.0, seed=0)
    x, _ = mix.sample(64, seed=0)
    fwd = scorelid.estimate(mix, x, "flipd", 0.3, ad="forward")
    rev = scorelid.estimate(mix, x, "flipd", 0.3, ad="reverse")
    torch.testing.assert_close(fwd, rev)


def test_flipd_separates_mixture_components():
    mix = GaussianSubspaceMixture(dims=[4, 16, 32], n=64, seed=0)
    x, d = mix.sample(300, seed=1)
    for kw in ({}, {"trace": "hutchinson", "n_probes": 32}):
        lid = scorelid.estimate(mix, x, "flipd", SIGMA, **kw)
        dims = torch.tensor(mix.dims)
        nearest = dims[(lid[:, None] - dims[None].double()).abs().argmin(1)]
        assert (nearest == d).all()
