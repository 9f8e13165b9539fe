"""A small diffusers ``UNet2DModel`` trained on 8x8 digits, estimated through the VP adapter.

No pretrained image model can be downloaded here, so this trains real weights in the format the
image adapters read: a DDPM (linear betas, 1000 steps) epsilon- or v-prediction UNet, saved with
``DDPMPipeline.save_pretrained`` (``model_index.json``, ``unet/``, ``scheduler/``).
``load_digits_unet`` reads it back into ``scorelid.adapters.VPDenoiser`` -- the same class that
turns Stable Diffusion 2's UNet into ``D(y, sigma)`` on the VE scale.  The difference from SD2's
path (``scorelid.adapters.load_model``) is only what surrounds the UNet: pixels instead of VAE
latents and no text conditioning (``UNet2DModel`` takes ``unet(x_t, t)``, which ``VPDenoiser``
already calls when ``conditioning`` is empty), so no wrapper around the network is needed.

Training draws timesteps uniformly from ``[0, max_timestep)`` (default 300: VE levels
``sigma`` from 0.01 to about 1.2 on pixels in ``[0, 1]``), which covers the estimation levels and
the digits' scale; a model meant for sampling would use all 1000 steps.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from scorelid.adapters.vp import PREDICTION_TYPES, VPDenoiser

__all__ = ["build_unet", "load_digits_unet", "train_digits_unet"]


def build_unet(side: int = 8, channels: tuple[int, ...] = (16, 32), layers_per_block: int = 1):
    """An unconditional ``UNet2DModel`` for ``[B, 1, side, side]`` inputs (no attention)."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=side, in_channels=1, out_channels=1, block_out_channels=tuple(channels),
        layers_per_block=layers_per_block, down_block_types=("DownBlock2D",) * len(channels),
        up_block_types=("UpBlock2D",) * len(channels), norm_num_groups=8,
    )


def train_digits_unet(
    x: np.ndarray | Tensor,
    out_dir: str | os.PathLike,
    prediction_type: str = "epsilon",
    steps: int = 800,
    batch_size: int = 64,
    lr: float = 2e-3,
    max_timestep: int = 300,
    channels: tuple[int, ...] = (16, 32),
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a DDPM UNet on square images ``x`` ``[N, side*side]`` (pixels in ``[0, 1]``); save it.

    Loss: ``||f(x_t, t) - target||^2`` with ``target = eps`` (epsilon) or
    ``sqrt(abar) eps - sqrt(1 - abar) x`` (v prediction), ``x_t = sqrt(abar) x + sqrt(1 - abar) eps``,
    ``t ~ U{0..max_timestep-1}``.  AdamW, linear warm-up (5%) and cosine decay.

    Returns:
        ``{"path", "prediction_type", "steps", "final_loss", "seconds"}``; the model is in ``out_dir``.
    """
    from diffusers import DDPMPipeline, DDPMScheduler

    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    side = math.isqrt(x.shape[1]) if x.ndim == 2 else 0
    if x.ndim != 2 or side * side != x.shape[1]:
        raise ValueError(f"x must be [N, side*side] square images, got shape {tuple(x.shape)}")
    if not 1 <= max_timestep <= 1000:
        raise ValueError(f"max_timestep must be in [1, 1000], got {max_timestep}")
    x = x.reshape(-1, 1, side, side)
    torch.manual_seed(seed)
    unet = build_unet(side, channels)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type=prediction_type,
                          clip_sample=False)
    abar = sched.alphas_cumprod.to(torch.float32)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    warm = max(1, steps // 20)
    lr_at = lambda s: lr * min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * s / steps))  # noqa: E731
    gen = torch.Generator().manual_seed(seed)
    t0, losses = time.time(), []
    unet.train()
    for step in tqdm(range(steps), desc=f"unet {prediction_type}", disable=not progress):
        idx = torch.randint(0, len(x), (batch_size,), generator=gen)
        t = torch.randint(0, max_timestep, (batch_size,), generator=gen)
        eps = torch.randn(batch_size, *x.shape[1:], generator=gen)
        a = abar[t].view(-1, 1, 1, 1)
        x0 = x[idx]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        target = eps if prediction_type == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0
        loss = (unet(xt, t).sample - target).square().mean()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    unet.eval()
    out = Path(out_dir)
    DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(str(out), safe_serialization=True)
    return {"path": str(out), "prediction_type": prediction_type, "steps": steps,
            "final_loss": float(np.mean(losses[-max(1, steps // 20):])), "seconds": time.time() - t0}


def load_digits_unet(path: str | os.PathLike, below_range: str = "error") -> VPDenoiser:
    """The saved UNet as a VE denoiser ``D(y, sigma)`` on ``[B, 1, side, side]`` images (``VPDenoiser``)."""
    from diffusers import DDPMScheduler, UNet2DModel

    path = Path(path)
    for part, cfg in (("unet", "config.json"), ("scheduler", "scheduler_config.json")):
        if not (path / part / cfg).is_file():
            raise FileNotFoundError(f"not a saved digits UNet: {path / part / cfg} is missing")
    unet = UNet2DModel.from_pretrained(str(path), subfolder="unet", local_files_only=True)
    sched = DDPMScheduler.from_pretrained(str(path), subfolder="scheduler", local_files_only=True)
    return VPDenoiser(unet.eval().requires_grad_(False), sched.alphas_cumprod,
                      prediction_type=sched.config.prediction_type, below_range=below_range)
