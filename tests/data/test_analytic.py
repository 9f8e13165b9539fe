import math

import pytest
import torch

from scorelid.data.analytic import GaussianSubspace, GaussianSubspaceMixture


def test_subspace_basis_is_orthonormal_and_samples_lie_on_it():
    g = GaussianSubspace(d=6, n=20, seed=0)
    torch.testing.assert_close(g.basis.T @ g.basis, torch.eye(6, dtype=torch.float64))
    x, d = g.sample(100, seed=1)
    assert x.shape == (100, 20) and x.dtype == torch.float32
    assert (d == 6).all()
    resid = x.double() - (x.double() @ g.basis) @ g.basis.T
    assert resid.abs().max() < 1e-5


def test_subspace_posterior_mean_matches_monte_carlo_conditional():
    # E[x | y] by regression on joint samples: for Gaussians the posterior mean is linear in y.
    g = GaussianSubspace(d=2, n=3, scale=1.5, seed=4)
    x, _ = g.sample(200_000, seed=2)
    sigma = 0.8
    gen = torch.Generator().manual_seed(5)
    y = x.double() + sigma * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    A = torch.linalg.lstsq(y, x.double()).solution  # x ≈ y A
    y0 = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(g(y0, sigma), y0 @ A, atol=0.02, rtol=0)


def test_expected_dsm_limit_is_d():
    g = GaussianSubspace(d=10, n=30, seed=0)
    x, _ = g.sample(50, seed=0)
    assert torch.allclose(g.expected_dsm(x, 1e-4), torch.full((50,), 10.0, dtype=torch.float64), atol=1e-5)
    # much larger sigma than the data's scale: the component looks 0-dimensional
    assert g.expected_dsm(x, 100.0).mean() < 0.01


def _brute_force_posterior(mix: GaussianSubspaceMixture, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """Posterior mean of a mixture of 1-D Gaussians on lines, by quadrature over the line."""
    t = torch.linspace(-12, 12, 20001, dtype=torch.float64)
    num = torch.zeros(mix.n, dtype=torch.float64)
    den = torch.zeros((), dtype=torch.float64)
    for c in mix.components:
        lam = c.variance
        pts = c.mean + t[:, None] * math.sqrt(lam) * c.basis[:, 0]  # [T, n]
        logw = -((y - pts) ** 2).sum(1) / (2 * sigma**2) - t**2 / 2
        w = torch.exp(logw - 0.0)
        num += (w[:, None] * pts).sum(0)
        den += w.sum()
    return num / den


def test_mixture_posterior_mean_matches_quadrature():
    mix = GaussianSubspaceMixture(dims=[1, 1], n=2, scales=[1.0, 0.5], spread=1.0, seed=3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        y = torch.randn(2, generator=gen, dtype=torch.float64)
        for sigma in (0.3, 1.0):
            ref = _brute_force_posterior(mix, y, sigma)
            torch.testing.assert_close(mix(y[None], sigma)[0], ref, atol=1e-6, rtol=1e-6)


def test_mixture_samples_carry_their_component_dimension():
    mix = GaussianSubspaceMixture(dims=[4, 16, 32], n=64, seed=0)
    x, d = mix.sample(600, seed=1)
    assert set(d.unique().tolist()) == {4, 16, 32}
    r = mix.responsibilities(x.double(), 0.05)
    owner = torch.tensor(mix.dims)[r.argmax(1)]
    assert (owner == d).all()
    assert r.max(1).values.min() > 0.999


@pytest.mark.parametrize(("d", "n", "msg"), [(5, 4, "0 <= d <= n"), (1, 0, "n must be")])
def test_bad_dimensions(d, n, msg):
    with pytest.raises(ValueError, match=msg):
        GaussianSubspace(d, n)


def test_clifford_torus_posterior_mean_matches_quadrature():
    """One circle: E[x|y] by quadrature over the angle equals the von Mises closed form."""
    import math

    from scorelid.data.analytic import CliffordTorus

    T = CliffordTorus(2, 7, radius=1.5, seed=3)
    y = torch.randn(5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for sigma in (0.05, 0.3, 2.0):
        got = T(y, sigma)
        theta = torch.linspace(0, 2 * math.pi, 20001, dtype=torch.float64)[:-1]
        circle = 1.5 * torch.stack([theta.cos(), theta.sin()], 1)  # [G, 2]
        p = (y @ T.basis).reshape(5, 2, 2)
        mean = []
        for j in range(2):  # the planes are independent: one quadrature per circle
            logw = p[:, j] @ circle.T / sigma**2  # r p.u / sigma^2 with u = circle / r
            w = torch.softmax(logw, dim=1)
            mean.append(w @ circle)
        want = torch.cat(mean, 1) @ T.basis.T
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-8)
    x, d = T.sample(4, seed=1)
    assert (d == 2).all()
    torch.testing.assert_close(x.double().norm(dim=1), torch.full((4,), 1.5 * 2**0.5, dtype=torch.float64),
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(T(x.double(), 1e-4), x.double(), rtol=0, atol=1e-6)  # on the torus: itself
