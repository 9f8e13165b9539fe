"""Flow-matching adapter: exact-velocity LID and the sigma -> timestep map."""

import math

import pytest
import torch
from adapters.exact_models import ExactFlowTransformer

import scorelid
from scorelid.adapters import FlowDenoiser
from scorelid.data.analytic import GaussianSubspace

SHAPE = (16, 2, 2)  # SD3-like 16 latent channels, n = 64
D_TRUE = 5


def _adapter(**kw):
    gs = GaussianSubspace(D_TRUE, math.prod(SHAPE), seed=4)
    cond = {"encoder_hidden_states": torch.zeros(1, 7, 8), "pooled_projections": torch.zeros(1, 8)}
    return gs, FlowDenoiser(ExactFlowTransformer(gs).double(), cond, dtype=torch.float64, **kw)


def test_exact_velocity_recovers_true_lid():
    gs, D = _adapter(s_min=0.003)
    x = gs.sample(24, seed=1)[0].double().reshape(-1, *SHAPE)
    for method, kw in [("dsm", {"n_noise": 8}), ("flipd", {"trace": "exact"})]:
        got = scorelid.estimate(D, x, method, 0.05, seed=7, **kw)
        ref = scorelid.estimate(gs, x.reshape(24, -1), method, 0.05, seed=7, **kw)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    flipd = scorelid.estimate(D, x, "flipd", 0.05, trace="exact")
    assert abs(flipd.mean().item() - D_TRUE) < 0.05
    dsm = scorelid.estimate(D, x, "dsm", 0.05, n_noise=8, seed=7)
    assert abs(dsm.mean().item() - D_TRUE) < 1.2  # sd of the mean 0.23


def test_timestep_is_1000_s():
    _, D = _adapter(s_min=0.003)
    lvl = D.resolve(0.05)
    assert lvl.timestep == pytest.approx(1000 * 0.05 / 1.05, rel=1e-12)
    assert lvl.sigma_used == 0.05 and not lvl.extrapolated
    assert D.sigma_min == pytest.approx(0.003 / 0.997)


def test_below_trained_range():
    _, D = _adapter(s_min=0.003)
    with pytest.raises(ValueError, match="below the smallest noise level"):
        D.resolve(0.001)
    _, Dx = _adapter(s_min=0.003, below_range="extrapolate")
    with pytest.warns(UserWarning):
        assert Dx.resolve(0.001).extrapolated
