"""scorelid: local intrinsic dimension of data from diffusion models.

The denoising score-matching loss ``E ||D(x + sigma eps, sigma) - x||^2 / sigma^2`` is at least the
local intrinsic dimension ``d`` of the data at ``x`` for small ``sigma`` (Yeats et al. 2025), so it
is an LID estimator that needs only forward passes.  ``estimate`` computes it and its
alternatives per point from any denoiser ``D(y, sigma)``.
"""

from scorelid.checkpoint import load_denoiser, save_denoiser
from scorelid.curves import lid_curve
from scorelid.denoiser import Denoiser, score, sigma_like
from scorelid.estimators import METHODS, estimate
from scorelid.sigma_select import estimate_auto
from scorelid.train import train_denoiser

__all__ = ["METHODS", "Denoiser", "ScoreLID", "estimate", "estimate_auto", "lid_curve", "load_denoiser",
           "save_denoiser", "score", "sigma_like", "train_denoiser"]
__version__ = "0.1.0"


#: Subpackages and modules reachable as attributes after ``import scorelid`` (imported on first use,
#: so that the CLI starts fast): ``scorelid.analytic.GaussianSubspace(...)``.
_LAZY = ("adapters", "analytic", "baselines", "bench", "checkpoint", "cli", "compare", "curves", "data",
         "denoiser", "distributed", "estimators", "guards", "images", "io", "lock", "nn", "quantize", "real",
         "report", "sigma_select", "train")


def __getattr__(name: str):
    # ScoreLID pulls in scikit-learn (~2 s of import); load it on first use so that the CLI and
    # every torchrun process start without it.
    if name == "ScoreLID":
        from scorelid.estimator import ScoreLID

        return ScoreLID
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"scorelid.{name}")
    raise AttributeError(f"module 'scorelid' has no attribute {name!r}")
