"""Interrupted commands resume to the uninterrupted result.

* ``kill -9``: a subprocess ``scorelid estimate`` / ``scorelid train`` is killed (SIGKILL) as soon
  as its first part file / checkpoint exists; the same command run again finishes the job, and the
  result equals an uninterrupted run: the identical CSV text, bit-identical weights.
* SIGTERM and SIGINT (sent to this process while ``main`` runs a command): exit 143 / 130 with one
  line, no temporary or half-written file is left, and the same command resumes.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import scorelid
from scorelid.cli import main
from scorelid.data import manifold

N_POINTS = 2000
CHUNK = 25


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the subprocesses run with OMP_NUM_THREADS=1: the same arithmetic
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    x, _ = manifold("hypersphere", 200, seed=1, d=2, n=8)
    np.save(root / "train.npy", x.numpy())
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    scorelid.train_denoiser(x, steps=20, width=16, depth=1, batch_size=32, progress=False,
                            out_dir=root / "model")
    torch.set_num_threads(n)
    pts, _ = manifold("hypersphere", N_POINTS, seed=2, d=2, n=8)
    np.save(root / "pts.npy", pts.numpy())
    return root


def _estimate_args(root: Path, out: Path) -> list[str]:
    # ISM with the exact trace: a few seconds of work in CHUNK-point chunks, killed after the first
    return ["estimate", "--model", str(root / "model"), "--data", str(root / "pts.npy"), "--method", "ism",
            "--trace", "exact", "--n-noise", "4", "--sigma", "0.05", "--seed", "5", "--chunk", str(CHUNK),
            "--no-progress", "--out", str(out)]


def _train_args(root: Path, out: Path) -> list[str]:
    return ["train", "--data", str(root / "train.npy"), "--out", str(out), "--steps", "150", "--width", "16",
            "--depth", "1", "--batch-size", "32", "--checkpoint-every", "5", "--seed", "2", "--no-progress"]


def _kill_when(argv: list[str], ready, sig=signal.SIGKILL, timeout: float = 180) -> subprocess.Popen:
    """Start ``python -m scorelid ARGV``; as soon as ``ready()`` is true, send ``sig``; wait for it."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "scorelid", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"the command ended (rc {proc.returncode}) before it could be interrupted: "
                            f"{proc.stderr.read()[-2000:]}")
            if time.monotonic() - t0 > timeout:
                pytest.fail("the command wrote nothing to interrupt it after")
            time.sleep(0.005)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc


def _parts(out: Path) -> list[Path]:
    d = Path(f"{out}.parts")
    return sorted(d.glob("0*.npy")) if d.is_dir() else []


def test_estimate_killed_with_sigkill_resumes_to_identical_csv(setup, tmp_path, capsys):
    ref = tmp_path / "ref.csv"
    assert main(_estimate_args(setup, ref)) == 0
    out = tmp_path / "lid.csv"
    proc = _kill_when(_estimate_args(setup, out), lambda: len(_parts(out)) >= 1)
    assert proc.returncode == -signal.SIGKILL
    done = len(_parts(out))
    assert 1 <= done < N_POINTS // CHUNK, done  # killed mid-way
    assert not out.exists()  # no output that looks finished

    calls = []
    real = scorelid.estimate

    def counting(*a, **k):
        calls.append(int(k["indices"][0]))
        return real(*a, **k)

    scorelid.estimate = counting
    try:
        capsys.readouterr()
        assert main(_estimate_args(setup, out)) == 0  # the same command
    finally:
        scorelid.estimate = real
    assert len(calls) == N_POINTS // CHUNK - done  # only the missing chunks were computed
    assert out.read_text() == ref.read_text()
    assert not Path(f"{out}.parts").exists()


