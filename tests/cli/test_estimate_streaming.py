"""``scorelid estimate`` streams: chunked reads and output give the whole-array numbers bit for bit,
rows in input order, a resumed run's file byte-identical to an uninterrupted one, and changed data
refused on resume."""

import numpy as np
import pandas as pd
import pytest
import torch

import scorelid
from scorelid import load_denoiser, train_denoiser
from scorelid.cli import main
from scorelid.data import manifold

N = 24


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x, _ = manifold("hypersphere", 200, seed=1, d=2, n=8)
    train_denoiser(x, steps=20, width=16, depth=1, batch_size=32, progress=False, out_dir=root / "model")
    torch.set_num_threads(threads)
    pts = manifold("hypersphere", N, seed=2, d=2, n=8)[0].numpy()
    np.save(root / "pts.npy", pts)
    pd.DataFrame(pts, columns=[f"x{i}" for i in range(8)]).to_parquet(root / "pts.parquet", index=False,
                                                                     row_group_size=11)
    ref = scorelid.estimate(load_denoiser(root / "model"), torch.from_numpy(pts), "dsm", 0.05, n_noise=4,
                            seed=3).numpy()  # the whole array at once, in the library
    return root, ref


def _args(root, data, out, chunk, *extra):
    return ["estimate", "--model", str(root / "model"), "--data", str(data), "--sigma", "0.05",
            "--n-noise", "4", "--seed", "3", "--chunk", str(chunk), "--no-progress", "--out", str(out),
            *extra]


@pytest.mark.parametrize("chunk", [1, 7, 64])
@pytest.mark.parametrize("data", ["pts.npy", "pts.parquet"])
def test_streamed_rows_are_the_whole_array_results_bit_for_bit(setup, tmp_path, data, chunk):
    root, ref = setup
    out = tmp_path / "lid.csv"
    assert main(_args(root, root / data, out, chunk)) == 0
    df = pd.read_csv(out)
    assert df["index"].tolist() == list(range(N))  # input order
    assert df["lid"].dtype == ref.dtype
    np.testing.assert_array_equal(df["lid"].to_numpy(), ref)  # csv floats are written by repr: exact
    if chunk == 1:
        return  # one call per point: the parquet output is checked with the other chunk sizes
    pq_out = tmp_path / "lid.parquet"
    assert main(_args(root, root / data, pq_out, chunk)) == 0
    table = pd.read_parquet(pq_out)
    assert table["index"].tolist() == list(range(N))
    assert table["lid"].dtype == ref.dtype
    np.testing.assert_array_equal(table["lid"].to_numpy(), ref)
    pd.testing.assert_frame_equal(table, df.fillna({"flag": ""}))


def _interrupt(monkeypatch, after):
    real = scorelid.estimate
    calls = []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == after:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(scorelid, "estimate", dying)
    return real


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_resumed_streamed_run_is_byte_identical(setup, tmp_path, monkeypatch, capsys, suffix):
    root, _ = setup
    ref, out = tmp_path / f"ref{suffix}", tmp_path / f"lid{suffix}"
    assert main(_args(root, root / "pts.parquet", ref, 7)) == 0
    real = _interrupt(monkeypatch, 3)
    assert main(_args(root, root / "pts.parquet", out, 7)) != 0
    assert "killed" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(f".lid{suffix}.*"))  # no half-written output
    monkeypatch.setattr(scorelid, "estimate", real)
    assert main(_args(root, root / "pts.parquet", out, 7)) == 0
    assert out.read_bytes() == ref.read_bytes()
    assert not (tmp_path / f"lid{suffix}.parts").exists()


def test_changed_data_of_the_same_shape_is_refused_on_resume(setup, tmp_path, monkeypatch, capsys):
    root, _ = setup
    data, out = tmp_path / "pts.npy", tmp_path / "lid.csv"
    x = np.load(root / "pts.npy")
    np.save(data, x)
    real = _interrupt(monkeypatch, 2)
    assert main(_args(root, data, out, 7)) != 0
    monkeypatch.setattr(scorelid, "estimate", real)
    x[20, 4] += 1e-4  # a point the interrupted run never reached
    np.save(data, x)
    capsys.readouterr()
    assert main(_args(root, data, out, 7)) == 2
    assert "partial results of a different job" in capsys.readouterr().err
    assert not out.exists()
