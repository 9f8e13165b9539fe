"""FLUX.1 (``FluxPipeline``, ``FluxTransformer2DModel``): flow matching on packed latents.

LID is measured on the unpacked VAE latent ``[C, H, W]``; the transformer sees it as the pipeline
makes it: packed 2x2 into tokens ``[B, (H/2)(W/2), 4C]`` (``_pack_latents``), ``img_ids`` =
``(0, row, col)`` on the packed grid, zero ``txt_ids``, and the flow time ``s`` itself as its timestep
(the pipeline passes ``t / 1000``).  ``D(y, sigma) = x_s - s v`` with ``s = sigma / (1 + sigma)``
(``FlowDenoiser``).  Models with ``guidance_embeds=True`` (FLUX.1-dev) take a guidance value
(default 3.5, the pipeline's ``guidance_scale``): it is an input of the network, not
classifier-free guidance, and is recorded with every result.  Conditioning: T5
``encoder_hidden_states`` and CLIP ``pooled_projections`` from ``encode_prompt``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from scorelid.adapters.family import FamilySpec, Wrapped

__all__ = ["DEFAULT_GUIDANCE", "FLUX", "FluxNet"]

DEFAULT_GUIDANCE = 3.5


class FluxNet(Wrapped):
    """``net(hidden_states=[B, C, H, W], timestep=s, encoder_hidden_states, pooled_projections)``."""

    def __init__(self, net, guidance: float | None = None) -> None:
        super().__init__(net)
        embeds = bool(getattr(net.config, "guidance_embeds", False))
        self.guidance = (DEFAULT_GUIDANCE if guidance is None else float(guidance)) if embeds else None

    def forward(self, hidden_states: Tensor, timestep: Tensor, encoder_hidden_states: Tensor,
                pooled_projections: Tensor):
        from diffusers import FluxPipeline

        b, c, h, w = hidden_states.shape
        packed = FluxPipeline._pack_latents(hidden_states, b, c, h, w)
        img_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, hidden_states.device,
                                                         hidden_states.dtype)
        txt_ids = torch.zeros(encoder_hidden_states.shape[1], 3, device=hidden_states.device,
                              dtype=hidden_states.dtype)
        guidance = None
        if self.guidance is not None:
            guidance = torch.full([b], self.guidance, device=hidden_states.device, dtype=torch.float32)
        out = self.net(
            hidden_states=packed, timestep=timestep.to(hidden_states.dtype), guidance=guidance,
            pooled_projections=pooled_projections, encoder_hidden_states=encoder_hidden_states,
            txt_ids=txt_ids, img_ids=img_ids, return_dict=False,
        )[0]
        return FluxPipeline._unpack_latents(out, h, w, 1)


def _encoder(path: Path, image_size: int):
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(str(path), transformer=None, vae=None, local_files_only=True,
                                        torch_dtype=torch.float32)

    @torch.inference_mode()
    def encode(prompt: str):
        emb, pooled, _ = pipe.encode_prompt(prompt, None, device=torch.device("cpu"))
        return {"encoder_hidden_states": emb.float(), "pooled_projections": pooled.float()}

    return encode


FLUX = FamilySpec(
    name="flux", pipelines=("FluxPipeline", "FluxImg2ImgPipeline"), network="transformer",
    network_class="FluxTransformer2DModel", kind="flow",
    text_parts=("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"),
    make_encoder=_encoder, wrap=lambda net, opts: FluxNet(net, opts.get("guidance")),
    default_size=lambda cfg, scale: 128 * scale,  # the pipeline's default_sample_size
    timestep_scale=1.0,
)
