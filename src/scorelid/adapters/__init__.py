"""Adapters: the only code that knows diffusers.  Each turns a model into ``D(y, sigma)`` (VE scale).

* ``VPDenoiser``: epsilon- / v-prediction networks on a discrete VP schedule (SD 1.x/2.x, SDXL,
  PixArt-alpha/Sigma, pixel-space DDPM/DDIM);
* ``FlowDenoiser``: flow-matching transformers (SD3/3.5, FLUX.1);
* ``LatentCodec``: VAE latents scaled and shifted as the model expects (``PixelCodec``: none);
* ``load_model``: a local diffusers directory or a hub id -> all of the above, with cached
  prompt conditioning (one module per family: ``sd``, ``sdxl``, ``flux``, ``pixart``, ``pixel``).
"""

from scorelid.adapters.flow import FlowDenoiser
from scorelid.adapters.hub import resolve_model
from scorelid.adapters.loading import (
    DTYPES,
    FAMILIES,
    LoadedModel,
    empty_prompt_conditioning,
    load_model,
    model_family,
    prompt_conditioning,
)
from scorelid.adapters.pixel import PixelCodec
from scorelid.adapters.schedule import BELOW_RANGE, NoiseLevel
from scorelid.adapters.vae import LatentCodec
from scorelid.adapters.vp import PREDICTION_TYPES, VPDenoiser

__all__ = [
    "BELOW_RANGE",
    "DTYPES",
    "FAMILIES",
    "PREDICTION_TYPES",
    "FlowDenoiser",
    "LatentCodec",
    "LoadedModel",
    "NoiseLevel",
    "PixelCodec",
    "VPDenoiser",
    "empty_prompt_conditioning",
    "load_model",
    "model_family",
    "prompt_conditioning",
    "resolve_model",
]
