"""Sharded, resumable runs: 2 gloo processes give the single-process numbers; failures are named."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import scorelid
from scorelid.data.analytic import GaussianSubspace
from scorelid.runtime.distributed import DistInfo, finish_chunked, init_distributed, run_chunked

G = GaussianSubspace(4, 16, seed=0)
X, _ = G.sample(150, seed=3)
JOB = {"what": "test", "method": "dsm", "sigma": 0.05}


def _compute(method: str):
    def compute(sl: slice) -> np.ndarray:
        idx = torch.arange(sl.start, sl.stop)
        return scorelid.estimate(G, X[sl], method, 0.05, seed=5, indices=idx).numpy()

    return compute


WORKER = Path(__file__).with_name("dist_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path, method="dsm", fail_rank=-1):
    """Run the worker under torchrun with 2 gloo processes; return (returncode, prefix)."""
    prefix = tmp_path / "res"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", str(WORKER), str(tmp_path / "parts"), method,
           str(fail_rank), str(prefix)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(WORKER.parent))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    return proc, prefix


def test_two_gloo_processes_match_one(tmp_path):
    proc, prefix = _launch(tmp_path, "dsm,flipd")  # one launch for both methods (start-up is slow)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for method in ("dsm", "flipd"):
        single = run_chunked(_compute(method), len(X), tmp_path / f"one-{method}", JOB, chunk=32,
                             progress=False)
        two = np.load(f"{prefix}.{method}.rank0.npy")
        assert not Path(f"{prefix}.{method}.rank1.npy").exists()  # only rank 0 gathers
        np.testing.assert_allclose(two, single, rtol=1e-12, atol=1e-12)
        whole = scorelid.estimate(G, X, method, 0.05, seed=5).numpy()
        np.testing.assert_allclose(single, whole, rtol=1e-12, atol=1e-12)


def test_a_failing_rank_is_named_on_every_rank(tmp_path):
    proc, prefix = _launch(tmp_path, fail_rank=1)
    assert proc.returncode != 0
    for rank in (0, 1):
        msg = Path(f"{prefix}.rank{rank}.err").read_text()
        assert msg == "rank 1 failed: ValueError: denoiser returned non-finite values (NaN or inf)"
    assert not list(tmp_path.glob("res.*.npy"))


def test_resume_computes_only_missing_chunks(tmp_path):
    calls = []
    compute = _compute("dsm")
    die = [True]

    def flaky(sl):
        calls.append(sl.start)
        if die[0] and len(calls) == 3:
            raise OSError("disk full")  # the run dies in the middle of the third chunk
        return compute(sl)

    with pytest.raises(OSError, match="disk full"):
        run_chunked(flaky, len(X), tmp_path / "p", JOB, chunk=32, progress=False)
    assert sorted(p.name for p in (tmp_path / "p").glob("0*.npy")) == [f"{0:012d}.npy", f"{32:012d}.npy"]
    calls.clear()
    die[0] = False
    out = run_chunked(flaky, len(X), tmp_path / "p", JOB, chunk=32, progress=False)
    assert calls == [64, 96, 128]  # the two finished chunks were not recomputed
    np.testing.assert_allclose(out, scorelid.estimate(G, X, "dsm", 0.05, seed=5).numpy())
    finish_chunked(tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_parts_of_another_job_are_refused(tmp_path):
    run_chunked(_compute("dsm"), 40, tmp_path / "p", JOB, chunk=32, progress=False)
    with pytest.raises(ValueError, match="different job"):
        run_chunked(_compute("dsm"), 40, tmp_path / "p", JOB | {"sigma": 0.1}, chunk=32,
                    progress=False)


def test_single_process_info():
    info = init_distributed()
    assert info == DistInfo() and info.is_main and not info.active
