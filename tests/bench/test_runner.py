"""The benchmark runner end to end on a micro profile with a closed-form denoiser (no training)."""

import csv
import json

import numpy as np
import pytest
import torch

from scorelid.analytic import GaussianSubspace
from scorelid.bench import RECORD_KEYS, ROW_BUILDERS, Profile, RowSpec, register_rows, run_bench

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
