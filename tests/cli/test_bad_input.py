"""Bad input to ``scorelid estimate``, ``train``, ``real`` and ``images``: one line naming the problem,
exit code 2 (a user error, never ``internal error``), no traceback, nothing written; ``--force`` is
needed to overwrite a finished output.  Internal errors (exit 3): tests/cli/test_errors.py.

The messages asserted here are the ones listed in docs/reliability.md.
"""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from scorelid import train_denoiser
from scorelid.cli import main
from scorelid.data import manifold

N_DIM = 8


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    x, _ = manifold("hypersphere", 200, seed=1, d=2, n=N_DIM)
    out = tmp_path_factory.mktemp("bad") / "model"
    # log-uniform training noise in [0.002, 2.0] (train_denoiser's defaults)
    train_denoiser(x, steps=10, width=16, depth=1, batch_size=32, progress=False, out_dir=out)
    torch.set_num_threads(n)
    return out


@pytest.fixture
def points(tmp_path):
    x, _ = manifold("hypersphere", 20, seed=2, d=2, n=N_DIM)
    path = tmp_path / "pts.npy"
    np.save(path, x.numpy())
    return path


def _copy_model(model_dir, dest):
    dest.mkdir()
    for f in ("config.json", "model.safetensors"):
        (dest / f).write_bytes((model_dir / f).read_bytes())
    return dest


