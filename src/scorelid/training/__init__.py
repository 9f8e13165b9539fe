"""Training a denoiser by denoising score matching, and its checkpoints (safetensors + JSON).

* ``config``: ``TrainConfig`` (the settings of a run, frozen) and the recipes ``QUICK``, ``CPU_DIT``,
  ``PAPER`` (instances; ``QUICK_RECIPE`` & co. are their ``train_denoiser`` keywords as dicts);
* ``sigma_sampling``: ``SigmaSampler``, the noise-level laws;
* ``state``: a run's resumable state (built, packed into a checkpoint, resumed);
* ``loop``: ``train_denoiser``, the DSM loop;
* ``checkpoint``: ``save_denoiser`` / ``load_denoiser`` and resumable training state on disk.
"""

from scorelid.training.checkpoint import load_denoiser, save_denoiser
from scorelid.training.config import CPU_DIT, PAPER, QUICK, TrainConfig
from scorelid.training.loop import train_denoiser

__all__ = ["CPU_DIT", "PAPER", "QUICK", "TrainConfig", "load_denoiser", "save_denoiser", "train_denoiser"]
