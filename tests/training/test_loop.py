"""DSM training: a tiny model recovers a sphere's dimension; resume equals an uninterrupted run;
``config=`` trains the same model as the keywords."""

import math

import numpy as np
import pytest
import torch

from scorelid import estimate, load_denoiser, train_denoiser
from scorelid.data import manifold, raw_manifold
from scorelid.training.checkpoint import latest_train_state
from scorelid.training.config import QUICK, TrainConfig
from scorelid.training.loop import _lr_at
from scorelid.training.sigma_sampling import SigmaSampler

TINY = {"arch": "mlp", "width": 64, "depth": 2, "batch_size": 128, "lr": 3e-3, "warmup": 30,
        "sigma_min": 0.005, "sigma_max": 0.5, "skip": "wiener", "ema_decay": 0.99, "progress": False,
        "gate": True, "squares": True, "c_in": "data"}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only adds contention
    yield
    torch.set_num_threads(n)


def test_tiny_model_recovers_sphere_dimension():
    """S^2 in R^8 (3 coordinates + 5 zero pads), 400 steps: DSM estimate close to d = 2.

    Tolerance: with 500 held-out points x 8 noise draws the Monte Carlo error of the mean is
    ~sqrt(2*2/8)/sqrt(500) ~ 0.03.  Over training seeds 0-4 this recipe's mean DSM LID measured
    1.99-2.05 at sigma=0.02 (2.01-2.09 at 0.01; docs/training.md), so |mean - 2| < 0.25 leaves a
    wide margin, while a model that has not learnt the radial direction (estimate ~3: what the
    ungated MLP gives after 1,000 steps) or the padding (~8) fails.
    """
    x, _ = manifold("hypersphere", 2000, seed=1, d=2, n=8)
    xe, _ = manifold("hypersphere", 500, seed=2, d=2, n=8)
    m = train_denoiser(x, steps=400, seed=0, **TINY)
    lid = estimate(m, xe, "dsm", 0.02, seed=0)
    assert abs(lid.mean().item() - 2.0) < 0.25
    assert m.history["loss"][-1][1] < m.history["loss"][0][1]
    rows = m.history["lid_by_sigma"]
    assert len(rows) == 16 and sum(r["count"] for r in rows) == 0.2 * 400 * 128
    near = [r["mean_lid"] for r in rows if 0.01 <= r["sigma_mid"] <= 0.05]
    assert near and all(abs(v - 2.0) < 0.5 for v in near)  # in-sample DSM-LID agrees


@pytest.mark.parametrize("factorised", [False, True])
def test_resume_gives_identical_weights(tmp_path, factorised):
    """Also for one network per independent coordinate group (8 circles: two networks)."""
    if factorised:
        x, _ = manifold("clifford_torus", 400, seed=1, d=8, n=18)
        extra = {"factorize": True, "group_width": 8}
    else:
        x, _ = manifold("hypersphere", 300, seed=1, d=2, n=8)
        extra = {}
    kw = {**TINY, "width": 16, "steps": 60, "checkpoint_every": 20, "seed": 3, "log_every": 5, **extra}
    full = train_denoiser(x, out_dir=tmp_path / "full", **kw)
    assert full.config["arch"] == ("grouped" if factorised else "mlp")

    class Stop(Exception):
        pass

    def interrupt(step, loss):
        if step == 45:
            raise Stop

    with pytest.raises(Stop):
        train_denoiser(x, out_dir=tmp_path / "cut", callback=interrupt, **kw)
    assert latest_train_state(tmp_path / "cut").name == "step-00000040"
    resumed = train_denoiser(x, out_dir=tmp_path / "cut", resume=True, **kw)
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert full.history["loss"] == resumed.history["loss"]
    assert full.history["lid_by_sigma"] == resumed.history["lid_by_sigma"]
    loaded = load_denoiser(tmp_path / "cut")
    y = torch.randn(4, x.shape[1])
    assert torch.equal(loaded(y, 0.1), full(y, 0.1))
    # resuming with other settings is refused
    other = {"group_width": 16} if factorised else {"lr": 1e-3}
    with pytest.raises(ValueError, match="other settings"):
        train_denoiser(x, out_dir=tmp_path / "cut", resume=True, **{**kw, **other})


def test_sigma_sampler_and_schedule():
    g = torch.Generator().manual_seed(0)
    s = SigmaSampler("loguniform", 0.01, 1.0, 0, 1, 1.0).sample(20000, g)
    assert s.min() >= 0.01 and s.max() <= 1.0
    # log-uniform: half the mass below the geometric midpoint 0.1 (binomial sd 0.0035)
    assert abs((s < 0.1).double().mean().item() - 0.5) < 0.02
    assert _lr_at(0, 100, 1.0, 10, 0.01) == pytest.approx(0.1)
    assert _lr_at(10, 100, 1.0, 10, 0.01) == pytest.approx(1.0)
    assert _lr_at(100, 100, 1.0, 10, 0.01) == pytest.approx(0.01)
    assert math.isclose(_lr_at(55, 100, 1.0, 10, 0.0), 0.5)


