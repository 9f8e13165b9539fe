"""The benchmark runner end to end on a micro profile with a closed-form denoiser (no training)."""

import csv
import json

import numpy as np
import pytest
import torch

from scorelid.bench import RECORD_KEYS, ROW_BUILDERS, Profile, RowSpec, register_rows, run_bench
from scorelid.data.analytic import GaussianSubspace
from scorelid.sigma import DEFAULT_RULE

D, N_AMB = 2, 6


def micro(**kw) -> Profile:
    base = dict(name="micro", manifolds=("hypersphere", "hyperball"), n_train=200, n_eval=40,
                archs=("mlp",), recipes={"mlp": {}}, sigmas=(0.01, 0.05), bundle_sigmas=(0.05,),
                baselines=("mle", "lpca"), baseline_k=20)
    base.update(kw)
    return Profile(**base)


class Injected:
    """Data: a unit-variance Gaussian on a d-plane per manifold; 'training' returns its exact denoiser."""

    def __init__(self):
        self.trained = []
        names = ("hypersphere", "hyperball")
        self.models = {name: GaussianSubspace(D, N_AMB, seed=i) for i, name in enumerate(names)}

    def data(self, name, num, seed, profile):
        return self.models[name].sample(num, seed=seed)

    def train(self, x, arch, recipe, seed, device, out_dir):
        self.trained.append(out_dir.name)
        name = out_dir.name.split("__")[0]
        return self.models[name]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("micro")
    inj = Injected()
    recs = run_bench(micro(), out, data_fn=inj.data, train_fn=inj.train)
    return out, inj, recs


def test_records_and_known_answers(bench):
    out, inj, recs = bench
    assert inj.trained == ["hypersphere__mlp", "hyperball__mlp"]
    # per manifold: dsm x2, flipd x2, error bundle, normal bundle, 2 baselines
    assert len(recs) == 2 * 8
    for r in recs:
        assert set(RECORD_KEYS) <= set(r)
        assert r["d"] == D and r["n"] == N_AMB and r["n_points"] == 40
        assert r["seconds"] > 0 and r["points_per_second"] > 0
    by = {(r["manifold"], r["method"], r["sigma"]): r for r in recs}
    # closed form: FLIPD = d - d s^2/(1+s^2) + s^2 |z|^2/(1+s^2)^2, within 1e-3 of d at s = 0.01
    assert by[("hyperball", "flipd", 0.01)]["mae"] < 1e-3
    assert by[("hyperball", "flipd", 0.01)]["options"] == "trace=exact"
    assert by[("hypersphere", "lpca", None)]["mae"] == 0.0  # a flat patch: lPCA is exact
    assert by[("hypersphere", "lpca", None)]["arch"] == "knn"
    # the MAE is the mean |lid - d| of the stored per-point values
    with np.load(out / "units" / "hyperball__mlp.npz") as z:
        lid = z["dsm@0.05"]
        assert lid.shape == (40,)
        assert by[("hyperball", "dsm", 0.05)]["mae"] == pytest.approx(np.abs(lid - D).mean(), rel=1e-12)
        assert by[("hyperball", "dsm", 0.05)]["mean_lid"] == pytest.approx(lid.mean(), rel=1e-12)
    # DSM of the exact denoiser is about d (chi^2_d / K spread: mean over 40 points within 0.5)
    assert abs(by[("hyperball", "dsm", 0.05)]["mean_lid"] - D) < 0.5


def test_files(bench):
    out, _, recs = bench
    assert json.loads((out / "results.json").read_text()) == recs
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == len(recs) and list(rows[0])[: len(RECORD_KEYS)] == list(RECORD_KEYS)
    assert (out / "report.md").is_file() and (out / "mae.png").stat().st_size > 1000
    assert (out / "hist_hyperball.png").is_file()
    assert not list(out.rglob("*.tmp"))


def test_resume_skips_finished_units(bench):
    out, _, recs = bench
    inj = Injected()
    again = run_bench(micro(), out, data_fn=inj.data, train_fn=inj.train, report=False)
    assert inj.trained == [] and again == recs
    (out / "units" / "hyperball__mlp.json").unlink()  # as if killed during that unit
    again = run_bench(micro(), out, data_fn=inj.data, train_fn=inj.train, report=False)
    assert inj.trained == ["hyperball__mlp"]
    # recomputed with the same seeds: identical numbers apart from timings
    timing = ("seconds", "points_per_second", "peak_mem_bytes")
    assert [{k: v for k, v in r.items() if k not in timing} for r in again] == \
        [{k: v for k, v in r.items() if k not in timing} for r in recs]