def _one_line_error(capsys, command):
    """The error line: exactly one, the last line of stderr (after progress notes, if any)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error" in line.lower() or "Traceback" in line]
    assert len(errors) == 1 and errors[0] == err[-1], err
    assert err[-1].startswith(f"scorelid {command}: error: ")
    return err[-1]


# ---- scorelid estimate: data


def _data_case(case, tmp_path, points):
    x = np.load(points)
    p = tmp_path / "data.npy"
    if case == "missing":
        return tmp_path / "none.npy"
    if case == "suffix":
        p = tmp_path / "data.txt"
        p.write_text("1,2,3\n")
    elif case == "garbage_npy":
        p.write_bytes(b"\x93NUMPY garbage")
    elif case == "truncated_npy":
        full = tmp_path / "full.npy"
        np.save(full, x)
        p.write_bytes(full.read_bytes()[:-37])
    elif case == "text_in_csv":
        p = tmp_path / "data.csv"
        rows = [",".join(f"{v:.4f}" for v in r) for r in x[:5]]
        rows[3] = rows[3].replace(rows[3].split(",")[2], "abc", 1)
        p.write_text("\n".join(rows) + "\n")
    elif case == "nan_rows":
        x[7, 2] = np.nan
        x[12, 0] = np.inf
        np.save(p, x)
    elif case == "wrong_dim":
        np.save(p, np.zeros((4, 9), dtype=np.float32))
    elif case == "one_d":
        np.save(p, np.zeros(5, dtype=np.float32))
    elif case == "empty":
        np.save(p, np.zeros((0, N_DIM), dtype=np.float32))
    elif case == "strings":
        np.save(p, np.array([["a"] * N_DIM] * 3))
    return p


DATA_CASES = {
    "missing": "data file not found: ",
    "suffix": "unsupported data format '.txt'",
    "garbage_npy": "cannot read data",
    "truncated_npy": "cannot read data",
    "text_in_csv": "cannot read data",
    "nan_rows": "row 7 has NaN or inf values (2 rows in all, e.g. [7, 12])",
    "wrong_dim": "points have shape (4, 9), but the model",
    "one_d": "data must be 2-D",
    "empty": "data is empty",
    "strings": "data must be numeric",
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_estimate_bad_data(case, tmp_path, model_dir, points, capsys):
    data = _data_case(case, tmp_path, points)
    out = tmp_path / "lid.csv"
    assert main(["estimate", "--model", str(model_dir), "--data", str(data), "--out", str(out),
                 "--no-progress"]) == 2
    assert DATA_CASES[case] in _one_line_error(capsys, "estimate")
    assert not out.exists() and not (tmp_path / "lid.csv.parts").exists()


# ---- scorelid estimate: options


OPTION_CASES = {
    ("--sigma", "0"): "--sigma must be finite and > 0, got 0.0",
    ("--sigma", "-0.1"): "--sigma must be finite and > 0, got -0.1",
    ("--sigma", "nan"): "--sigma must be finite and > 0, got nan",
    ("--sigma", "5"): "--sigma 5 is outside the noise range the model",
    ("--sigma", "0.0001"): "[0.002, 2]; pass --any-sigma to extrapolate",
    ("--n-noise", "0"): "--n-noise must be >= 1, got 0",
    ("--batch-size", "-2"): "--batch-size must be >= 1, got -2",
    ("--method", "normal_bundle", "--n-noise", "4"): "--method normal_bundle needs --n-noise >= n = 8",
    ("--method", "dsm", "--trace", "exact"): "--trace/--n-probes apply to flipd and ism, not dsm",
    ("--chunk", "0"): "--chunk must be >= 1, got 0",
}


@pytest.mark.parametrize("extra", sorted(OPTION_CASES))
def test_estimate_bad_options(extra, tmp_path, model_dir, points, capsys):
    out = tmp_path / "lid.csv"
    assert main(["estimate", "--model", str(model_dir), "--data", str(points), "--out", str(out),
                 "--no-progress", *extra]) == 2
    assert OPTION_CASES[extra] in _one_line_error(capsys, "estimate")
    assert not out.exists()


def test_any_sigma_allows_extrapolation(tmp_path, model_dir, points):
    out = tmp_path / "lid.csv"
    assert main(["estimate", "--model", str(model_dir), "--data", str(points), "--out", str(out),
                 "--sigma", "5", "--any-sigma", "--n-noise", "2", "--no-progress"]) == 0
    assert len(pd.read_csv(out)) == 20


# ---- scorelid estimate: model directories


def _model_case(case, model_dir, tmp_path):
    if case == "missing":
        return tmp_path / "nothing"
    d = _copy_model(model_dir, tmp_path / case)
    w = d / "model.safetensors"
    if case == "truncated_weights":
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    elif case == "pickle_weights":
        w.write_bytes(pickle.dumps({k: v.numpy() for k, v in load_file(w).items()}, protocol=4))
    elif case == "only_pickle":
        w.unlink()
        (d / "model.pt").write_bytes(pickle.dumps({"weights": 1}, protocol=4))
    elif case == "bad_json":
        (d / "config.json").write_text('{"format": "scorelid-denoiser", "config": {')
    elif case == "foreign_json":
        (d / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    elif case == "wider_config":  # a config of another width than the weights
        meta = json.loads((d / "config.json").read_text())
        meta["config"]["net"]["width"] = 32
        (d / "config.json").write_text(json.dumps(meta))
    elif case == "other_arch":
        meta = json.loads((d / "config.json").read_text())
        meta["config"]["arch"] = "dit"
        meta["config"]["net"] = {"hidden": 16, "heads": 2, "depth": 1}
        (d / "config.json").write_text(json.dumps(meta))
    elif case == "broken_config":
        meta = json.loads((d / "config.json").read_text())
        meta["config"]["net"] = {"widht": 16}
        (d / "config.json").write_text(json.dumps(meta))
    elif case == "nan_weights":
        state = load_file(w)
        key = sorted(k for k in state if state[k].is_floating_point() and state[k].numel() > 1)[0]
        state[key][0] = float("nan")
        save_file(state, str(w))
    return d


MODEL_CASES = {
    "missing": "model directory not found",
    "truncated_weights": "(truncated or damaged)",
    "pickle_weights": "is a pickle/zip file (torch.save), not safetensors: scorelid refuses to load it",
    "only_pickle": "holds model.pt but no model.safetensors: scorelid loads only safetensors + JSON",
    "bad_json": "corrupt checkpoint config",
    "foreign_json": "is not a scorelid denoiser config",
    "wider_config": "does not match its architecture",
    "other_arch": "does not match its 'dit' architecture",
    "broken_config": "cannot build the network from its config",
    "nan_weights": "has non-finite weights (NaN or inf) in ",
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_estimate_bad_model(case, tmp_path, model_dir, points, capsys):
    model = _model_case(case, model_dir, tmp_path)
    out = tmp_path / "lid.csv"
    assert main(["estimate", "--model", str(model), "--data", str(points), "--out", str(out),
                 "--no-progress"]) == 2
    assert MODEL_CASES[case] in _one_line_error(capsys, "estimate")
    assert not out.exists()


# ---- --force and flags


def test_estimate_refuses_to_overwrite_without_force(tmp_path, model_dir, points, capsys):
    out = tmp_path / "lid.csv"
    args = ["estimate", "--model", str(model_dir), "--data", str(points), "--out", str(out),
            "--n-noise", "2", "--no-progress"]
    assert main(args) == 0
    first = out.read_text()
    out.write_text("precious\n")
    capsys.readouterr()
    assert main(args) == 2
    assert "already exists (a finished output); pass --force to overwrite it" in _one_line_error(
        capsys, "estimate")
    assert out.read_text() == "precious\n"
    assert main([*args, "--force"]) == 0
    assert out.read_text() == first


def test_estimate_flags_nonfinite_and_out_of_range_rows(tmp_path, model_dir, points, capsys):
    """Far-off rows: 1e30 overflows the float32 network (NaN: 'nonfinite'), 1e4 gives a FLIPD far
    above n ('flipd>n'); the run goes on, the other rows are unflagged and the mean skips NaN."""
    x = np.load(points).astype(np.float64)
    x[3] *= 1e30
    x[11] *= 1e4
    data = tmp_path / "far.npy"
    np.save(data, x.astype(np.float32))
    out = tmp_path / "lid.csv"
    assert main(["estimate", "--model", str(model_dir), "--data", str(data), "--out", str(out),
                 "--method", "flipd", "--no-progress"]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    flags = df["flag"].tolist()
    assert flags[3] == "nonfinite" and df["lid"][3] == "nan"
    assert flags[11] == "flipd>n" and float(df["lid"][11]) > 1e5
    lid = np.array([float(v) for i, v in enumerate(df["lid"]) if i not in (3, 11)])
    want = ["flipd<0" if v < 0 else "flipd>n" if v > N_DIM else "" for v in lid]
    assert [f for i, f in enumerate(flags) if i not in (3, 11)] == want
    err = capsys.readouterr().err.splitlines()
    assert "warning: 1 of 20 points flagged 'nonfinite' (the model returned NaN or inf: lid is NaN)" in err
    assert any(line.startswith("warning: ") and "'flipd>n' (outside [0, n=8])" in line for line in err)
    assert any("over 19 points" in line for line in err)


# ---- scorelid train


TINY = ["--steps", "20", "--width", "16", "--depth", "1", "--batch-size", "16", "--checkpoint-every", "5",
        "--no-progress"]


def test_train_bad_input(tmp_path, points, capsys):
    one = tmp_path / "one.npy"
    np.save(one, np.load(points)[:1])
    assert main(["train", "--data", str(one), "--out", str(tmp_path / "m"), *TINY]) == 2
    assert "training needs at least 2 points, got 1" in _one_line_error(capsys, "train")
    bad = tmp_path / "bad.npy"
    x = np.load(points)
    x[4, 1] = np.nan
    np.save(bad, x)
    assert main(["train", "--data", str(bad), "--out", str(tmp_path / "m"), *TINY]) == 2
    assert "bad.npy: row 4 has NaN or inf values" in _one_line_error(capsys, "train")
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["train", "--data", str(points), "--out", str(f), *TINY]) == 2
    assert "exists and is not a directory" in _one_line_error(capsys, "train")
    assert not (tmp_path / "m").exists()


TRAIN_OPTION_CASES = {
    ("--steps", "0"): "--steps must be >= 1, got 0",
    ("--batch-size", "0"): "--batch-size must be >= 1, got 0",
    ("--width", "0"): "--width must be >= 1, got 0",
    ("--lr", "-1"): "--lr must be > 0, got -1.0",
    ("--ema-decay", "2"): "--ema-decay must be in [0, 1), got 2.0",
    ("--checkpoint-every", "0"): "--checkpoint-every must be >= 1, got 0",
    ("--sigma-min", "0.5", "--sigma-max", "0.1"): "need 0 < --sigma-min < --sigma-max, got 0.5, 0.1",
    ("--sigma-min", "0"): "need 0 < --sigma-min < --sigma-max, got 0, 0.3",
    # torch's message lists the device types it knows
    ("--device", "nosuchdevice:0"): "device 'nosuchdevice:0': Expected one of cpu, cuda",
}


@pytest.mark.parametrize("extra", sorted(TRAIN_OPTION_CASES))
def test_train_bad_options(extra, tmp_path, points, capsys):
    out = tmp_path / "m"
    assert main(["train", "--data", str(points), "--out", str(out), *TINY, *extra]) == 2
    assert TRAIN_OPTION_CASES[extra] in _one_line_error(capsys, "train")
    assert not out.exists()


def test_train_force_damaged_and_foreign_checkpoints(tmp_path, points, capsys):
    out = tmp_path / "m"
    args = ["train", "--data", str(points), "--out", str(out), *TINY]
    assert main(args) == 0
    weights = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    # finished: refused without --force
    assert main(args) == 2
    assert "already holds a finished model; pass --force to retrain it" in _one_line_error(capsys, "train")
    # an unfinished run whose checkpoint was made with other settings: refused, --force starts over
    (out / "model.safetensors").unlink()
    assert main([*args[:-1], "--lr", "0.01", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "resuming from" not in err  # said only once the checkpoint is known to fit
    line = err.strip().splitlines()[-1]
    assert line.startswith("scorelid train: error: ")
    assert "was made with other settings or data (differs in ['lr'])" in line and "--force" in line
    # a damaged checkpoint pointer
    (out / "checkpoints" / "latest").write_text("step-99999999\n")
    assert main(args) == 2
    assert "is incomplete or damaged" in _one_line_error(capsys, "train")
    # a truncated checkpoint
    (out / "checkpoints" / "latest").write_text("step-00000020\n")
    st = out / "checkpoints" / "step-00000020" / "state.safetensors"
    st.write_bytes(st.read_bytes()[:100])
    assert main(args) == 2
    assert "corrupt checkpoint weights" in _one_line_error(capsys, "train")
    # --force: starts over and gives the same model as the first run
    assert main([*args, "--force"]) == 0
    assert (out / "model.safetensors").read_bytes() == weights


def test_train_and_bench_refuse_a_directory_another_run_is_using(tmp_path, points, capsys):
    import socket
    import subprocess
    import sys

    from scorelid.runtime.lock import LOCK_NAME

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for cmd, out in (("train", tmp_path / "m"), ("bench", tmp_path / "b")):
            out.mkdir()
            (out / LOCK_NAME).write_text(json.dumps({"pid": other.pid, "host": socket.gethostname()}))
            extra = (["--data", str(points), *TINY] if cmd == "train"
                     else ["--profile", "quick", "--manifolds", "hypersphere"])
            assert main([cmd, "--out", str(out), *extra]) == 2
            line = _one_line_error(capsys, cmd)
            assert f"{out} is in use by another scorelid run (process {other.pid})" in line
            assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written
    finally:
        other.kill()
        other.wait()


# ---- scorelid real


def test_real_refuses_finished_output_and_bad_sizes(tmp_path, capsys):
    out = tmp_path / "real"
    out.mkdir()
    (out / "results.json").write_text("{}")
    assert main(["real", "--out", str(out), "--no-progress"]) == 2
    assert "results.json already exists (a finished output); pass --force" in _one_line_error(capsys, "real")
    assert main(["real", "--out", str(tmp_path / "r2"), "--n-test", "1780", "--no-progress"]) == 2
    assert "--n-test 1780 leaves too few training digits" in _one_line_error(capsys, "real")
    assert main(["real", "--out", str(tmp_path / "r2"), "--n-patches", "30", "--no-progress"]) == 2
    assert "need n_patches > 40" in _one_line_error(capsys, "real")
    assert main(["real", "--out", str(tmp_path / "r2"), "--sigma", "-1", "--no-progress"]) == 2
    assert "--sigma must be > 0" in _one_line_error(capsys, "real")


def test_estimate_out_of_memory_halves_the_batch_and_reports_it(tmp_path, model_dir, points, monkeypatch,
                                                                capsys):
    """A model that runs out of memory above 16 rows: same table as an unconstrained run, the
    reduced batch size printed, and later chunks start at the reduced size (no second failure)."""
    import scorelid

    args = ["estimate", "--model", str(model_dir), "--data", str(points), "--n-noise", "4", "--chunk", "5",
            "--batch-size", "64", "--no-progress"]
    ref = tmp_path / "ref.csv"
    assert main([*args, "--out", str(ref)]) == 0
    real_load = scorelid.load_denoiser
    failures = []

    class Tight:
        def __init__(self, model):
            self.model = model

        def __getattr__(self, name):
            return getattr(self.model, name)

        def __call__(self, y, sigma):
            if len(y) > 16:
                failures.append(len(y))
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
            return self.model(y, sigma)

    monkeypatch.setattr(scorelid, "load_denoiser", lambda *a, **k: Tight(real_load(*a, **k)))
    out = tmp_path / "lid.csv"
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert out.read_text() == ref.read_text()
    # chunk 1: its 5 points are padded to 16 (fixed call shapes, estimators/api.call_shape), so
    # 16 x 4 draws = 64 rows fail at batch 64, then 32 rows at batch 32; 16 fits.
    # Later chunks start at 16: no further failure.
    assert failures == [64, 32]
    assert sum("out of memory; batch size reduced to 16" in line for line in err) == 1
    assert "final batch size 16 (out of memory at larger sizes)" in err
