"""scorelid: local intrinsic dimension of data from diffusion models.

The denoising score-matching loss ``E ||D(x + sigma eps, sigma) - x||^2 / sigma^2`` is at least the
local intrinsic dimension ``d`` of the data at ``x`` for small ``sigma`` (Yeats et al. 2025), so it
is an LID estimator that needs only forward passes.  ``estimate`` computes it and its
alternatives per point from any denoiser ``D(y, sigma)``.
"""

from scorelid import _moved
from scorelid.denoiser import Denoiser, score, sigma_like
from scorelid.estimators import METHODS
from scorelid.sigma import estimate, estimate_auto, lid_curve
from scorelid.training import load_denoiser, save_denoiser, train_denoiser

_moved.install()  # the flat layout's import paths (scorelid.train, scorelid.curves, ...) keep working

__all__ = ["METHODS", "Denoiser", "ScoreLID", "estimate", "estimate_auto", "lid_curve", "load_denoiser",
           "save_denoiser", "score", "sigma_like", "train_denoiser"]
__version__ = "0.1.0"


#: Subpackages reachable as attributes after ``import scorelid`` (imported on first use, so that the
#: CLI starts fast): ``scorelid.data.GaussianSubspace(...)``, ``scorelid.bench.run_bench(...)``.
_LAZY = ("adapters", "bench", "cli", "data", "denoiser", "errors", "estimators", "images", "nn", "real",
         "runtime", "sigma", "sklearn", "training")


def __getattr__(name: str):
    # ScoreLID pulls in scikit-learn (~2 s of import); load it on first use so that the CLI and
    # every torchrun process start without it.
    if name == "ScoreLID":
        from scorelid.sklearn import ScoreLID

        return ScoreLID
    import importlib

    if name in _LAZY:
        return importlib.import_module(f"scorelid.{name}")
    if f"scorelid.{name}" in _moved.MOVED:  # an old module name: the alias, with its warning
        return importlib.import_module(f"scorelid.{name}")
    raise AttributeError(f"module 'scorelid' has no attribute {name!r}")