def test_bad_input():
    x, _ = manifold("hypersphere", 50, seed=1, d=2, n=8)
    with pytest.raises(ValueError, match="non-finite"):
        train_denoiser(torch.full((10, 4), float("nan")), steps=2, progress=False)
    with pytest.raises(ValueError, match="unknown architecture"):
        train_denoiser(x, arch="unet", steps=2, progress=False)
    with pytest.raises(ValueError, match="unknown option"):
        train_denoiser(x, steps=2, progress=False, widht=3)
    with pytest.raises(ValueError, match="out_dir"):
        train_denoiser(x, steps=2, progress=False, resume=True)


def test_config_trains_the_same_model_as_the_keywords(tmp_path):
    """``config=TrainConfig`` and the keyword form are one code path: the same bytes on disk."""
    x, _ = manifold("hypersphere", 200, seed=1, d=2, n=8)
    kw = {k: v for k, v in TINY.items() if k != "progress"}
    cfg = TrainConfig.from_kwargs(**kw, steps=20, seed=2)
    a = train_denoiser(x, steps=20, seed=2, out_dir=tmp_path / "a", **TINY)
    b = train_denoiser(x, config=cfg, out_dir=tmp_path / "b", progress=False)
    weights = [(tmp_path / d / "model.safetensors").read_bytes() for d in ("a", "b")]
    assert weights[0] == weights[1]
    assert a.config == b.config and a.history["loss"] == b.history["loss"]
    assert b.config["train"]["steps"] == 20 and b.config["train"]["model"] == {"width": 64, "depth": 2,
                                                                               "gate": True, "squares": True}


def test_config_and_setting_keywords_together_are_refused():
    x, _ = manifold("hypersphere", 50, seed=1, d=2, n=8)
    with pytest.raises(TypeError, match=r"config= and steps=.*config.replace\(steps=...\)"):
        train_denoiser(x, config=QUICK, steps=5, progress=False)
    with pytest.raises(TypeError, match="config= and width="):
        train_denoiser(x, config=QUICK, width=8, progress=False)
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        train_denoiser(x, config=dict(QUICK.to_kwargs()), progress=False)


def test_num_threads_restored_after_success_and_failure(tmp_path):
    """The lock/thread wrapper is undone on any exit: threads restored, the directory's lock freed."""
    from scorelid.runtime.lock import holds_lock

    x, _ = manifold("hypersphere", 50, seed=1, d=2, n=8)
    torch.set_num_threads(2)

    def fail(step, loss):
        assert torch.get_num_threads() == 1 and holds_lock(tmp_path / "m")
        raise KeyError("stop")

    with pytest.raises(KeyError):
        train_denoiser(x, steps=3, width=8, depth=1, num_threads=1, callback=fail, out_dir=tmp_path / "m",
                       progress=False)
    assert torch.get_num_threads() == 2 and not holds_lock(tmp_path / "m")
    train_denoiser(x, steps=3, width=8, depth=1, num_threads=1, out_dir=tmp_path / "m", progress=False)
    assert torch.get_num_threads() == 2 and not holds_lock(tmp_path / "m")
    with pytest.raises(ValueError, match="num_threads must be a positive integer"):
        train_denoiser(x, steps=3, num_threads=0, progress=False)


def test_antithetic_batches_pair_the_noise():
    """Rows 2i+1 repeat row 2i's point and level with the noise negated; the even rows are the
    draws a plain batch makes, so antithetic=False/True differ only in the odd rows."""
    from scorelid.training.loop import draw_batch

    cfg = QUICK.replace(batch_size=8)
    sampler = SigmaSampler("loguniform", 0.01, 1.0, 0, 1, 1.0)
    draws = {}
    for anti in (False, True):
        gen = torch.Generator().manual_seed(3)
        draws[anti] = draw_batch(cfg.replace(antithetic=anti), 100, 5, sampler, gen)
    idx, sig, eps = draws[True]
    assert torch.equal(idx[1::2], idx[0::2]) and torch.equal(sig[1::2], sig[0::2])
    assert torch.equal(eps[1::2], -eps[0::2])
    for a, b in zip(draws[False], draws[True], strict=True):
        assert torch.equal(a[0::2], b[0::2]) and not torch.equal(a[1::2], b[1::2])
    with pytest.raises(ValueError, match="even batch_size"):
        QUICK.replace(batch_size=7)
    with pytest.raises(ValueError, match="antithetic"):
        TrainConfig(antithetic="yes")


