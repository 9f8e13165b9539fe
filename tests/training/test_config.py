"""TrainConfig: the recipes are the old dicts' values, validation names the bad field, replace and the
keyword round trip."""

import dataclasses
import inspect
import warnings

import numpy as np
import pytest

from scorelid.training import config as C
from scorelid.training.config import CPU_DIT, PAPER, QUICK, TrainConfig
from scorelid.training.loop import RUN_OPTIONS, train_denoiser

# The recipe dicts as they were written before TrainConfig (scorelid/train.py): the instances must
# give exactly these keywords (bench profiles hash them; scripts pass them to train_denoiser).
# QUICK has since gained antithetic noise pairs and lr 1e-3 (was 2e-3): deliberate changes of the
# recipe's results (docs/training.md), and a factorised model's own schedule (twice the steps at
# three times the rate).
OLD_QUICK = {"arch": "mlp", "width": 256, "depth": 3, "gate": True, "squares": True, "delta": True,
             "skip": "wiener", "c_in": "data", "steps": 3000, "batch_size": 256, "lr": 1e-3, "warmup": 100,
             "sigma_dist": "loguniform", "sigma_min": 0.004, "sigma_max": 0.3, "ema_decay": 0.995,
             "antithetic": True, "factorize": True, "group_steps_factor": 2.0, "group_lr_factor": 3.0,
             "num_threads": 1}
OLD_CPU_DIT = {"arch": "dit", "hidden": 64, "heads": 4, "depth": 4, "patch": 4, "skip": "wiener",
               "steps": 3000, "batch_size": 256, "lr": 2e-3, "warmup": 100, "sigma_dist": "loguniform",
               "sigma_min": 0.004, "sigma_max": 0.3, "ema_decay": 0.995, "num_threads": 1}
OLD_PAPER = {
    "mlp": {"arch": "mlp", "width": 1024, "depth": 6, "gate": True, "squares": True, "delta": True,
            "skip": "wiener", "c_in": "data", "steps": 50_000, "batch_size": 512, "lr": 1e-3, "warmup": 1000,
            "sigma_dist": "loguniform", "sigma_min": 0.002, "sigma_max": 1.0, "ema_decay": 0.9995},
    "dit": {"arch": "dit", "hidden": 128, "heads": 16, "depth": 8, "patch": 4, "skip": "wiener",
            "steps": 50_000, "batch_size": 512, "lr": 3e-4, "warmup": 1000, "sigma_dist": "loguniform",
            "sigma_min": 0.002, "sigma_max": 1.0, "ema_decay": 0.9995},
}


def _value(cfg: TrainConfig, key: str):
    return cfg.net[key] if key in cfg.net else getattr(cfg, key)


@pytest.mark.parametrize(("cfg", "old", "legacy"), [
    (QUICK, OLD_QUICK, C.QUICK_RECIPE),
    (CPU_DIT, OLD_CPU_DIT, C.CPU_DIT_RECIPE),
    (PAPER["mlp"], OLD_PAPER["mlp"], C.PAPER_RECIPE["mlp"]),
    (PAPER["dit"], OLD_PAPER["dit"], C.PAPER_RECIPE["dit"]),
])
def test_recipe_instances_equal_the_old_dicts(cfg, old, legacy):
    for key, v in old.items():
        assert _value(cfg, key) == v and type(_value(cfg, key)) is type(v), key
    # the derived dicts: the same keys in the same order (JSON dumps of them are unchanged)
    assert legacy == old and list(legacy) == list(old)
    # everything a recipe does not name is train_denoiser's default
    default = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name not in old and f.name not in ("net", "named"):
            assert getattr(cfg, f.name) == getattr(default, f.name), f.name
    assert TrainConfig.from_kwargs(**legacy) == cfg


def test_old_import_paths_give_the_recipes():
    from scorelid.training import loop

    assert loop.QUICK_RECIPE is C.QUICK_RECIPE and loop.PAPER_RECIPE is C.PAPER_RECIPE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import scorelid.train as old

        for name in ("QUICK_RECIPE", "CPU_DIT_RECIPE", "PAPER_RECIPE", "SIGMA_DISTS", "SigmaSampler",
                     "lid_by_sigma_rows", "train_denoiser"):
            assert getattr(old, name) is not None, name
        assert old.QUICK_RECIPE == OLD_QUICK


