"""``scorelid estimate``: one row per point in input order, csv/parquet, and bad input."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from scorelid import estimate, load_denoiser, train_denoiser
from scorelid.cli import main
from scorelid.data import manifold


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    x, _ = manifold("hypersphere", 200, seed=1, d=2, n=8)
    out = tmp_path_factory.mktemp("est") / "model"
    train_denoiser(x, steps=20, width=16, depth=1, batch_size=32, progress=False, out_dir=out)
    torch.set_num_threads(n)
    return out


@pytest.fixture
def points(tmp_path):
    x, _ = manifold("hypersphere", 25, seed=2, d=2, n=8)
    path = tmp_path / "pts.npy"
    np.save(path, x.numpy())
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_rows_in_input_order_match_library(tmp_path, model_dir, points, suffix, capsys):
    out = tmp_path / f"lid{suffix}"
    code = main(["estimate", "--model", str(model_dir), "--data", str(points), "--method", "dsm",
                 "--sigma", "0.05", "--out", str(out), "--n-noise", "4", "--seed", "3", "--no-progress"])
    assert code == 0
    df = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(df.columns) == ["index", "lid", "method", "sigma", "flag"]
    assert df["index"].tolist() == list(range(25))
    assert (df["method"] == "dsm").all() and (df["sigma"] == 0.05).all()
    x = torch.from_numpy(np.load(points))
    ref = estimate(load_denoiser(model_dir), x, "dsm", 0.05, n_noise=4, seed=3)
    np.testing.assert_allclose(df["lid"].to_numpy(), ref.numpy(), rtol=1e-12)
    assert "mean LID" in capsys.readouterr().err


def test_flipd_hutchinson(tmp_path, model_dir, points):
    out = tmp_path / "f.csv"
    code = main(["estimate", "--model", str(model_dir), "--data", str(points), "--method", "flipd",
                 "--trace", "hutchinson", "--n-probes", "2", "--sigma", "0.02", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    assert len(pd.read_csv(out)) == 25


def _corrupt_weights(model_dir, tmp_path):
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / "config.json").write_text((model_dir / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"\x00" * 20)
    return bad


def _other_arch(model_dir, tmp_path):
    bad = tmp_path / "other"
    bad.mkdir()
    meta = json.loads((model_dir / "config.json").read_text())
    meta["config"]["arch"] = "dit"
    meta["config"]["net"] = {"hidden": 16, "heads": 2, "depth": 1}
    (bad / "config.json").write_text(json.dumps(meta))
    (bad / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes())
    return bad


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_data", "not found"),
        ("missing_model", "not found"),
        ("wrong_dim", "dimension 8"),
        ("nan", "NaN or inf"),
        ("corrupt", "corrupt"),
        ("other_arch", "does not match"),
        ("expect_dit", "expected 'dit'"),
        ("bad_suffix", "--out must end"),
    ],
)
def test_bad_input_one_line(tmp_path, model_dir, points, capsys, case, message):
    model, data, out, extra = model_dir, points, tmp_path / "o.csv", []
    if case == "missing_data":
        data = tmp_path / "none.npy"
    elif case == "missing_model":
        model = tmp_path / "no_model"
    elif case == "wrong_dim":
        data = tmp_path / "w.npy"
        np.save(data, np.zeros((4, 9), dtype=np.float32))
    elif case == "nan":
        data = tmp_path / "n.npy"
        x = np.load(points)
        x[7] = np.nan
        np.save(data, x)
    elif case == "corrupt":
        model = _corrupt_weights(model_dir, tmp_path)
    elif case == "other_arch":
        model = _other_arch(model_dir, tmp_path)
    elif case == "expect_dit":
        extra = ["--arch", "dit"]
    elif case == "bad_suffix":
        out = tmp_path / "o.txt"
    code = main(["estimate", "--model", str(model), "--data", str(data), "--out", str(out),
                 "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not out.exists()


def test_defaults_follow_the_model(tmp_path, capsys):
    """No --method / --sigma: the normal bundle (n <= 1024) at 5% of the training data's scale; a
    model trained on 1000x the data (scorelid train's default recipe follows the scale) reads the
    same points, scaled, the same."""
    from scorelid.training.config import default_sigma

    x, _ = manifold("hypersphere", 200, seed=1, d=2, n=8)
    pts, _ = manifold("hypersphere", 25, seed=2, d=2, n=8)
    tables = []
    for factor in (1.0, 1000.0):
        tag = f"{factor:g}"
        data, model, out = tmp_path / f"x{tag}.npy", tmp_path / f"m{tag}", tmp_path / f"l{tag}.csv"
        np.save(data, factor * x.numpy())
        np.save(tmp_path / "p.npy", factor * pts.numpy())
        assert main(["train", "--data", str(data), "--out", str(model), "--steps", "20", "--width", "16",
                     "--depth", "1", "--batch-size", "32", "--no-progress"]) == 0
        line = [s for s in capsys.readouterr().err.splitlines() if s.startswith("scorelid train: recipe")]
        assert len(line) == 1 and "200 points in R^8" in line[0]
        cfg = load_denoiser(model).config["train"]
        assert cfg["sigma_max"] == pytest.approx(factor * 0.25 * float(x.std(0).max()), rel=0.02)
        assert main(["estimate", "--model", str(model), "--data", str(tmp_path / "p.npy"), "--out", str(out),
                     "--no-progress"]) == 0
        df = pd.read_csv(out)
        sigma = default_sigma(float(load_denoiser(model).scale))
        assert (df["method"] == "normal_bundle").all() and (df["sigma"] == sigma).all()
        tables.append(df)
    assert tables[1]["sigma"][0] == pytest.approx(1000 * tables[0]["sigma"][0])
    # same recipe on the data's scale: the same counts (a few rounding-level flips allowed)
    assert (tables[0]["lid"] == tables[1]["lid"]).mean() >= 0.9  # measured: all 25 equal
