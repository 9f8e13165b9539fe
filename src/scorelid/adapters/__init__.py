"""Adapters: the only code that knows diffusers.  Each turns a model into ``D(y, sigma)`` (VE scale).

* ``VPDenoiser``: epsilon- / v-prediction UNets on a discrete VP schedule (SD 1.x, 2.x);
* ``FlowDenoiser``: flow-matching transformers (SD3, SD3.5);
* ``LatentCodec``: VAE latents scaled and shifted as the model expects;
* ``load_model``: a local diffusers directory -> all of the above, with cached empty-prompt
  conditioning.
"""

from scorelid.adapters.flow import FlowDenoiser
from scorelid.adapters.loading import DTYPES, LoadedModel, empty_prompt_conditioning, load_model, model_family
from scorelid.adapters.schedule import BELOW_RANGE, NoiseLevel
from scorelid.adapters.vae import LatentCodec
from scorelid.adapters.vp import PREDICTION_TYPES, VPDenoiser

__all__ = [
    "BELOW_RANGE",
    "DTYPES",
    "PREDICTION_TYPES",
    "FlowDenoiser",
    "LatentCodec",
    "LoadedModel",
    "NoiseLevel",
    "VPDenoiser",
    "empty_prompt_conditioning",
    "load_model",
    "model_family",
]
