"""VAE latents as the model expects them: ``z = (mean(E(image)) - shift) * scale``.

SD 1.x/2.x: 4 channels, ``scale = 0.18215``, no shift; SD3/SD3.5: 16 channels, ``scale = 1.5305``,
``shift = 0.0609``; both read from the VAE's config.  Encoding takes the posterior mean (the
mode), not a sample, so an image's latent is deterministic.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["LatentCodec"]


class LatentCodec:
    """Images ``[B, 3, H, W]`` in ``[-1, 1]`` <-> model latents ``[B, C, H/f, W/f]`` (float32).

    Args:
        vae: a diffusers ``AutoencoderKL``.
        scaling_factor, shift_factor: latent normalisation (default: from ``vae.config``).
    """

    def __init__(
        self, vae: nn.Module, scaling_factor: float | None = None, shift_factor: float | None = None
    ) -> None:
        cfg = getattr(vae, "config", None)
        self.vae = vae
        self.scaling_factor = float(scaling_factor if scaling_factor is not None else cfg.scaling_factor)
        shift = shift_factor if shift_factor is not None else getattr(cfg, "shift_factor", None)
        self.shift_factor = float(shift or 0.0)
        self.scale_factor = 2 ** (len(cfg.block_out_channels) - 1) if cfg is not None else 8
        self.latent_channels = int(cfg.latent_channels) if cfg is not None else 4

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W]`` in ``[-1, 1]`` -> latents ``[B, C, H/f, W/f]`` float32."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape [B, 3, H, W], got {tuple(images.shape)}")
        z = self.vae.encode(images.to(self.device, self.dtype)).latent_dist.mode()
        return ((z.float() - self.shift_factor) * self.scaling_factor).contiguous()

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Latents -> images ``[B, 3, H, W]`` in ``[-1, 1]`` (float32)."""
        z = latents.to(self.device, torch.float32) / self.scaling_factor + self.shift_factor
        return self.vae.decode(z.to(self.dtype)).sample.float().clamp(-1, 1)
