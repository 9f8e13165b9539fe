"""Hub ids resolve through a fabricated offline Hugging Face cache; never the network."""

import shutil

import pytest
import torch
from adapters.tiny_models import cached

from scorelid.adapters import load_model, resolve_model
from scorelid.errors import ModelLoadError


def _fake_cache(root, repo, src, commit="0123456789abcdef0123456789abcdef01234567"):
    d = root / "hub" / f"models--{repo.replace('/', '--')}"
    shutil.copytree(src, d / "snapshots" / commit)
    (d / "refs").mkdir(parents=True)
    (d / "refs" / "main").write_text(commit)
    return d / "snapshots" / commit


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path


def test_hub_id_resolves_offline_and_matches_local(offline_hub):
    snap = _fake_cache(offline_hub, "org/tiny-ddpm", cached("ddpm"))
    assert resolve_model("org/tiny-ddpm") == snap
    assert resolve_model("org/tiny-ddpm", revision="main") == snap
    by_id = load_model("org/tiny-ddpm", cache_dir=offline_hub / "c")
    local = load_model(cached("ddpm"), cache_dir=offline_hub / "c")
    y = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(by_id.denoiser(y, 0.3), local.denoiser(y, 0.3))
    with pytest.raises(ModelLoadError, match="not found in the Hugging Face cache"):
        load_model("org/absent", cache_dir=offline_hub / "c")
    with pytest.raises(ModelLoadError, match="revision 'v9'"):
        resolve_model("org/tiny-ddpm", revision="v9")


def test_unsupported_scheduler_named(tmp_path):
    import json

    model = tmp_path / "m"
    shutil.copytree(cached("ddpm"), model)
    cfg = json.loads((model / "scheduler" / "scheduler_config.json").read_text())
    cfg["_class_name"] = "FlowMatchEulerDiscreteScheduler"
    (model / "scheduler" / "scheduler_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="unsupported scheduler 'FlowMatchEulerDiscreteScheduler'"):
        load_model(model)