def test_defaults_are_train_denoisers():
    params = inspect.signature(train_denoiser).parameters
    default = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name not in ("net", "named"):
            assert params[f.name].default == getattr(default, f.name), f.name
    assert default.net == {} and set(RUN_OPTIONS) == {"device", "out_dir", "checkpoint_every", "log_every",
                                                      "progress", "resume", "callback", "on_resume", "dist"}
    settings = {f.name for f in dataclasses.fields(TrainConfig)} - {"net", "named"}
    assert settings | set(RUN_OPTIONS) | {"x", "config", "model_kwargs"} == set(params)


@pytest.mark.parametrize(("change", "message"), [
    ({"arch": "unet"}, "unknown architecture 'unet'"),
    ({"widht": 3}, r"unknown option\(s\) \['widht'\] for arch 'mlp'"),
    ({"steps": 0}, "steps must be a positive integer, got 0"),
    ({"steps": 2.5}, "steps must be a positive integer, got 2.5"),
    ({"batch_size": -1}, "batch_size must be a positive integer"),
    ({"n_buckets": 0}, "n_buckets must be a positive integer"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"lr": float("nan")}, "lr must be > 0"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"skip": "none"}, "unknown skip 'none'"),
    ({"c_in": "x"}, "unknown c_in 'x'"),
    ({"sigma_dist": "uniform"}, "unknown sigma_dist 'uniform'"),
    ({"sigma_min": 0.5, "sigma_max": 0.1}, "need 0 < sigma_min < sigma_max, got 0.5, 0.1"),
    ({"sigma_min": 0.0}, "need 0 < sigma_min < sigma_max"),
    ({"p_std": 0.0}, "p_std must be > 0"),
    ({"p_mean": float("inf")}, "p_mean must be a finite number"),
    ({"ema_decay": 1.5}, r"ema_decay must be in \[0, 1\]"),
    ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
    ({"warmup": -1}, "warmup must be an integer >= 0"),
    ({"final_lr_frac": -0.5}, "final_lr_frac must be >= 0"),
    ({"grad_clip": 0.0}, "grad_clip must be > 0 or None"),
    ({"lid_tail": 1.5}, r"lid_tail must be in \[0, 1\]"),
    ({"num_threads": 0}, "num_threads must be a positive integer, got 0"),
    ({"group_steps_factor": 0}, "group_steps_factor must be a positive number, got 0"),
    ({"group_lr_factor": float("nan")}, "group_lr_factor must be a positive number, got nan"),
])
def test_validation_names_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        QUICK.replace(**change)
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_kwargs(**{**QUICK.to_kwargs(), **change})


def test_valid_edge_values():
    cfg = TrainConfig(grad_clip=None, ema_decay=0.0, lid_tail=1.0, warmup=0, num_threads=None)
    assert cfg.grad_clip is None and TrainConfig(sigma_dist="lognormal").sigma_dist == "lognormal"


def test_replace_and_frozen():
    cfg = QUICK.replace(steps=10, width=32, seed=4)
    assert (cfg.steps, cfg.net["width"], cfg.seed, cfg.net["depth"]) == (10, 32, 4, 3)
    assert QUICK.steps == 3000 and QUICK.net["width"] == 256  # the recipe is unchanged
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 5
    # a recipe's named keywords keep their order; new names are appended
    assert list(cfg.to_kwargs(named_only=True)) == [*OLD_QUICK, "seed"]
    # switching the architecture: network options of the old one are refused unless net is replaced
    with pytest.raises(ValueError, match="for arch 'dit'"):
        QUICK.replace(arch="dit")
    dit = QUICK.replace(arch="dit", net={"hidden": 16, "heads": 2})
    assert dit.net == {"hidden": 16, "heads": 2} and dit.c_in == "data"
    assert dit.to_kwargs(named_only=True)["hidden"] == 16 and "width" not in dit.to_kwargs(named_only=True)
    with pytest.raises(TypeError):
        QUICK.replace(named=())
    # the caller's dict is copied
    net = {"width": 8}
    c = TrainConfig(net=net)
    net["width"] = 9
    assert c.net == {"width": 8}


def test_equality_and_hash():
    a = TrainConfig.from_kwargs(**OLD_QUICK)
    assert a == QUICK and hash(a) == hash(QUICK) and len({a, QUICK, CPU_DIT}) == 2
    assert QUICK.replace(width=128) != QUICK


