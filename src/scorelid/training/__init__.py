"""Training a denoiser by denoising score matching, and its checkpoints (safetensors + JSON).

* ``loop``: ``train_denoiser`` and the recipes;
* ``checkpoint``: ``save_denoiser`` / ``load_denoiser`` and resumable training state.
"""

from scorelid.training.checkpoint import load_denoiser, save_denoiser
from scorelid.training.loop import train_denoiser

__all__ = ["load_denoiser", "save_denoiser", "train_denoiser"]