def test_train_killed_with_sigkill_resumes_to_identical_weights(setup, tmp_path, capsys):
    ref = tmp_path / "ref"
    assert main(_train_args(setup, ref)) == 0
    out = tmp_path / "run"
    proc = _kill_when(_train_args(setup, out), lambda: (out / "checkpoints" / "latest").is_file())
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model.safetensors").exists()
    step = int((out / "checkpoints" / "latest").read_text().strip().split("-")[1])
    assert 5 <= step < 150
    # what a kill during a checkpoint write leaves: a temporary file and a half-written step folder
    ck_root = out / "checkpoints"
    (ck_root / ".latest.x1y2.tmp").write_text("step-")
    half = ck_root / f"step-{step + 5:08d}"
    half.mkdir(exist_ok=True)
    (half / ".state.json.x1y2.tmp").write_text("{")
    capsys.readouterr()
    assert main(_train_args(setup, out)) == 0  # the same command: resumes
    assert f"resuming from {ck_root / f'step-{step:08d}'} at step {step}" in capsys.readouterr().err
    assert not list(ck_root.rglob("*.tmp"))  # the leftovers are gone
    a, b = load_file(ref / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (out / "lid_by_sigma.csv").read_text() == (ref / "lid_by_sigma.csv").read_text()


def _send_during(sig: int, after_calls: int, module, name: str, monkeypatch) -> list:
    """Wrap ``module.name`` so that its ``after_calls``-th call sends ``sig`` to this process."""
    real = getattr(module, name)
    calls = []

    def wrapped(*a, **k):
        calls.append(1)
        if len(calls) == after_calls:
            os.kill(os.getpid(), sig)
            time.sleep(1)  # the handler runs here, in the middle of the work
        return real(*a, **k)

    monkeypatch.setattr(module, name, wrapped)
    return calls


def _no_temporary_files(root: Path) -> None:
    left = [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    assert not left, left


@pytest.fixture
def sigint_raises():
    """Python turns SIGINT into KeyboardInterrupt only if SIGINT was not ignored when it started, and
    a test runner started in the background of a non-interactive shell (``cmd &``) starts with it
    ignored: give this test Python's usual handler, as an interactive Ctrl-C would find it."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.mark.parametrize(("sig", "code", "line"), [(signal.SIGTERM, 143, "scorelid: terminated"),
                                                   (signal.SIGINT, 130, "scorelid: interrupted")])
def test_estimate_sigterm_sigint_exit_cleanly_and_resume(setup, tmp_path, monkeypatch, capsys, sig, code,
                                                         line, sigint_raises):
    pts, _ = manifold("hypersphere", 100, seed=3, d=2, n=8)
    np.save(tmp_path / "few.npy", pts.numpy())
    args = ["estimate", "--model", str(setup / "model"), "--data", str(tmp_path / "few.npy"), "--chunk", "10",
            "--n-noise", "2", "--no-progress"]
    ref = tmp_path / "ref.csv"
    assert main([*args, "--out", str(ref)]) == 0
    out = tmp_path / "lid.csv"
    # the signal arrives while the 4th chunk is computed
    _send_during(sig, 4, scorelid, "estimate", monkeypatch)
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == code
    assert capsys.readouterr().err.strip().splitlines()[-1] == line
    assert not out.exists() and len(_parts(out)) == 3
    _no_temporary_files(tmp_path)
    monkeypatch.undo()
    assert main([*args, "--out", str(out)]) == 0
    assert out.read_text() == ref.read_text()


def test_train_sigterm_mid_checkpoint_leaves_no_junk_and_resumes(setup, tmp_path, monkeypatch, capsys):
    import scorelid.training.checkpoint as ck

    args = _train_args(setup, tmp_path / "ref")
    args[args.index("--steps") + 1] = "30"
    assert main(args) == 0
    out = tmp_path / "run"
    args[args.index("--out") + 1] = str(out)
    # SIGTERM arrives while the 3rd checkpoint's weights are being written
    real = ck.save_file
    calls = []

    def slow_save(tensors, path, metadata=None):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(ck, "save_file", slow_save)
    capsys.readouterr()
    assert main(args) == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == "scorelid: terminated"
    _no_temporary_files(tmp_path)
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-00000010"
    monkeypatch.undo()
    assert main(args) == 0
    a, b = load_file(tmp_path / "ref" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