def test_other_profile_in_same_dir_refused(bench):
    out, _, _ = bench
    inj = Injected()
    with pytest.raises(ValueError, match="another profile or seed"):
        run_bench(micro(sigmas=(0.02,)), out, data_fn=inj.data, train_fn=inj.train)
    with pytest.raises(ValueError, match="another profile or seed"):
        run_bench(micro(), out, seed=1, data_fn=inj.data, train_fn=inj.train)


def test_registered_rows_and_errors(tmp_path):
    inj = Injected()

    def half_d(p, n):
        return [RowSpec("const", 0.1, lambda u: torch.full((u.x.shape[0],), 1.0), "test row")]

    register_rows("const", half_d)
    try:
        recs = run_bench(micro(manifolds=("hyperball",), methods=("const",), baselines=()), tmp_path / "r",
                         data_fn=inj.data, train_fn=inj.train, report=False)
    finally:
        ROW_BUILDERS.pop("const")
    assert [(r["method"], r["sigma"], r["mae"]) for r in recs] == [("const", 0.1, 1.0)]
    with pytest.raises(ValueError, match="unknown row builder"):
        run_bench(micro(methods=("nope",)), tmp_path / "x", data_fn=inj.data, train_fn=inj.train)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        run_bench(micro(), tmp_path / "file", data_fn=inj.data, train_fn=inj.train)


class WithHistory(Injected):
    """As ``Injected``, and the 'trained' model carries a training-loss LID curve like train_denoiser's."""

    def train(self, x, arch, recipe, seed, device, out_dir):
        model = super().train(x, arch, recipe, seed, device, out_dir)
        model.history = {"lid_by_sigma": [
            {"sigma_lo": a, "sigma_hi": 2 * a, "sigma_mid": a * 2**0.5, "mean_lid": float(D), "count": 10}
            for a in (0.005, 0.01, 0.02, 0.04, 0.08)]}
        return model


@pytest.fixture(scope="module")
def auto_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("auto")
    inj = WithHistory()
    prof = micro(manifolds=("hyperball",), methods=("dsm", "dsm_auto", "flipd_auto"), baselines=(),
                 sigmas=(0.01, 0.05), auto_sigmas=(0.005, 0.01, 0.02, 0.05, 0.1))
    recs = run_bench(prof, out, data_fn=inj.data, train_fn=inj.train)
    return out, recs


def test_auto_rows(auto_bench):
    out, recs = auto_bench
    by = {(r["method"], r["sigma"]): r for r in recs}
    auto = by[("dsm@auto", None)]
    assert auto["grid"] == [0.005, 0.01, 0.02, 0.05, 0.1] and auto["rule"] == DEFAULT_RULE
    assert auto["options"] == f"K=8,grid=0.005..0.1x5,rule={DEFAULT_RULE}"
    # the curve at a grid level is the fixed-sigma estimate with the same K and seed, exactly
    for s in (0.01, 0.05):
        assert auto["grid_mae"][auto["grid"].index(s)] == pytest.approx(by[("dsm", s)]["mae"], rel=1e-12)
        assert auto["grid_mean_lid"][auto["grid"].index(s)] == pytest.approx(by[("dsm", s)]["mean_lid"],
                                                                             rel=1e-12)
    assert auto["oracle_mae"] == min(auto["grid_mae"])
    assert auto["oracle_sigma"] == auto["grid"][auto["grid_mae"].index(auto["oracle_mae"])]
    assert auto["sigma_q10"] <= auto["sigma_median"] <= auto["sigma_q90"]
    # an exact denoiser of a flat Gaussian: DSM is about d at every level (chi^2_d/K spread), so the
    # chosen level's MAE is that of a fixed level, within the Monte Carlo spread of 40 points
    assert auto["mae"] < 1.0 and abs(auto["mean_lid"] - D) < 0.5
    flipd = by[("flipd@auto", None)]
    assert flipd["options"].startswith("trace=hutchinson,probes=8,")
    assert abs(flipd["mean_lid"] - D) < 0.2  # FLIPD of the exact denoiser: d + O(sigma^2) + probe noise
    with np.load(out / "units" / "hyperball__mlp.extra.npz") as z:
        assert z["dsm@auto::curve"].shape == (5, 40) and z["dsm@auto::sigma"].shape == (40,)
        lid_auto = np.load(out / "units" / "hyperball__mlp.npz")["dsm@auto"]
        level = np.searchsorted(z["dsm@auto::grid"], z["dsm@auto::sigma"])
        picked = z["dsm@auto::curve"][level, np.arange(40)]
        np.testing.assert_allclose(picked, lid_auto, rtol=1e-6)  # the curve is stored as float32
    meta = json.loads((out / "units" / "hyperball__mlp.json").read_text())["meta"]
    assert [r["mean_lid"] for r in meta["lid_by_sigma"]] == [float(D)] * 5