def test_to_kwargs_round_trip():
    flat = CPU_DIT.to_kwargs()
    assert flat["arch"] == "dit" and flat["hidden"] == 64 and flat["p_std"] == 1.2 and "net" not in flat
    assert TrainConfig.from_kwargs(**flat) == CPU_DIT
    rec = QUICK.record(100, "abc")
    assert rec["model"] == QUICK.net and rec["n_train"] == 100 and rec["data"] == "abc"
    assert "num_threads" not in rec  # does not change the weights: a resumed run may use other threads
    with pytest.raises(TypeError, match="flat keywords"):
        TrainConfig.from_kwargs(net={"width": 3})


def test_auto_recipe_puts_the_noise_range_on_the_data_scale():
    """The same recipe for ``x`` and ``1000 x``: noise range and default sigma scale with the data."""
    from scorelid.training.config import (
        AUTO_SIGMA_RANGE,
        AUTO_STEPS,
        auto_recipe,
        data_scale,
        describe_recipe,
    )

    x = np.random.default_rng(0).standard_normal((500, 6)) * [1, 2, 3, 1, 1, 0.5]
    scale = float(x.std(0, ddof=1).max())
    assert data_scale(x) == pytest.approx(scale) and 2.7 < scale < 3.3
    cfg, chosen = auto_recipe(x)
    assert cfg.sigma_min == float(f"{AUTO_SIGMA_RANGE[0] * scale:.2g}")
    assert cfg.sigma_max == float(f"{AUTO_SIGMA_RANGE[1] * scale:.2g}")
    assert cfg.steps == AUTO_STEPS
    # nothing else changes: the network and the schedule are the quick recipe's
    assert cfg.replace(sigma_min=QUICK.sigma_min, sigma_max=QUICK.sigma_max, steps=QUICK.steps,
                       group_steps_factor=QUICK.group_steps_factor) == QUICK
    assert cfg.group_steps_factor == 1.0 and cfg.group_lr_factor == QUICK.group_lr_factor
    big, chosen_big = auto_recipe(1000 * x)
    assert big.sigma_min == pytest.approx(1000 * cfg.sigma_min)
    assert big.sigma_max == pytest.approx(1000 * cfg.sigma_max)
    assert chosen_big["sigma"] == pytest.approx(1000 * chosen["sigma"])
    assert cfg.sigma_min < chosen["sigma"] < cfg.sigma_max  # the default level is a trained one
    assert (chosen["n_points"], chosen["n"], chosen["steps"]) == (500, 6, AUTO_STEPS)
    line = describe_recipe(chosen)
    assert "500 points in R^6" in line and f"estimation sigma {chosen['sigma']:g}" in line
    assert chosen["antithetic"] and "in antithetic pairs" in line
    # another base keeps its network: the DiT recipe
    dit, _ = auto_recipe(x, CPU_DIT)
    assert dit.arch == "dit" and dit.net == CPU_DIT.net


def test_default_sigma_and_bad_scale():
    from scorelid.training.config import data_scale, default_sigma

    assert default_sigma(1.0) == 0.05 and default_sigma(0.9994) == 0.05 and default_sigma(123.4) == 6.2
    with pytest.raises(ValueError, match="zero variance"):
        data_scale(np.ones((10, 3)))
    with pytest.raises(ValueError, match="zero variance"):
        data_scale(np.ones((1, 3)))


def test_group_width_shares_the_mlp_width_out_among_few_groups():
    from scorelid.training.config import group_width

    assert QUICK.net["width"] == 256 and QUICK.group_width == 32
    assert [group_width(QUICK, g) for g in (1, 3, 8, 16, 100)] == [256, 86, 32, 32, 32]
    assert group_width(QUICK.replace(group_width=48), 16) == 48


def test_grouped_schedule_scales_a_factorised_models_steps_and_rate():
    from scorelid.training.config import grouped_schedule

    groups = [[0, 1], [2, 3]]
    assert grouped_schedule(QUICK, None) is QUICK  # one network: the recipe as written
    run = grouped_schedule(QUICK, groups)
    assert (run.steps, run.lr) == (6000, pytest.approx(3e-3))
    short = grouped_schedule(QUICK.replace(steps=7), groups)  # the length a caller sets still counts
    assert short.steps == 14
    plain = TrainConfig()
    assert grouped_schedule(plain, groups) is plain  # factors of 1: nothing to change
