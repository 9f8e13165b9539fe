"""Saving/loading denoisers: identical outputs after a round trip, clear errors for bad checkpoints."""

import json

import pytest
import torch

from scorelid import load_denoiser, save_denoiser
from scorelid.nn import EDMDenoiser
from scorelid.training.checkpoint import latest_train_state, load_train_state, save_train_state


def _model(arch="mlp", skip="wiener"):
    torch.manual_seed(0)
    x = torch.randn(200, 3) @ torch.randn(3, 12)
    stats = EDMDenoiser.data_stats(x)
    net = {"width": 16, "depth": 2} if arch == "mlp" else {"hidden": 16, "heads": 2, "depth": 1}
    m = EDMDenoiser(arch, 12, sigma_data=stats["sigma_data"], skip=skip, rank=stats["U"].shape[1], net=net)
    m.set_data_stats(stats)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)  # non-trivial weights everywhere
    return m.eval()


@pytest.mark.parametrize(("arch", "skip"), [("mlp", "wiener"), ("dit", "edm")])
def test_round_trip_identical_outputs(tmp_path, arch, skip):
    m = _model(arch, skip)
    m.history = {"loss": [[0, 1.0]]}
    save_denoiser(m, tmp_path / "m")
    m2 = load_denoiser(tmp_path / "m")
    y = torch.randn(9, 12)
    assert torch.equal(m(y, 0.05), m2(y, 0.05))
    assert m2.config == m.config and m2.history == {"loss": [[0, 1.0]]}
    assert not m2.training
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    assert load_denoiser(tmp_path / "m" / "config.json").config == m.config


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_denoiser(tmp_path / "nope")
    d = save_denoiser(_model(), tmp_path / "m")
    (d / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="corrupt"):
        load_denoiser(d)
    (d / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="weights not found"):
        load_denoiser(d)
    d2 = save_denoiser(_model(), tmp_path / "m2")
    (d2 / "config.json").write_text("{ half")
    with pytest.raises(ValueError, match="corrupt checkpoint config"):
        load_denoiser(d2)
    (d2 / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a scorelid denoiser"):
        load_denoiser(d2)


def test_wrong_architecture(tmp_path):
    d = save_denoiser(_model("mlp"), tmp_path / "m")
    with pytest.raises(ValueError, match="expected 'dit'"):
        load_denoiser(d, arch="dit")
    meta = json.loads((d / "config.json").read_text())
    meta["config"]["arch"] = "dit"
    meta["config"]["net"] = {"hidden": 16, "heads": 2, "depth": 1}
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match"):
        load_denoiser(d)
    meta["config"]["arch"] = "mlp"
    meta["config"]["net"] = {"width": 32, "depth": 2}  # same keys, other shapes
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match"):
        load_denoiser(d)


def test_train_state_save_drops_leftovers_of_a_killed_write(tmp_path):
    t = {"w": torch.arange(6.0)}
    save_train_state(tmp_path, 10, t, {"note": "a"})
    root = tmp_path / "checkpoints"
    # a run killed while writing step 20: a half-written folder and temporary files
    (root / "step-00000020").mkdir()
    (root / "step-00000020" / "state.safetensors").write_bytes(b"trunc")
    (root / "step-00000020" / ".state.json.abcd.tmp").write_text("{")
    (root / ".latest.abcd.tmp").write_text("step-000")
    assert latest_train_state(tmp_path).name == "step-00000010"  # the pointer still names step 10
    save_train_state(tmp_path, 20, {"w": torch.ones(3)}, {"note": "b"})
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-00000010", "step-00000020"]
    assert sorted(p.name for p in (root / "step-00000020").iterdir()) == ["state.json", "state.safetensors"]
    tensors, meta = load_train_state(latest_train_state(tmp_path))
    assert torch.equal(tensors["w"], torch.ones(3)) and meta == {"step": 20, "note": "b"}
