"""SDXL (``StableDiffusionXLPipeline``): a VP UNet with two CLIP text encoders and micro-conditioning.

The UNet needs ``added_cond_kwargs = {"text_embeds": pooled, "time_ids": add_time_ids}``.  Both come
as the pipeline makes them without classifier-free guidance: the prompt embedding is the
concatenated penultimate hidden states of both encoders and the pooled vector is
``text_encoder_2``'s, from ``encode_prompt``; ``add_time_ids`` are the pipeline's defaults
``original_size + crops_coords_top_left + target_size = (H, W, 0, 0, H, W)`` for the image size
``H = W = unet.sample_size * vae_scale_factor`` (``_get_add_time_ids``).  The schedule and the
eps / v conversion are SD2's (``VPDenoiser``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from scorelid.adapters.family import FamilySpec, Wrapped

__all__ = ["SDXL", "SDXLUNet", "add_time_ids"]


def add_time_ids(height: int, width: int) -> Tensor:
    """``[1, 6]`` float32: original size, crop top-left (0, 0), target size, as the pipeline's defaults."""
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32)


class SDXLUNet(Wrapped):
    """``unet(x_t, t, encoder_hidden_states, text_embeds, time_ids)`` -> the SDXL UNet's output."""

    def forward(self, x_t: Tensor, t: Tensor, encoder_hidden_states: Tensor, text_embeds: Tensor,
                time_ids: Tensor):
        return self.net(x_t, t, encoder_hidden_states=encoder_hidden_states,
                        added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids})


def _encoder(path: Path, image_size: int):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(
        str(path), unet=None, vae=None, local_files_only=True, torch_dtype=torch.float32
    )

    @torch.inference_mode()
    def encode(prompt: str):
        emb, _, pooled, _ = pipe.encode_prompt(prompt, None, torch.device("cpu"), 1, False)
        return {"encoder_hidden_states": emb.float(), "text_embeds": pooled.float(),
                "time_ids": add_time_ids(image_size, image_size)}

    return encode


SDXL = FamilySpec(
    name="sdxl", pipelines=("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline"),
    network="unet", network_class="UNet2DConditionModel", kind="vp",
    text_parts=("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"),
    make_encoder=_encoder, wrap=lambda net, opts: SDXLUNet(net),
)
