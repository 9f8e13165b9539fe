"""Numerical and memory guards of ``scorelid.estimate``: per-point NaN for non-finite model outputs,
float32 accumulation for half-precision models, batch halving on out-of-memory errors."""

import warnings

import numpy as np
import pytest
import torch

import scorelid
from scorelid.data.analytic import GaussianSubspace
from scorelid.estimators.common import sq_norm
from scorelid.estimators.noise import point_noise
from scorelid.runtime.guards import BatchSizeWarning, NonFiniteWarning, is_out_of_memory, lid_flags

G = GaussianSubspace(3, 10, seed=0)
X, _ = G.sample(24, seed=1)
BAD = [2, 9, 17]  # rows marked so that the denoiser below returns NaN / inf for them
MARK = 50.0


def _marked() -> torch.Tensor:
    x = X.clone()
    x[BAD, 0] = MARK  # far from the data; the denoiser recognises these rows by y[:, 0]
    return x


def _broken(value: float):
    def D(y, s):
        out = G(y, s).clone()
        out[y.reshape(len(y), -1)[:, 0] > MARK / 2] = value
        return out

    return D


OPTIONS = {"dsm": {}, "ism": {"trace": "hutchinson", "n_probes": 2}, "flipd": {},
           "error_bundle": {"n_noise": 6}, "normal_bundle": {}}


@pytest.mark.parametrize("method", sorted(OPTIONS))
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nonfinite_output_gives_nan_for_that_point_only(method, value):
    x = _marked()
    with pytest.warns(NonFiniteWarning, match=rf"3 of 24 points got a non-finite {method} value"):
        lid = scorelid.estimate(_broken(value), x, method, 0.05, seed=4, batch_size=20, **OPTIONS[method])
    assert torch.isnan(lid[BAD]).all()
    good = [i for i in range(24) if i not in BAD]
    # the other points are exactly what the healthy denoiser gives them (same global indices)
    ref = scorelid.estimate(G, x[good], method, 0.05, seed=4, indices=torch.tensor(good), **OPTIONS[method])
    torch.testing.assert_close(lid[good], ref, rtol=1e-9, atol=1e-9)


def test_stats_count_nonfinite_points_and_no_warning_when_clean():
    stats = {}
    with pytest.warns(NonFiniteWarning):
        scorelid.estimate(_broken(float("nan")), _marked(), "dsm", 0.05, stats=stats)
    assert stats["nonfinite"] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scorelid.estimate(G, X, "dsm", 0.05, stats=stats)
    assert stats["nonfinite"] == 0 and stats["oom_retries"] == 0


def test_nan_input_still_raises_naming_the_row():
    x = X.clone()
    x[5, 3] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite values \(NaN or inf\) in 1 rows, e.g. rows \[5\]"):
        scorelid.estimate(G, x, "dsm", 0.05)


def test_lid_flags():
    flags = lid_flags(np.array([3.0, -0.5, 12.0, np.nan, 0.0, 10.0]), 10, "flipd")
    assert flags == ["", "flipd<0", "flipd>n", "nonfinite", "", ""]


# ---- half precision: the model sees float16/bfloat16, the estimator accumulates in float32+


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_dsm_is_accumulated_in_float32(dtype):
    """DSM of a half-precision model equals the float64 evaluation of the same half outputs.

    Ideal: with the model's own (half) outputs ``D(y16)``, ``mean_k ||D(y16) - x||^2 / sigma^2`` in
    float64.  n = 512 coordinates and sigma = 0.3: summing the squares or forming ``D - x``
    in half precision would miss this by ~1e-3 (float16) to ~1e-2 (bfloat16) relative.
    """
    g = GaussianSubspace(400, 512, seed=3)
    x = g.sample(6, seed=5)[0].to(dtype)
    sigma, K = 0.3, 4
    lid = scorelid.estimate(g, x, "dsm", sigma, n_noise=K, seed=2)
    eps = point_noise(2, torch.arange(6), K, (512,))
    y = (x.float().unsqueeze(1) + sigma * eps).reshape(-1, 512).to(dtype)  # what the model is fed
    out = g(y, sigma).double().reshape(6, K, 512)
    ideal = ((out - x.double().unsqueeze(1)) ** 2).sum(2).mean(1) / sigma**2
    torch.testing.assert_close(lid, ideal, rtol=2e-6, atol=0)
    # and a half-precision sum of the same squares is visibly worse: the test can fail
    e16 = ((out - x.double().unsqueeze(1)) / sigma).to(dtype)
    naive = torch.cumsum(e16**2, dim=2, dtype=dtype)[..., -1].double().mean(1)
    assert ((naive - ideal).abs() / ideal).max() > 1e-4


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", ["flipd", "ism", "error_bundle"])
def test_half_precision_methods_track_float32(dtype, method):
    """Jacobian-based methods on a half model stay within half-precision rounding of float32."""
    x16 = X.to(dtype)
    opts = {"n_noise": 4} if method != "flipd" else {}
    lo = scorelid.estimate(G, x16, method, 0.1, seed=1, **opts)
    hi = scorelid.estimate(G, x16.float(), method, 0.1, seed=1, **opts)
    assert lo.dtype == torch.float64 and torch.isfinite(lo).all()
    tol = 0.05 if dtype == torch.float16 else 0.3  # ~2^-11 / 2^-8 relative rounding, n = 10
    assert (lo - hi).abs().max() < tol, (lo - hi).abs().max()


