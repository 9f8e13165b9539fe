"""``scorelid train``: end to end on tiny data, resume, and bad input (one line, exit 2)."""

import numpy as np
import pytest
import torch

from scorelid import load_denoiser
from scorelid.cli import main
from scorelid.data import manifold

TINY = ["--steps", "30", "--width", "16", "--depth", "1", "--batch-size", "32", "--no-progress"]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def data(tmp_path):
    x, _ = manifold("hypersphere", 200, seed=1, d=2, n=8)
    path = tmp_path / "x.npy"
    np.save(path, x.numpy())
    return path


def test_train_writes_model_and_lid_by_sigma(tmp_path, data, capsys):
    out = tmp_path / "model"
    assert main(["train", "--data", str(data), "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "mean_lid" in printed and "lid_by_sigma.csv" in printed
    m = load_denoiser(out)
    assert m.n == 8 and m.config["net"]["width"] == 16 and m.config["train"]["steps"] == 30
    lines = (out / "lid_by_sigma.csv").read_text().splitlines()
    assert lines[0] == "sigma_lo,sigma_hi,sigma_mid,mean_lid,count" and len(lines) == 17
    # same data, same seed: the same weights
    out2 = tmp_path / "model2"
    assert main(["train", "--data", str(data), "--out", str(out2), *TINY]) == 0
    y = torch.randn(3, 8)
    assert torch.equal(m(y, 0.1), load_denoiser(out2)(y, 0.1))
    # an existing checkpoint is not overwritten silently; --resume continues (here: already done)
    assert main(["train", "--data", str(data), "--out", str(out), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--out", str(out), "--resume", *TINY]) == 0
    assert torch.equal(m(y, 0.1), load_denoiser(out)(y, 0.1))


def test_train_dit(tmp_path, data):
    out = tmp_path / "dit"
    args = ["--steps", "5", "--arch", "dit", "--hidden", "16", "--heads", "2", "--depth", "1",
            "--no-progress"]
    assert main(["train", "--data", str(data), "--out", str(out), *args]) == 0
    assert load_denoiser(out).config["arch"] == "dit"


def test_train_cpu_dit_recipe(tmp_path, data):
    out = tmp_path / "cd"
    assert main(["train", "--data", str(data), "--out", str(out), "--recipe", "cpu-dit", "--steps", "3",
                 "--no-progress"]) == 0
    cfg = load_denoiser(out).config
    assert cfg["arch"] == "dit" and cfg["net"]["hidden"] == 64 and cfg["net"]["depth"] == 4
    assert cfg["train"]["lr"] == 2e-3 and cfg["train"]["sigma_max"] == 0.3
    # --arch mlp on top of it: the DiT's network options are dropped, the schedule is kept
    out2 = tmp_path / "cdm"
    assert main(["train", "--data", str(data), "--out", str(out2), "--recipe", "cpu-dit", "--arch", "mlp",
                 "--steps", "3", "--width", "16", "--no-progress"]) == 0
    cfg2 = load_denoiser(out2).config
    assert cfg2["arch"] == "mlp" and cfg2["net"]["width"] == 16 and cfg2["train"]["sigma_max"] == 0.3


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "not found"),
        ("nan", "NaN or inf"),
        ("1d", "2-D"),
        ("badarg", "does not apply"),
    ],
)
def test_bad_input_one_line(tmp_path, data, capsys, setup, message):
    path = tmp_path / "bad.npy"
    extra = []
    if setup == "nan":
        x = np.load(data)
        x[3, 1] = np.nan
        np.save(path, x)
    elif setup == "1d":
        np.save(path, np.zeros(5, dtype=np.float32))
    elif setup == "badarg":
        path = data
        extra = ["--hidden", "8"]
    code = main(["train", "--data", str(path), "--out", str(tmp_path / "o"), *TINY, *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_settings_are_a_train_config():
    """The recipe with the flags given on top; --arch on another recipe drops its network options."""
    from scorelid.cli import build_parser
    from scorelid.cli.train import _settings
    from scorelid.training.config import CPU_DIT, PAPER, QUICK

    def settings(*argv):
        return _settings(build_parser().parse_args(["train", "--data", "x.npy", "--out", "o", *argv]))

    assert settings() == QUICK.replace(seed=0)
    assert settings("--steps", "5", "--width", "8") == QUICK.replace(steps=5, width=8, seed=0)
    assert settings("--recipe", "paper", "--arch", "dit") == PAPER["dit"].replace(seed=0)
    dit = settings("--arch", "dit", "--hidden", "16", "--heads", "2")
    assert dit == QUICK.replace(arch="dit", net={"hidden": 16, "heads": 2}, seed=0) and dit.c_in == "data"
    assert settings("--recipe", "cpu-dit", "--arch", "mlp").net == {} != CPU_DIT.net
