"""EDM preconditioning: scalings' identities, the untrained denoiser is its skip path, Wiener skip."""

import pytest
import torch

from scorelid.data.analytic import GaussianSubspace
from scorelid.nn import EDMDenoiser, build_denoiser, edm_scalings


def test_edm_scaling_identities():
    s = torch.logspace(-3, 1, 50, dtype=torch.float64)
    sd = 0.7
    c_skip, c_out, c_in, c_noise = edm_scalings(s, sd)
    torch.testing.assert_close(c_out**2, s**2 * c_skip)
    torch.testing.assert_close(c_in**2 * (s**2 + sd**2), torch.ones_like(s))
    torch.testing.assert_close(c_noise, torch.log(s) / 4)
    # the network's target (x - c_skip y) / c_out has unit variance for data of variance sd^2
    target_var = ((1 - c_skip) ** 2 * sd**2 + c_skip**2 * s**2) / c_out**2
    torch.testing.assert_close(target_var, torch.ones_like(s))


@pytest.mark.parametrize("arch", ["mlp", "dit"])
def test_untrained_denoiser_is_the_scalar_skip_in_data_units(arch):
    net = {"width": 32, "depth": 2} if arch == "mlp" else {"hidden": 16, "heads": 2, "depth": 1}
    m = EDMDenoiser(arch, 10, sigma_data=0.6, net=net)
    mean, scale = torch.randn(10), 2.5
    m.set_data_stats({"mean": mean, "scale": scale})
    y = torch.randn(7, 10)
    sigma = torch.rand(7) + 0.05
    s = (sigma / scale)[:, None]
    expected = mean + scale * (0.36 / (s**2 + 0.36)) * ((y - mean) / scale)
    torch.testing.assert_close(m(y, sigma), expected)
    # a float sigma equals the same value given per row
    torch.testing.assert_close(m(y, 0.3), m(y, torch.full((7,), 0.3)))


def test_wiener_skip_is_the_gaussian_posterior_mean():
    g = GaussianSubspace(d=3, n=8, scale=1.5, seed=4)
    x, _ = g.sample(40_000, seed=1)
    stats = EDMDenoiser.data_stats(x)
    assert stats["U"].shape == (8, 3)  # rank found from the data
    m = EDMDenoiser("mlp", 8, sigma_data=stats["sigma_data"], skip="wiener", rank=3,
                    net={"width": 16, "depth": 1})
    m.set_data_stats(stats)
    y, _ = g.sample(50, seed=2)
    y = y + 0.3 * torch.randn(50, 8, generator=torch.Generator().manual_seed(3))
    for sigma in (0.05, 0.3, 1.0):
        # sample covariance from 40k points: relative error ~ 1/sqrt(40k/2) ~ 0.7%
        torch.testing.assert_close(m(y, sigma), g(y, sigma).float(), atol=0.05, rtol=0.02)


def test_config_round_trip_and_bad_config():
    m = EDMDenoiser("dit", 12, sigma_data=0.4, net={"hidden": 16, "heads": 4, "depth": 1})
    m2 = build_denoiser(m.config)
    assert m2.config == m.config
    assert sum(p.numel() for p in m2.parameters()) == sum(p.numel() for p in m.parameters())
    with pytest.raises(ValueError, match="unknown architecture"):
        build_denoiser({**m.config, "arch": "unet"})
    with pytest.raises(ValueError, match="lacks the key"):
        build_denoiser({"arch": "mlp"})
    with pytest.raises(ValueError, match="shape"):
        m(torch.randn(3, 11), 0.1)


def test_gate_is_an_input_dependent_skip_without_c_out():
    torch.manual_seed(0)
    m = EDMDenoiser("mlp", 5, sigma_data=0.5, net={"width": 8, "depth": 1, "gate": True}, c_in="data")
    with torch.no_grad():
        m.net.out.bias[5:10] = torch.arange(5.0)  # G
        m.net.out.bias[10] = 0.5  # g0
    y = torch.randn(3, 5)
    s = 0.1
    c_skip = 0.25 / (s**2 + 0.25)
    torch.testing.assert_close(m(y, s), c_skip * y + (torch.arange(5.0) + 0.5) * y)


def test_c_in_data_feeds_one_scale():
    seen = []
    m = EDMDenoiser("mlp", 3, sigma_data=0.5, net={"width": 8, "depth": 1}, c_in="data")
    m.net.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    y = torch.randn(2, 3)
    m(y, 0.01)
    m(y, 1.0)
    torch.testing.assert_close(seen[0], seen[1])
    torch.testing.assert_close(seen[0], y / 0.5)
    with pytest.raises(ValueError, match="c_in"):
        EDMDenoiser("mlp", 3, c_in="other")


def test_delta_is_added_without_c_out():
    torch.manual_seed(0)
    m = EDMDenoiser("mlp", 4, sigma_data=0.5, net={"width": 8, "depth": 1, "gate": True, "delta": True})
    assert m.net.out.out_features == 4 + 5 + 4
    with torch.no_grad():
        m.net.out.bias[:4] = 1.0  # F: scaled by c_out
        m.net.out.bias[-4:] = torch.tensor([0.1, 0.2, 0.3, 0.4])  # Delta: not scaled
    y = torch.randn(3, 4)
    s = 0.2
    c_skip, c_out = 0.25 / (s**2 + 0.25), s * 0.5 / (s**2 + 0.25) ** 0.5
    expected = c_skip * y + c_out * 1.0 + torch.tensor([0.1, 0.2, 0.3, 0.4])
    torch.testing.assert_close(m(y, s), expected)
