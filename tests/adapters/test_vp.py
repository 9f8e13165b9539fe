"""VP (epsilon / v-prediction) adapter: exact-prediction LID and the sigma -> timestep map."""

import math
import warnings

import pytest
import torch
from adapters.exact_models import ExactVPUNet
from diffusers import DDPMScheduler

import scorelid
from scorelid.adapters import VPDenoiser
from scorelid.data.analytic import GaussianSubspace

SHAPE = (4, 4, 4)  # latents [C, H, W], n = 64
D_TRUE = 3
SIGMA = 0.05


@pytest.fixture(scope="module")
def abar():
    s = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    return s.alphas_cumprod


def _adapter(abar, prediction_type, **kw):
    gs = GaussianSubspace(D_TRUE, math.prod(SHAPE), seed=3)
    unet = ExactVPUNet(gs, SHAPE, abar, prediction_type).double()
    cond = {"encoder_hidden_states": torch.zeros(1, 77, 8)}
    return gs, VPDenoiser(unet, abar, prediction_type, cond, dtype=torch.float64, **kw)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_exact_prediction_recovers_true_lid(abar, prediction_type):
    gs, D = _adapter(abar, prediction_type)
    x = gs.sample(24, seed=1)[0].double().reshape(-1, *SHAPE)
    for method, kw in [("dsm", {"n_noise": 8}), ("flipd", {"trace": "exact"})]:
        got = scorelid.estimate(D, x, method, SIGMA, seed=5, **kw)
        ref = scorelid.estimate(gs, x.reshape(24, -1), method, SIGMA, seed=5, **kw)
        # the adapter reproduces the exact posterior mean: same per-point numbers as the closed form
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    flipd = scorelid.estimate(D, x, "flipd", SIGMA, trace="exact")
    # exact FLIPD on a flat d-subspace: d / (1 + sigma^2) + O(sigma^2 |z|^2)
    assert abs(flipd.mean().item() - D_TRUE) < 0.05
    dsm = scorelid.estimate(D, x, "dsm", SIGMA, n_noise=8, seed=5)
    # per-point spread sqrt(2d/K) = 0.87; mean over 24 points: sd 0.18, bound at > 5 sd
    assert abs(dsm.mean().item() - D_TRUE) < 1.0


def test_timestep_map_matches_trained_levels(abar):
    _, D = _adapter(abar, "epsilon")
    sig = D.sigmas
    for t in (0, 1, 10, 50, 100, 999):
        assert D.resolve(float(sig[t])).timestep == pytest.approx(t, abs=1e-6)
    # the notes' table: sigma 0.0983 is timestep 10, 0.2256 is 50 (4-digit sigmas)
    assert D.resolve(0.0983).timestep == pytest.approx(10, abs=0.02)
    assert D.resolve(0.2256).timestep == pytest.approx(50, abs=0.05)
    # geometric midpoint of two levels is half-way in log sigma
    mid = math.sqrt(float(sig[10] * sig[11]))
    lvl = D.resolve(mid)
    assert lvl.timestep == pytest.approx(10.5, abs=1e-9)
    assert lvl.sigma_used == mid and not lvl.extrapolated


def test_snap_uses_nearest_level_and_reports_it(abar):
    _, D = _adapter(abar, "epsilon", snap=True)
    lvl = D.resolve(0.05)
    assert lvl.timestep == 2.0
    assert lvl.sigma_used == pytest.approx(float(D.sigmas[2]), rel=1e-12)
    assert lvl.sigma_used != 0.05


def test_below_trained_range_refused_or_extrapolated(abar):
    _, D = _adapter(abar, "epsilon")
    with pytest.raises(ValueError, match="below the smallest noise level"):
        D.resolve(0.01)
    with pytest.raises(ValueError, match="below the smallest noise level"):
        D(torch.zeros(2, *SHAPE, dtype=torch.float64), 0.01)
    _, Dx = _adapter(abar, "epsilon", below_range="extrapolate")
    with pytest.warns(UserWarning, match="extrapolating"):
        lvl = Dx.resolve(0.01)
    assert lvl.extrapolated and lvl.timestep < 0
    # extrapolation continues the log-linear line through the first two levels
    s0, s1 = float(Dx.sigmas[0]), float(Dx.sigmas[1])
    assert lvl.timestep == pytest.approx(math.log(0.01 / s0) / math.log(s1 / s0), rel=1e-9)
    with pytest.raises(ValueError, match="above the largest"):
        D.resolve(1e4)


def test_extrapolated_exact_model_still_close(abar):
    # the exact module follows the same log-linear line, so below-range LID stays exact
    gs, D = _adapter(abar, "v_prediction", below_range="extrapolate")
    x = gs.sample(4, seed=2)[0].double().reshape(-1, *SHAPE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = scorelid.estimate(D, x, "flipd", 0.02, trace="exact")
    ref = scorelid.estimate(gs, x.reshape(4, -1), "flipd", 0.02, trace="exact")
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_rejects_sample_prediction(abar):
    with pytest.raises(ValueError, match="prediction_type"):
        VPDenoiser(torch.nn.Linear(1, 1), abar, "sample")


def test_top_trained_level_accepted_in_float32(abar):
    # issue 15 item 5: the top level rounded to float32 lies a hair above the float64 table
    _, D = _adapter(abar, "epsilon")
    top = float(D.sigmas[-1])
    assert float(torch.tensor(top, dtype=torch.float32)) > top  # the rounding the bug came from
    assert D.resolve(top).timestep == pytest.approx(999, abs=1e-9)
    t = D.timestep(torch.tensor([top], dtype=torch.float32).double())
    assert float(t[0]) == pytest.approx(999, abs=1e-9)
    out = D(torch.zeros(2, *SHAPE, dtype=torch.float32), torch.tensor(top, dtype=torch.float32))
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="above the largest"):
        D.resolve(top * 1.001)
