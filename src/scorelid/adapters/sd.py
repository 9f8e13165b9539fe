"""SD 1.x/2.x (``StableDiffusionPipeline``, VP UNet) and SD3/3.5 (``StableDiffusion3Pipeline``, flow).

Conditioning: SD2 ``encoder_hidden_states`` ``[1, 77, D]``; SD3 also ``pooled_projections``
``[1, P]``; both from the pipeline's own ``encode_prompt`` without classifier-free guidance.
"""

from __future__ import annotations

from pathlib import Path

import torch

from scorelid.adapters.family import FamilySpec

__all__ = ["SD2", "SD3"]


def _sd2_encoder(path: Path, image_size: int):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        str(path), unet=None, vae=None, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False, local_files_only=True, torch_dtype=torch.float32,
    )

    @torch.inference_mode()
    def encode(prompt: str):
        emb, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
        return {"encoder_hidden_states": emb.float()}

    return encode


def _sd3_encoder(path: Path, image_size: int):
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(
        str(path), transformer=None, vae=None, local_files_only=True, torch_dtype=torch.float32
    )

    @torch.inference_mode()
    def encode(prompt: str):
        emb, _, pooled, _ = pipe.encode_prompt(prompt, prompt, prompt, device="cpu",
                                               do_classifier_free_guidance=False)
        return {"encoder_hidden_states": emb.float(), "pooled_projections": pooled.float()}

    return encode


SD2 = FamilySpec(
    name="sd2", pipelines=("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline"),
    network="unet", network_class="UNet2DConditionModel", kind="vp",
    text_parts=("text_encoder", "tokenizer"), make_encoder=_sd2_encoder,
)
SD3 = FamilySpec(
    name="sd3", pipelines=("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline"),
    network="transformer", network_class="SD3Transformer2DModel", kind="flow",
    text_parts=("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "text_encoder_3",
                "tokenizer_3"),
    make_encoder=_sd3_encoder, timestep_scale=None,
)
