"""Loading local diffusers directories: both families, cached conditioning, missing parts."""

import json
import shutil

import pytest
import torch
from adapters.tiny_models import cached

from scorelid.adapters import FlowDenoiser, VPDenoiser, empty_prompt_conditioning, load_model


@pytest.mark.parametrize("kind", ["sd2-eps", "sd2-v", "sd3"])
def test_load_each_family(kind, tmp_path):
    m = load_model(cached(kind), cache_dir=tmp_path)
    assert m.image_size == 16
    if kind == "sd3":
        assert isinstance(m.denoiser, FlowDenoiser)
        assert m.codec.latent_channels == 16 and m.codec.shift_factor == pytest.approx(0.0609)
        assert set(m.denoiser.conditioning) == {"encoder_hidden_states", "pooled_projections"}
        assert m.denoiser.sigma_min == pytest.approx(0.003 / 0.997, rel=1e-2)  # shift 3 scheduler
    else:
        assert isinstance(m.denoiser, VPDenoiser)
        assert m.denoiser.prediction_type == ("epsilon" if kind == "sd2-eps" else "v_prediction")
        assert m.denoiser.sigma_min == pytest.approx(0.0292, abs=1e-4)
        assert m.codec.scaling_factor == pytest.approx(0.18215)
    z = m.codec.encode(torch.zeros(2, 3, 16, 16))
    assert z.shape == (2, m.codec.latent_channels, 8, 8) and z.dtype == torch.float32
    out = m.denoiser(z, 0.1)
    assert out.shape == z.shape and torch.isfinite(out).all()


def test_conditioning_cached_and_text_encoders_skipped(tmp_path):
    src = cached("sd3")
    model = tmp_path / "sd3"
    shutil.copytree(src, model)
    cond, file = empty_prompt_conditioning(model, tmp_path / "cache")
    assert file.is_file() and file.suffix == ".safetensors"
    assert cond["encoder_hidden_states"].shape == (1, 77 + 256, 32)
    assert cond["pooled_projections"].shape == (1, 32)
    # empty prompt is not all zeros: it went through the CLIP/T5 encoders
    assert cond["pooled_projections"].abs().sum() > 0
    # with the text encoders gone, a later load reads the cache
    for part in ("text_encoder", "text_encoder_2", "text_encoder_3"):
        shutil.rmtree(model / part)
    m = load_model(model, cache_dir=tmp_path / "cache")
    assert m.conditioning_cache == file
    key = "encoder_hidden_states"
    torch.testing.assert_close(m.denoiser.conditioning[key], cond[key])
    # without the cache they are needed, and the error says which part is missing
    with pytest.raises(FileNotFoundError, match="'text_encoder' is missing"):
        load_model(model, cache_dir=tmp_path / "empty-cache")


def test_missing_parts_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"model_index\.json is missing"):
        load_model(tmp_path / "empty")
    model = tmp_path / "sd2"
    shutil.copytree(cached("sd2-eps"), model)
    empty_prompt_conditioning(model, tmp_path / "c")  # cache first: the error must be about the unet
    for f in (model / "unet").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(FileNotFoundError, match="'unet' has no weights"):
        load_model(model, cache_dir=tmp_path / "c")
    shutil.rmtree(model / "vae")
    with pytest.raises(FileNotFoundError, match="'vae' is missing"):
        load_model(model, cache_dir=tmp_path / "c")
    idx = json.loads((model / "model_index.json").read_text())
    idx.pop("unet")
    (model / "model_index.json").write_text(json.dumps(idx))
    with pytest.raises(ValueError, match="does not list its 'unet' component"):
        load_model(model, cache_dir=tmp_path / "c")
    idx["_class_name"] = "KandinskyPipeline"
    (model / "model_index.json").write_text(json.dumps(idx))
    with pytest.raises(ValueError, match="unknown model family 'KandinskyPipeline'"):
        load_model(model, cache_dir=tmp_path / "c")