def test_sq_norm_widens_half():
    v = torch.ones(2, 4097, dtype=torch.bfloat16)
    r = sq_norm(v)
    assert r.dtype == torch.float32 and r.tolist() == [4097.0, 4097.0]  # 4097 is not a bfloat16


# ---- out of memory: halve and retry


class OOMAbove:
    """``G`` that raises an out-of-memory error for calls of more than ``limit`` rows."""

    def __init__(self, limit: int, kind: str = "cuda"):
        self.limit, self.kind, self.calls = limit, kind, []

    def __call__(self, y, s):
        self.calls.append(len(y))
        if len(y) > self.limit:
            if self.kind == "cuda":
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate ... "
                               "(out of memory)")
        return G(y, s)


@pytest.mark.parametrize("kind", ["cuda", "cpu"])
@pytest.mark.parametrize("method", ["dsm", "flipd", "normal_bundle"])
def test_oom_halves_batch_and_gives_the_same_numbers(kind, method):
    D = OOMAbove(13, kind)
    stats = {}
    with pytest.warns(BatchSizeWarning) as rec:
        lid = scorelid.estimate(D, X, method, 0.05, seed=3, batch_size=100, stats=stats)
    # rows per call are kept multiples of 64 / gcd(64, n) = 32 (n = 10) while they can be
    # (estimators.api.call_shape): 100 -> 96, then halved 48 -> 32, 16, 8 until the calls fit
    # (the normal bundle's K = 2n = 20 rows per point go through in calls of the batch size too)
    size, retries = 8, 3
    assert stats["batch_size"] == size and stats["oom_retries"] == retries
    assert f"retrying with batch size {size}" in str(rec[-1].message)
    assert max(D.calls[-5:]) <= 13
    ref = scorelid.estimate(G, X, method, 0.05, seed=3)
    torch.testing.assert_close(lid, ref, rtol=1e-9, atol=1e-9)


def test_oom_at_batch_size_one_and_other_errors_are_raised():
    with pytest.raises(torch.OutOfMemoryError), warnings.catch_warnings():
        warnings.simplefilter("ignore", BatchSizeWarning)
        scorelid.estimate(OOMAbove(0), X, "dsm", 0.05, batch_size=8)

    calls = []

    def failing(y, s):
        calls.append(1)
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes cannot"):
        scorelid.estimate(failing, X, "dsm", 0.05)
    assert len(calls) == 1  # not retried


def test_is_out_of_memory():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_oom_in_the_dsm_curve_halves_batch_and_gives_the_same_curve():
    from scorelid.sigma import lid_curve

    sigmas = [0.02, 0.05, 0.1]
    D = OOMAbove(20)
    with pytest.warns(BatchSizeWarning) as rec:
        curve = lid_curve(D, X, sigmas, "dsm", n_noise=4, seed=3, batch_size=96)
    # n = 10: calls hold whole 64-element blocks, i.e. multiples of 32 rows (call_shape), so
    # 96 -> 32 -> 16 (below one block): the first size that fits under 20 rows per call; the
    # reduced size carries over to the later levels (one warning per halving, not per level)
    assert [str(w.message).rsplit(" ", 1)[-1] for w in rec] == ["32", "16"]
    assert max(D.calls[-3:]) <= 16
    torch.testing.assert_close(curve, lid_curve(G, X, sigmas, "dsm", n_noise=4, seed=3), rtol=1e-9, atol=1e-9)
