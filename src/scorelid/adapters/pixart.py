"""PixArt-alpha / Sigma (``PixArtTransformer2DModel``): a VP transformer with a learned-sigma output.

The network outputs ``2 C`` channels when it learned its variance; epsilon is the first ``C``
(``chunk(2, dim=1)[0]``, as the pipelines do).  Conditioning: T5 ``encoder_hidden_states`` with its
attention mask (``encode_prompt``, ``max_sequence_length`` 120 for alpha, 300 for Sigma; captions
cleaned as the pipeline's default ``clean_caption=True`` does when bs4/ftfy are installed).
PixArt-alpha at ``sample_size == 128`` (1024 px) also takes ``resolution = [[H, W]]`` and
``aspect_ratio = [[H / W]]`` (pixels; square images, no aspect-ratio binning); Sigma takes none.
Schedule: linear betas 1e-4 .. 0.02, epsilon prediction (``VPDenoiser``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from scorelid.adapters.family import FamilySpec, Wrapped

__all__ = ["PIXART_ALPHA", "PIXART_SIGMA", "PixArtNet"]


class PixArtNet(Wrapped):
    """``net(x_t, t, encoder_hidden_states, encoder_attention_mask[, resolution, aspect_ratio])``: epsilon."""

    def forward(self, x_t: Tensor, t: Tensor, encoder_hidden_states: Tensor, encoder_attention_mask: Tensor,
                resolution: Tensor | None = None, aspect_ratio: Tensor | None = None):
        out = self.net(
            x_t, encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask,
            timestep=t, added_cond_kwargs={"resolution": resolution, "aspect_ratio": aspect_ratio},
            return_dict=False,
        )[0]
        if self.net.config.out_channels // 2 == x_t.shape[1]:  # learned sigma
            out = out.chunk(2, dim=1)[0]
        return out


def _make_encoder(sigma: bool):
    def make(path: Path, image_size: int):
        from diffusers import PixArtAlphaPipeline, PixArtSigmaPipeline

        cls = PixArtSigmaPipeline if sigma else PixArtAlphaPipeline
        pipe = cls.from_pretrained(str(path), transformer=None, vae=None, local_files_only=True,
                                   torch_dtype=torch.float32)
        cfg = json_config(path / "transformer" / "config.json")
        micro = not sigma and int(cfg.get("sample_size", 0)) == 128

        @torch.inference_mode()
        def encode(prompt: str):
            emb, mask, _, _ = pipe.encode_prompt(
                prompt, do_classifier_free_guidance=False, device=torch.device("cpu"), clean_caption=True,
                max_sequence_length=300 if sigma else 120,
            )
            cond = {"encoder_hidden_states": emb.float(), "encoder_attention_mask": mask.float()}
            if micro:
                cond["resolution"] = torch.tensor([[image_size, image_size]], dtype=torch.float32)
                cond["aspect_ratio"] = torch.tensor([[1.0]], dtype=torch.float32)
            return cond

        return encode

    return make


def json_config(file: Path) -> dict:
    import json

    return json.loads(file.read_text())


PIXART_ALPHA = FamilySpec(
    name="pixart", pipelines=("PixArtAlphaPipeline",), network="transformer",
    network_class="PixArtTransformer2DModel", kind="vp", text_parts=("text_encoder", "tokenizer"),
    make_encoder=_make_encoder(False), wrap=lambda net, opts: PixArtNet(net),
)
PIXART_SIGMA = FamilySpec(
    name="pixart-sigma", pipelines=("PixArtSigmaPipeline",), network="transformer",
    network_class="PixArtTransformer2DModel", kind="vp", text_parts=("text_encoder", "tokenizer"),
    make_encoder=_make_encoder(True), wrap=lambda net, opts: PixArtNet(net),
)
