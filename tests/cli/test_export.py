"""``scorelid export``: a trained checkpoint to one ONNX file that reproduces PyTorch; ONNX models
through ``scorelid estimate`` (dsm runs, flipd refused in one line, a corrupt file in one line)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from scorelid import estimate, load_denoiser, train_denoiser
from scorelid.cli import main
from scorelid.data import manifold

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("onnx")



@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    x, _ = manifold("hypersphere", 64, seed=1, d=2, n=8)
    root = tmp_path_factory.mktemp("export")
    train_denoiser(x, steps=5, width=16, depth=1, batch_size=32, progress=False, out_dir=root / "model")
    torch.set_num_threads(n)
    code = main(["export", "--model", str(root / "model"), "--out", str(root / "m.onnx")])
    assert code == 0
    pts = root / "pts.npy"
    np.save(pts, manifold("hypersphere", 20, seed=2, d=2, n=8)[0].numpy())
    return root / "model", root / "m.onnx", pts


def test_export_round_trips(exported, capsys):
    model_dir, onnx_path, _ = exported
    assert [p.name for p in onnx_path.parent.glob("m.onnx*")] == ["m.onnx"]  # one file
    model, D = load_denoiser(model_dir), load_denoiser(onnx_path)
    assert D.config == model.config and D.n == model.n
    g = torch.Generator().manual_seed(0)
    for batch in (1, 7, 33):  # dynamic batch dimension
        y = torch.randn(batch, model.n, generator=g)
        s = torch.rand(batch, generator=g) + 0.01
        with torch.inference_mode():
            ref = model(y, s)
        torch.testing.assert_close(D(y, s), ref, rtol=0, atol=1e-5)
    x = torch.from_numpy(np.load(exported[2]))
    np.testing.assert_allclose(estimate(D, x, "dsm", 0.05, n_noise=4).numpy(),
                               estimate(model, x, "dsm", 0.05, n_noise=4).numpy(), rtol=1e-5)


def test_export_refuses_overwrite_and_bad_out(exported, tmp_path, capsys):
    model_dir, onnx_path, _ = exported
    assert main(["export", "--model", str(model_dir), "--out", str(onnx_path)]) == 2
    assert main(["export", "--model", str(model_dir), "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "already exists" in err[0] and ".onnx" in err[1]


def test_estimate_dsm_on_onnx_matches_the_checkpoint(exported, tmp_path):
    model_dir, onnx_path, pts = exported
    outs = []
    for model in (onnx_path, model_dir):
        out = tmp_path / f"{Path(model).name}.csv"
        assert main(["estimate", "--model", str(model), "--data", str(pts), "--method", "dsm",
                     "--sigma", "0.05", "--n-noise", "4", "--out", str(out), "--no-progress"]) == 0
        outs.append(pd.read_csv(out)["lid"].to_numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5)


def test_estimate_flipd_on_onnx_is_one_line(exported, tmp_path, capsys):
    _, onnx_path, pts = exported
    code = main(["estimate", "--model", str(onnx_path), "--data", str(pts), "--method", "flipd",
                 "--sigma", "0.05", "--out", str(tmp_path / "f.csv"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "'flipd'" in err[0] and "dsm" in err[0] and "Traceback" not in err[0]


def test_estimate_corrupt_onnx_is_one_line(tmp_path, exported, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08garbage" * 50)
    code = main(["estimate", "--model", str(bad), "--data", str(exported[2]), "--method", "dsm",
                 "--sigma", "0.05", "--out", str(tmp_path / "o.csv"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "bad.onnx is not a loadable ONNX model" in err[0]


def test_export_of_a_factorised_model_round_trips(tmp_path):
    """One network per independent coordinate group (``GroupedMLP``: batched matmuls, a gather and
    a scatter) exports as well as the plain MLP."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    x, _ = manifold("clifford_torus", 300, seed=1, d=8, n=18)
    try:
        model = train_denoiser(x, steps=5, batch_size=32, factorize=True, group_width=8, gate=True,
                               squares=True, delta=True, skip="wiener", progress=False,
                               out_dir=tmp_path / "model")
    finally:
        torch.set_num_threads(n)
    assert model.config["arch"] == "grouped"
    assert main(["export", "--model", str(tmp_path / "model"), "--out", str(tmp_path / "g.onnx")]) == 0
    D = load_denoiser(tmp_path / "g.onnx", arch="mlp")
    g = torch.Generator().manual_seed(0)
    for batch in (1, 9):
        y = torch.randn(batch, 18, generator=g)
        s = torch.rand(batch, generator=g) + 0.01
        with torch.inference_mode():
            ref = model(y, s)
        torch.testing.assert_close(D(y, s), ref, rtol=0, atol=1e-5)
