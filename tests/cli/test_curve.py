"""``scorelid curve`` and ``scorelid estimate --sigma auto / --sigmas``: same numbers as the library,
resumable, independent of the chunking, clear errors."""

import re

import numpy as np
import pandas as pd
import pytest
import torch

import scorelid.sigma.curve
from scorelid import estimate_auto, lid_curve, load_denoiser, train_denoiser
from scorelid.cli import main
from scorelid.data import manifold
from scorelid.sigma import parse_sigmas, select

N = 40
GRID = "0.01:0.3:5"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def setup(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("curve")
    x, _ = manifold("hypersphere", 200, seed=1, d=2, n=8)
    train_denoiser(x, steps=20, width=16, depth=1, batch_size=32, progress=False, out_dir=root / "model")
    pts, _ = manifold("hypersphere", N, seed=2, d=2, n=8)
    np.save(root / "pts.npy", pts.numpy())
    return root, load_denoiser(root / "model"), pts


def _run(root, cmd, out, *extra):
    return main([cmd, "--model", str(root / "model"), "--data", str(root / "pts.npy"), "--n-noise", "4",
                 "--seed", "3", "--chunk", "16", "--no-progress", "--out", str(out), *extra])


def test_estimate_sigma_auto_matches_estimate_auto(setup, tmp_path):
    root, model, pts = setup
    out = tmp_path / "auto.csv"
    assert _run(root, "estimate", out, "--sigma", "auto", "--sigmas", GRID) == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["index", "lid", "method", "sigma", "flatness", "flag", "plateaus"]
    # the 20-step model is poor: many points read above n = 8, and are flagged as in `estimate`
    np.testing.assert_array_equal(df["flag"].fillna("").to_numpy() == "dsm>n", df["lid"].to_numpy() > 8)
    ref = estimate_auto(model, pts, "dsm", GRID, n_noise=4, seed=3)
    np.testing.assert_allclose(df["lid"], ref.lid.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(df["sigma"], ref.sigma.numpy(), rtol=1e-12)
    np.testing.assert_allclose(df["flatness"], ref.flatness.numpy(), rtol=1e-5, atol=1e-6)
    assert (df["index"] == np.arange(N)).all() and not (tmp_path / "auto.csv.parts").exists()
    # each point's plateaus, "sigma:lid:width;..." as estimate_auto finds them (the 20-step model has
    # a training history, so its error floor applies in both)
    want = [";".join(q.as_text() for q in found) for found in ref.plateaus]
    assert df["plateaus"].fillna("").tolist() == want and any(want)


def test_estimate_sigmas_alone_writes_the_curve(setup, tmp_path):
    root, model, pts = setup
    out = tmp_path / "curve.parquet"
    assert _run(root, "estimate", out, "--sigmas", GRID) == 0
    df = pd.read_parquet(out)
    assert list(df.columns) == ["index", "sigma", "lid", "method"] and len(df) == N * 5
    ref = lid_curve(model, pts, parse_sigmas(GRID), n_noise=4, seed=3)  # [S, N]
    np.testing.assert_allclose(df["lid"].to_numpy().reshape(N, 5), ref.T.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(df["sigma"][:5], parse_sigmas(GRID).numpy())
    assert (df["index"].to_numpy().reshape(N, 5) == np.arange(N)[:, None]).all()


def test_curve_command_writes_table_and_plot(setup, tmp_path):
    root, _, _ = setup
    out = tmp_path / "c.csv"
    assert _run(root, "curve", out, "--sigmas", GRID, "--rule", "min_slope") == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["index", "sigma", "lid", "method", "chosen"]
    assert (df.groupby("index")["chosen"].sum() == 1).all()
    curve = torch.from_numpy(df["lid"].to_numpy().reshape(N, 5).T.copy())
    idx, _ = select(curve, parse_sigmas(GRID), "min_slope")
    np.testing.assert_array_equal(df["chosen"].to_numpy().reshape(N, 5).argmax(1), idx.numpy())
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_auto_resumes_and_dataset_rule_ignores_chunking(setup, tmp_path, monkeypatch, capsys):
    root, _, _ = setup
    full = tmp_path / "full.csv"
    assert main(["estimate", "--model", str(root / "model"), "--data", str(root / "pts.npy"),
                 "--n-noise", "4", "--seed", "3", "--chunk", "1000", "--no-progress", "--out", str(full),
                 "--sigma", "auto", "--sigmas", GRID, "--rule", "dataset"]) == 0
    real, calls = scorelid.sigma.curve.lid_curve, []

    def dying(*args, **kwargs):
        calls.append(int(kwargs["indices"][0]))
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    out = tmp_path / "lid.csv"
    monkeypatch.setattr(scorelid.sigma.curve, "lid_curve", dying)
    # an unexpected RuntimeError is an internal error (exit 3), not the user's
    assert _run(root, "estimate", out, "--sigma", "auto", "--sigmas", GRID, "--rule", "dataset") == 3
    assert "internal error: RuntimeError: killed" in capsys.readouterr().err and not out.exists()
    calls.clear()
    counting = lambda *a, **k: (calls.append(1), real(*a, **k))[1]  # noqa: E731
    monkeypatch.setattr(scorelid.sigma.curve, "lid_curve", counting)
    assert _run(root, "estimate", out, "--sigma", "auto", "--sigmas", GRID, "--rule", "dataset") == 0
    assert len(calls) == 1  # only the third chunk (points 32..39) was computed again
    a, b = pd.read_csv(out), pd.read_csv(full)
    np.testing.assert_allclose(a["lid"], b["lid"], rtol=1e-6, atol=1e-6)
    assert a["sigma"].nunique() == 1 and (a["sigma"] == b["sigma"]).all()  # one level for the whole set


@pytest.mark.parametrize(
    ("extra", "msg"),
    [(["--sigma", "0.05", "--sigmas", GRID], "do not go together"),
     (["--rule", "knee"], "--sigma auto only"),
     (["--sigma", "auto", "--rule", "best"], "unknown sigma rule"),
     (["--sigma", "auto", "--sigmas", "0.3:0.01:4"], "--sigmas: .*a < b"),
     (["--sigma", "auto", "--sigmas", "0.01,0.02"], "at least 3 levels")],
)
def test_bad_sigma_options(setup, tmp_path, capsys, extra, msg):
    root, _, _ = setup
    assert _run(root, "estimate", tmp_path / "x.csv", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert re.search(msg, err), err


def test_grid_must_lie_in_the_training_range(setup, tmp_path, capsys):
    root, _, _ = setup  # the model was trained on sigma in [0.002, 2]
    assert _run(root, "estimate", tmp_path / "x.csv", "--sigma", "auto", "--sigmas", "0.001,0.01,0.1") == 2
    assert "1 of 3 levels (0.001) lie outside the noise range" in capsys.readouterr().err
    assert _run(root, "curve", tmp_path / "y.csv", "--sigmas", "0.001,0.01,0.1", "--any-sigma") == 0


def test_sigma_must_be_a_number_or_auto(setup, tmp_path, capsys):
    root, _, _ = setup
    with pytest.raises(SystemExit) as exc:
        _run(root, "estimate", tmp_path / "x.csv", "--sigma", "big")
    assert exc.value.code == 2 and "number or 'auto'" in capsys.readouterr().err


def test_curve_bad_plot_name(setup, tmp_path, capsys):
    root, _, _ = setup
    assert _run(root, "curve", tmp_path / "x.csv", "--plot", str(tmp_path / "x.jpg")) == 2
    assert "--plot must end in .png" in capsys.readouterr().err
