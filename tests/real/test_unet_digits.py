"""Digits UNet: diffusers save layout, load through VPDenoiser, estimates on images."""

import json

import numpy as np
import pytest
import torch

from scorelid import estimate
from scorelid.real.datasets import digits
from scorelid.real.unet_digits import load_digits_unet, train_digits_unet


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_train_save_load_estimate(tmp_path, prediction_type):
    x = digits(0)[0][:64]
    info = train_digits_unet(x, tmp_path / "m", prediction_type, steps=3, batch_size=8, channels=(8, 16),
                             progress=False)
    assert np.isfinite(info["final_loss"])
    root = tmp_path / "m"
    assert json.loads((root / "model_index.json").read_text())["unet"] == ["diffusers", "UNet2DModel"]
    assert (root / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(root.rglob("*.bin")) and not list(root.rglob("*.pt"))
    D = load_digits_unet(root)
    assert D.prediction_type == prediction_type
    assert D.sigma_min == pytest.approx(0.01, rel=1e-3)  # DDPM linear betas: sqrt(1e-4 / (1 - 1e-4))
    imgs = torch.as_tensor(x[:4]).reshape(-1, 1, 8, 8)
    assert D(imgs, 0.05).shape == imgs.shape
    lid = estimate(D, imgs, "dsm", 0.05, n_noise=2)
    assert lid.shape == (4,) and torch.isfinite(lid).all()
    with pytest.raises(ValueError, match="below the smallest"):
        D(imgs, 0.001)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="prediction_type"):
        train_digits_unet(np.zeros((4, 64)), tmp_path, "sample", steps=1)
    with pytest.raises(ValueError, match="square"):
        train_digits_unet(np.zeros((4, 10)), tmp_path, steps=1)
    with pytest.raises(FileNotFoundError, match="not a saved digits UNet"):
        load_digits_unet(tmp_path / "none")
