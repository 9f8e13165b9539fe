"""Pixel-space DDPM / DDIM (``DDPMPipeline`` / ``DDIMPipeline`` with ``UNet2DModel``): no VAE, no text.

The data is the image itself in ``[-1, 1]`` (``[C, H, W]``, ``H = W = unet.sample_size``); the UNet is
called as ``unet(x_t, t)`` on a discrete VP schedule (``VPDenoiser``).  A UNet that learned its
variance (``out_channels = 2 * in_channels``) gives epsilon in its first half.  The scheduler's
``clip_sample`` (clipping x0 to [-1, 1] while sampling) is not applied: a posterior mean is not clipped.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scorelid.adapters.family import FamilySpec, Wrapped

__all__ = ["PIXEL", "PixelCodec", "PixelUNet"]


class PixelUNet(Wrapped):
    """``unet(x_t, t)`` -> epsilon (first half of a learned-variance output)."""

    def forward(self, x_t: Tensor, t: Tensor):
        out = self.net(x_t, t, return_dict=False)[0]
        if out.shape[1] == 2 * x_t.shape[1]:
            out = out.chunk(2, dim=1)[0]
        return out


class PixelCodec:
    """The identity "codec" of pixel-space models: images ``[B, 3, H, W]`` in ``[-1, 1]`` are the data.

    A one-channel model sees the mean of the three colour channels.
    """

    scaling_factor = 1.0
    shift_factor = 0.0
    scale_factor = 1

    def __init__(self, channels: int = 3, device: str | torch.device = "cpu") -> None:
        self.latent_channels = int(channels)
        self._device = torch.device(device)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def device(self) -> torch.device:
        return self._device

    def encode(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape [B, 3, H, W], got {tuple(images.shape)}")
        x = images.to(self.device, torch.float32)
        if self.latent_channels == 1:
            x = x.mean(dim=1, keepdim=True)
        return x.contiguous()

    def decode(self, latents: Tensor) -> Tensor:
        x = latents.to(self.device, torch.float32).clamp(-1, 1)
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


PIXEL = FamilySpec(
    name="ddpm", pipelines=("DDPMPipeline", "DDIMPipeline"), network="unet", network_class="UNet2DModel",
    kind="vp", latent=False, wrap=lambda net, opts: PixelUNet(net),
    default_size=lambda cfg, scale: int(cfg["sample_size"]),
)
