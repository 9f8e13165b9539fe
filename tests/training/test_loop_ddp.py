"""Data-parallel training: 2 gloo processes under torchrun reproduce the single-process run.

Every rank draws the same global batch and takes its contiguous half, so the two runs differ only
in the order of float additions: per-row values come from 32-row instead of 64-row matrix products,
and DDP sums the two halves' gradients before averaging.  Those are float32 rounding differences
(~1e-7 relative per step); 60 Adam steps carry them to ~5e-6 relative in the loss and ~1e-5 in the
weights (measured: 4.1e-6 and 1.2e-5), hence the tolerances below (rtol 1e-4 on the loss curve and
the in-sample LID, 1e-4 of each tensor's scale on the weights).  A control run with another seed
differs by more than 1e-2: the comparison can fail.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scorelid import load_denoiser
from scorelid.cli import main
from scorelid.data import manifold
from scorelid.runtime.distributed import DistInfo
from scorelid.training.loop import train_denoiser

WORKER = Path(__file__).with_name("ddp_train_worker.py")
ARGS = ["--steps", "60", "--batch-size", "64", "--width", "32", "--depth", "2", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def sphere(tmp_path_factory) -> Path:
    """256 points of a 2-sphere in R^8."""
    x, _ = manifold("hypersphere", 256, seed=1, d=2, n=8)
    path = tmp_path_factory.mktemp("data") / "x.npy"
    np.save(path, np.asarray(x, dtype=np.float32))
    return path


def _history(out: Path) -> dict:
    return json.loads((out / "config.json").read_text())["history"]


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.abs(a)))


def test_two_processes_match_one(sphere, tmp_path):
    proc = _torchrun("-m", "scorelid", "train", "--data", str(sphere), "--out", str(tmp_path / "two"), *ARGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("model:") == 1  # only rank 0 reports
    assert main(["train", "--data", str(sphere), "--out", str(tmp_path / "one"), *ARGS]) == 0
    one, two = _history(tmp_path / "one"), _history(tmp_path / "two")

    steps = [s for s, _ in one["loss"]]
    assert steps == list(range(60)) and [s for s, _ in two["loss"]] == steps
    loss1, loss2 = [v for _, v in one["loss"]], [v for _, v in two["loss"]]
    assert _rel(loss1, loss2) < 1e-4
    # lid_by_sigma: the global batch's rows, gathered from both ranks (not one rank's half)
    assert [r["count"] for r in two["lid_by_sigma"]] == [r["count"] for r in one["lid_by_sigma"]]
    assert sum(r["count"] for r in two["lid_by_sigma"]) == 12 * 64  # last 20% of 60 steps
    rows = [(r["mean_lid"], s["mean_lid"]) for r, s in zip(one["lid_by_sigma"], two["lid_by_sigma"],
                                                              strict=True) if r["count"]]
    assert _rel(*zip(*rows, strict=True)) < 1e-4

    w1, w2 = load_denoiser(tmp_path / "one").state_dict(), load_denoiser(tmp_path / "two").state_dict()
    for k in w1:
        scale = float(w1[k].abs().max()) or 1.0
        assert float((w1[k] - w2[k]).abs().max()) <= 1e-4 * scale, k
    assert (tmp_path / "two" / "lid_by_sigma.csv").read_text().count("\n") == 17
    assert (tmp_path / "two" / "checkpoints" / "step-00000060").is_dir()

    # control: another seed is far outside the tolerance
    assert main(["train", "--data", str(sphere), "--out", str(tmp_path / "seed1"), "--seed", "1", *ARGS]) == 0
    assert _rel(loss1, [v for _, v in _history(tmp_path / "seed1")["loss"]]) > 1e-2


def test_failing_rank_is_named_and_only_rank0_writes(sphere, tmp_path):
    """Rank 1's callback raises after step 25: both ranks stop with the same message at the next
    step's all-gather; rank 0 wrote the checkpoints of steps 10 and 20, rank 1 nothing, no model."""
    prefix, out = tmp_path / "w", tmp_path / "out"
    proc = _torchrun(str(WORKER), str(sphere), str(out), "1", "25", str(prefix))
    assert proc.returncode != 0
    for rank in (0, 1):
        msg = Path(f"{prefix}.rank{rank}.err").read_text()
        assert msg == "rank 1 failed: ValueError: callback refused step 25"
    assert Path(f"{prefix}.writes.rank0").read_text().split("\n") == ["checkpoint 10", "checkpoint 20", ""]
    assert Path(f"{prefix}.writes.rank1").read_text() == ""
    assert not (out / "model.safetensors").exists() and not (out / "config.json").exists()
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-00000010", "step-00000020"]


def test_batch_size_must_split_evenly(sphere):
    x = np.load(sphere)
    with pytest.raises(ValueError, match="batch_size 63 must be a multiple of the number of processes"):
        train_denoiser(x, steps=2, batch_size=63, width=8, depth=1, progress=False,
                       dist=DistInfo(rank=0, world_size=2))


def test_one_process_dist_info_is_plain_training(sphere):
    x = torch.from_numpy(np.load(sphere))
    kw = {"steps": 5, "batch_size": 16, "width": 8, "depth": 1, "progress": False, "log_every": 1}
    a, b = train_denoiser(x, **kw), train_denoiser(x, dist=DistInfo(), **kw)
    assert a.history["loss"] == b.history["loss"]