def test_antithetic_noise_lowers_the_gradient_variance():
    """The DSM gradient of a partly trained denoiser on S^2 in R^8, over 120 batches of 16 rows at
    sigma in [0.005, 0.05]: antithetic pairs give the same mean gradient (within Monte Carlo error)
    with a much smaller spread, because the term linear in the noise cancels within a pair.
    Measured ratio of spreads: 0.27 here (torch 2.13, CPU)."""
    from scorelid.training.loop import _dsm_loss, draw_batch

    x, _ = manifold("hypersphere", 500, seed=1, d=2, n=8)
    m = train_denoiser(x, steps=60, seed=0, **TINY)
    m.requires_grad_(True)
    sampler = SigmaSampler("loguniform", 0.005, 0.05, 0, 1, 1.0)
    params = list(m.parameters())
    grads = {}
    for anti in (False, True):
        cfg = QUICK.replace(batch_size=16, antithetic=anti)
        gen = torch.Generator().manual_seed(0)
        rows = []
        for _ in range(120):
            idx, sig, eps = draw_batch(cfg, len(x), x.shape[1], sampler, gen)
            y = x[idx] + sig[:, None] * eps
            lid = ((m(y, sig) - x[idx]) ** 2).sum(1) / sig**2
            loss = _dsm_loss(lid, sig, m.scale, m.sigma_data, x.shape[1])
            rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
        grads[anti] = torch.stack(rows).double()
    spread = {a: float(((g - g.mean(0)) ** 2).sum(1).mean()) for a, g in grads.items()}
    ratio = spread[True] / spread[False]
    print(f"gradient spread ratio antithetic/plain: {ratio:.3f}")
    assert ratio < 0.5
    # same expectation: the mean gradients agree within a few standard errors of the plain one
    diff = float(((grads[True].mean(0) - grads[False].mean(0)) ** 2).sum())
    assert diff < 4 * spread[False] / 120


def _pairs_in(x: np.ndarray) -> dict[int, int]:
    """The Clifford torus's (cos, sin) column pairs in raw (unnormalised) points: each column's
    partner (squares summing to 1)."""
    live = [c for c in range(x.shape[1]) if x[:, c].std() > 0]
    return {a: b for a in live for b in live if a != b and (x[:, a] ** 2 + x[:, b] ** 2).std() < 1e-4}


def test_factorize_trains_one_network_per_group_of_independent_circles(tmp_path):
    """8 independent circles (a flat 8-torus in 16 of 18 coordinates, columns permuted) split into
    two networks of 4 circles, each circle's two columns in the same one; a sphere stays one MLP.

    The LID after 800 steps: DSM at sigma 0.05 on 300 held-out points (8 draws each: Monte Carlo
    error of the mean ~0.03) measured 8.01-8.07 over training seeds 0-3 (one MLP of width 64
    trained the same way: 8.01), so |mean - 8| < 0.3 holds with room; after 400 steps the model
    still read 9.6, and one that has not learnt the circles reads 16.
    """
    x, _ = manifold("clifford_torus", 2000, seed=1, d=8, n=18)
    xe, _ = manifold("clifford_torus", 300, seed=2, d=8, n=18)
    kw = {**TINY, "steps": 800, "seed": 0, "factorize": True, "group_width": 32, "antithetic": True}
    m = train_denoiser(x, out_dir=tmp_path / "m", **kw)
    assert m.config["arch"] == "grouped" and m.config["train"]["factorize"] is True
    groups = m.config["net"]["groups"]
    partner = _pairs_in(raw_manifold("clifford_torus", 2000, seed=1, d=8, n=18))
    assert len(groups) == 2 and sorted(c for g in groups for c in g) == sorted(partner)
    assert all(partner[c] in g for g in groups for c in g)
    lid = estimate(m, xe, "dsm", 0.05, seed=0)
    assert abs(lid.mean().item() - 8.0) < 0.3
    loaded = load_denoiser(tmp_path / "m", arch="mlp")  # a factorised MLP loads as an "mlp"
    y = torch.randn(4, 18)
    assert torch.equal(loaded(y, 0.1), m(y, 0.1))
    s, _ = manifold("hypersphere", 500, seed=1, d=4, n=12)
    assert train_denoiser(s, **{**kw, "steps": 2}).config["arch"] == "mlp"
    from scorelid.training.config import factor_groups

    assert factor_groups(x, QUICK) is not None and factor_groups(x, QUICK.replace(factorize=False)) is None
    assert factor_groups(x, QUICK.replace(arch="dit", net={"hidden": 16})) is None  # MLPs only


def test_a_factorised_model_trains_with_its_own_schedule():
    """``group_steps_factor``/``group_lr_factor`` apply where the data splits into several networks
    (8 circles: two) and nowhere else; the model records what it trained with."""
    kw = {**TINY, "width": 16, "steps": 10, "seed": 0, "log_every": 1, "factorize": True, "group_width": 8,
          "group_steps_factor": 2.0, "group_lr_factor": 3.0}
    x, _ = manifold("clifford_torus", 400, seed=1, d=8, n=18)
    m = train_denoiser(x, **kw)
    assert m.config["arch"] == "grouped"
    assert m.config["train"]["steps"] == 20 and m.config["train"]["lr"] == pytest.approx(9e-3)
    assert len(m.history["loss"]) == 20
    s, _ = manifold("hypersphere", 300, seed=1, d=2, n=8)
    one = train_denoiser(s, **kw)
    assert one.config["arch"] == "mlp"
    assert one.config["train"]["steps"] == 10 and one.config["train"]["lr"] == pytest.approx(3e-3)