def test_auto_report(auto_bench):
    out, _ = auto_bench
    md = (out / "report.md").read_text()
    assert "## Adaptive sigma (issue 7)" in md and "| MLP DSM σ=auto |" in md
    assert "| first_plateau |" in md and "| min_slope |" in md  # every rule on the stored curves
    for png in ("lid_curves.png", "train_lid.png", "hist_hyperball.png"):
        assert (out / png).stat().st_size > 5000 and f"![{png}]({png})" in md
    # training-loss LID (the bucket holding sigma: D in the injected history) beside the estimate
    line = next(s for s in md.splitlines() if s.startswith("| hyperball (MLP) |"))
    assert line.startswith("| hyperball (MLP) | 2 | 2.0 / ")
    # the histogram figure shows per-point rows only, not the auto rows' curves
    rows = [s for s in md.splitlines() if s.startswith("| MLP ")]
    assert not any("::" in s for s in rows)


def test_csv_holds_lists_as_json(auto_bench):
    out, _ = auto_bench
    rows = {(r["method"], r["sigma"]): r for r in csv.DictReader((out / "results.csv").open())}
    assert json.loads(rows[("dsm@auto", "")]["grid"]) == [0.005, 0.01, 0.02, 0.05, 0.1]


def test_parallel_training_gives_the_same_models_and_numbers(tmp_path, capsys):
    """``train_jobs=2`` trains the missing models in two spawned processes first, then runs the
    units' estimators two at a time: bit-identical models, per-point LIDs and records."""
    import dataclasses

    from scorelid.bench.profiles import get_profile

    p = get_profile("quick", ["hyperball", "clifford_torus"])
    p = dataclasses.replace(p, n_train=200, n_eval=20, recipes={"mlp": {**p.recipes["mlp"], "steps": 40}},
                            methods=("dsm",), baselines=(), dsm_noise=4)
    seq = run_bench(p, tmp_path / "seq", report=False)
    capsys.readouterr()
    par = run_bench(p, tmp_path / "par", report=False, train_jobs=2)
    err = capsys.readouterr().err
    assert "training 2 models, 2 at a time" in err and "estimating 2 units, 2 at a time" in err
    key = lambda r: (r["manifold"], r["method"], r["sigma"])  # noqa: E731
    assert [(key(r), r["mae"], r["mean_lid"]) for r in sorted(seq, key=key)] == \
        [(key(r), r["mae"], r["mean_lid"]) for r in sorted(par, key=key)]
    for m in ("hyperball", "clifford_torus"):
        a = (tmp_path / "seq" / "models" / f"{m}__mlp" / "model.safetensors").read_bytes()
        assert a == (tmp_path / "par" / "models" / f"{m}__mlp" / "model.safetensors").read_bytes()
        lids = [np.load(tmp_path / r / "units" / f"{m}__mlp.npz") for r in ("seq", "par")]
        assert sorted(lids[0].files) == sorted(lids[1].files)
        assert all(np.array_equal(lids[0][k], lids[1][k]) for k in lids[0].files)
        meta = json.loads((tmp_path / "par" / "units" / f"{m}__mlp.json").read_text())["meta"]
        assert meta["train_seconds"] > 0.05  # the worker's training time, not the later load's
    # a rerun finds the models and the units: nothing to train, same records
    assert run_bench(p, tmp_path / "par", report=False, train_jobs=2) == par
    assert "training" not in capsys.readouterr().err
    with pytest.raises(ValueError, match="train_jobs"):
        run_bench(p, tmp_path / "x", train_jobs=0)
    for jobs in (1, 2):  # checked once, before any work, on both paths
        with pytest.raises(ValueError, match="has no recipe for arch 'mlp'"):
            run_bench(dataclasses.replace(p, recipes={}), tmp_path / f"norecipe{jobs}", train_jobs=jobs)
        assert not (tmp_path / f"norecipe{jobs}" / "bench.json").exists()


def test_report_names_factorised_models(tmp_path):
    """A model with coordinate groups (``config["net"]["groups"]``, as ``GroupedMLP``'s) is named in
    the report's first line with its number of networks; the unit's meta keeps the count."""
    inj = Injected()
    inj.models["hyperball"].config = {"arch": "grouped", "net": {"groups": [[0, 1, 2], [3, 4, 5]]}}
    run_bench(micro(baselines=()), tmp_path, data_fn=inj.data, train_fn=inj.train)
    first = (tmp_path / "report.md").read_text().splitlines()[2]
    assert first.endswith("factorised: hyperball (2 networks)"), first
    meta = json.loads((tmp_path / "units" / "hyperball__mlp.json").read_text())["meta"]
    assert meta["networks"] == 2 and "networks" not in json.loads(
        (tmp_path / "units" / "hypersphere__mlp.json").read_text())["meta"]
