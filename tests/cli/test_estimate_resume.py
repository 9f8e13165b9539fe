"""``scorelid estimate`` resumes after an interruption and runs unchanged under torchrun."""

import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import scorelid
from scorelid import load_denoiser, train_denoiser
from scorelid.cli import main
from scorelid.data import manifold

N = 70


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x, _ = manifold("hypersphere", 200, seed=1, d=2, n=8)
    train_denoiser(x, steps=20, width=16, depth=1, batch_size=32, progress=False, out_dir=root / "model")
    torch.set_num_threads(threads)
    pts, _ = manifold("hypersphere", N, seed=2, d=2, n=8)
    np.save(root / "pts.npy", pts.numpy())
    return root


def _args(root, out, *extra):
    return ["estimate", "--model", str(root / "model"), "--data", str(root / "pts.npy"), "--sigma",
            "0.05", "--n-noise", "4", "--seed", "3", "--chunk", "16", "--no-progress", "--out", str(out),
            *extra]


def test_interrupted_run_resumes_without_recomputing(setup, tmp_path, monkeypatch, capsys):
    real = scorelid.estimate
    calls = []

    def dying(*args, **kwargs):
        calls.append(int(kwargs["indices"][0]))
        if len(calls) == 3:
            raise RuntimeError("killed")  # the process dies during the third chunk
        return real(*args, **kwargs)

    out = tmp_path / "lid.csv"
    monkeypatch.setattr(scorelid, "estimate", dying)
    assert main(_args(setup, out)) == 3  # an unexpected RuntimeError: an internal error, not the user's
    assert "internal error: RuntimeError: killed" in capsys.readouterr().err
    assert not out.exists()  # no output that looks complete
    assert len(list((tmp_path / "lid.csv.parts").glob("0*.npy"))) == 2

    calls.clear()
    def counting(*args, **kwargs):
        calls.append(int(kwargs["indices"][0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(scorelid, "estimate", counting)
    assert main(_args(setup, out)) == 0
    assert calls == [32, 48, 64]  # chunks 0 and 16 were not recomputed
    assert not (tmp_path / "lid.csv.parts").exists()
    x = torch.from_numpy(np.load(setup / "pts.npy"))
    ref = real(load_denoiser(setup / "model"), x, "dsm", 0.05, n_noise=4, seed=3)
    np.testing.assert_allclose(pd.read_csv(out)["lid"].to_numpy(), ref.numpy(), rtol=1e-12)


def test_parts_of_another_job_are_refused(setup, tmp_path, capsys):
    out = tmp_path / "lid.csv"
    parts = tmp_path / "lid.csv.parts"
    parts.mkdir()
    (parts / "manifest.json").write_text('{"num": 70, "chunk": 16, "job": "something-else"}')
    assert main(_args(setup, out)) == 2
    assert "partial results of a different job" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("method", ["dsm", "flipd"])
def test_two_torchrun_processes_give_the_single_process_rows(setup, tmp_path, method):
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert main(_args(setup, one, "--method", method)) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", "-m", "scorelid", *_args(setup, two, "--method", method)]
    proc = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = pd.read_csv(one), pd.read_csv(two)
    assert b["index"].tolist() == list(range(N))
    np.testing.assert_allclose(b["lid"].to_numpy(), a["lid"].to_numpy(), rtol=1e-6, atol=1e-9)
