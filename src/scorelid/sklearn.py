"""``ScoreLID``: a scikit-learn style LID estimator (train a denoiser on ``X``, then LID per point).

    >>> from scorelid import ScoreLID
    >>> est = ScoreLID().fit(X)                    # trains a denoiser on X   ([N, n] array)
    >>> est.dimension_, est.dimension_pw_          # mean LID, per-point LID of X ([N])
    >>> est.predict(X_new)                         # per-point LID of new points ([M])
    >>> est.transform(X_new)                       # the same as a column ([M, 1]) for Pipelines

Defaults chosen from the data (``fit`` says what it chose in ``recipe_``, and logs it).  The training
recipe is ``scorelid.training.config.auto_recipe``: the quick recipe with its noise range put on the
data's scale.  ``sigma=None`` is 5% of the data's scale (``sigma_``).  ``method="auto"`` is the
normal bundle for ``n <= scorelid.estimators.AUTO_BUNDLE_MAX_N`` (``method_``): it counts the
directions the denoiser removes noise from instead of summing squared errors, so a model that
removes only part of the noise in a normal direction still counts it.  On curved data nobody tuned
for it reads within 1 of the truth where DSM at the same level reads near the ambient dimension
(benchmarks/unseen_data.py).
Above that size (``K = 2n`` forward passes per point), or with ``n_noise < n``, it is ``"dsm"``.

Like ``skdim.id.*`` estimators, ``fit`` stores ``dimension_pw_`` / ``dimension_``.  Unlike them the
estimate of a new point does not need the training set: it is ``scorelid.estimate(denoiser_, x,
method, sigma)``, so ``predict`` scores points the model never saw.  For anomaly detection use
``method="dsm"``: its reading grows without bound off the data (the normal bundle counts directions
and stays at most ``n - 1``).

Noise seeds.  Each point's noise (DSM) and probes (Hutchinson traces) are seeded by
``(random_state, hash of the point's float32 bytes)``, not by its row number, so a point gets the
same LID whatever batch, order or subset it comes in (``predict(X)[i] == predict(X[i:i+1])``).

Wrapping a trained denoiser: ``ScoreLID.from_denoiser(D, sigma=...)`` (or ``denoiser=D``) uses any
``D(y, sigma)`` (a scorelid checkpoint, a ``scorelid.data.analytic`` closed form, an adapter) with no
training; ``fit(X)`` then only validates ``X`` and computes ``dimension_pw_``.

Persistence: ``save(path)`` writes the denoiser with ``scorelid.save_denoiser`` (``config.json`` +
``model.safetensors``) and the estimator's parameters to ``scorelid_estimator.json``; no pickle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import Tensor

from scorelid.denoiser import Denoiser
from scorelid.estimators import METHODS, estimate, resolve_method
from scorelid.runtime.io import atomic_write_json

if TYPE_CHECKING:
    from scorelid.training.config import TrainConfig

__all__ = ["ESTIMATOR_CONFIG", "ScoreLID", "point_seeds"]

_log = logging.getLogger("scorelid")

#: File beside the denoiser's ``config.json`` holding the estimator's parameters.
ESTIMATOR_CONFIG = "scorelid_estimator.json"
_FORMAT = "scorelid-estimator"
# Parameters that are saved in ESTIMATOR_CONFIG (the denoiser itself goes to safetensors).
_SAVED = ("arch", "method", "sigma", "n_noise", "train_steps", "batch_size", "lr", "random_state",
          "train_options", "estimate_options", "estimate_batch_size")


def point_seeds(x: np.ndarray) -> Tensor:
    """Per-row noise indices ``[N]`` int64 from a hash of each row's float32 bytes (``< 2**56``)."""
    rows = np.ascontiguousarray(x.reshape(x.shape[0], -1), dtype=np.float32)
    return torch.tensor(
        [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=7).digest(), "little") for r in rows],
        dtype=torch.long,
    )


class ScoreLID(TransformerMixin, BaseEstimator):
    """Per-point local intrinsic dimension from a denoiser trained on the data.

    Args:
        arch: denoiser network, ``"mlp"`` or ``"dit"`` (see ``scorelid.train_denoiser``).
        method: LID estimator, one of ``scorelid.METHODS`` (``"dsm"``: forward passes only;
            ``"flipd"``: exact Jacobian trace by default), or ``"auto"``
            (``scorelid.estimators.resolve_method``).
        sigma: noise level on the VE scale, in the units of ``X``; ``None``: 5% of the data's
            scale (its largest per-coordinate std), ``scorelid.training.config.default_sigma``.
        n_noise: noise draws per point (``None``: the method's default: 8 for ``dsm``/``ism``,
            ``2n`` for the normal bundle).
        train_steps, batch_size, lr: training length, batch rows, peak learning rate; ``None``
            takes the recipe's value (``scorelid.training.config.auto_recipe``).
        device: ``"cpu"``, ``"cuda"``...; ``None``: CUDA when available, else CPU.
        random_state: seeds training and the estimation noise (``None``: 0, so results repeat).
        denoiser: an already-trained ``D(y, sigma)``; when given, ``fit`` does not train.
        train_options: extra keyword arguments for ``train_denoiser``: settings and network options
            override the quick recipe (e.g. ``{"width": 64, "depth": 2}``; for ``arch="dit"`` the
            recipe's MLP options and ``c_in`` are dropped), the others (``out_dir``, ``callback``,
            ...) are passed on.  The estimator's own parameters cannot be set here (``TypeError``).
        estimate_options: extra keyword arguments for ``scorelid.estimate`` (e.g. ``{"trace":
            "hutchinson", "n_probes": 16}`` for FLIPD).
        estimate_batch_size: rows per denoiser call while estimating (``None``: automatic).
        progress: progress bars while training and estimating.

    Attributes (after ``fit``):
        denoiser_: the denoiser used.
        method_, sigma_: the method and noise level used (``method``/``sigma`` resolved).
        recipe_: what the recipe chose from the data (``auto_recipe``), or ``None`` when a
            denoiser was given.
        dimension_pw_: ``[N]`` float64 per-point LID of the training points.
        dimension_: float, their mean.
        n_features_in_: ``n``, the number of columns of ``X``.
    """

    def __init__(
        self,
        arch: str = "mlp",
        method: str = "auto",
        sigma: float | None = None,
        n_noise: int | None = None,
        train_steps: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        device: str | None = None,
        random_state: int | None = None,
        denoiser: Denoiser | None = None,
        train_options: dict[str, Any] | None = None,
        estimate_options: dict[str, Any] | None = None,
        estimate_batch_size: int | None = None,
        progress: bool = False,
    ) -> None:
        self.arch = arch
        self.method = method
        self.sigma = sigma
        self.n_noise = n_noise
        self.train_steps = train_steps
        self.batch_size = batch_size
        self.lr = lr
        self.device = device
        self.random_state = random_state
        self.denoiser = denoiser
        self.train_options = train_options
        self.estimate_options = estimate_options
        self.estimate_batch_size = estimate_batch_size
        self.progress = progress

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_denoiser(cls, denoiser: Denoiser, n_features: int | None = None, **params: Any) -> ScoreLID:
        """An estimator around a trained ``denoiser``: ``predict`` works at once (no ``fit``).

        Args:
            denoiser: any ``D(y, sigma)`` on vectors ``[B, n]``.
            n_features: ``n``; when given, inputs with another width are refused.
            **params: the other constructor parameters (``method``, ``sigma``, ...).
        """
        est = cls(denoiser=denoiser, **params)
        est._check_params()
        est.denoiser_ = denoiser
        est.recipe_ = None
        est.sigma_ = est._resolve_sigma(None)
        if n_features is not None:
            est.n_features_in_ = int(n_features)
        return est

    def _resolve_sigma(self, X: np.ndarray | None) -> float | None:
        """``sigma``, or 5% of the scale of ``X`` / of the denoiser's training data when ``None``."""
        from scorelid.training.config import data_scale, default_sigma

        if self.sigma is not None:
            return float(self.sigma)
        if X is not None:
            return default_sigma(data_scale(X))
        scale = getattr(getattr(self, "denoiser_", None), "scale", None)
        return None if scale is None else default_sigma(float(scale))

    def _method(self, n: int) -> str:
        return resolve_method(self.method, n, self.n_noise)

    def _check_params(self) -> None:
        if self.method not in METHODS and self.method != "auto":
            raise ValueError(f"unknown method {self.method!r}; choose 'auto' or one of {sorted(METHODS)}")
        if self.arch not in ("mlp", "dit"):
            raise ValueError(f"arch must be 'mlp' or 'dit', got {self.arch!r}")
        if self.sigma is not None and not (isinstance(self.sigma, int | float) and self.sigma > 0
                                           and np.isfinite(self.sigma)):
            raise ValueError(f"sigma must be a positive number or None, got {self.sigma!r}")
        if self.n_noise is not None and (not isinstance(self.n_noise, int | np.integer) or self.n_noise < 1):
            raise ValueError(f"n_noise must be an integer >= 1 or None, got {self.n_noise!r}")
        if self.train_steps is not None and (not isinstance(self.train_steps, int | np.integer)
                                             or self.train_steps < 1):
            raise ValueError(f"train_steps must be an integer >= 1 or None, got {self.train_steps!r}")

    def _device(self) -> torch.device:
        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def _train_config(self, X: np.ndarray | None = None) -> tuple[TrainConfig, dict[str, Any]]:
        """The recipe for ``X`` (``auto_recipe``; the plain quick recipe without ``X``) with this
        estimator's settings and ``train_options``; the options that are not settings
        (``out_dir``, ``callback``, ...) apart, for ``train_denoiser``.  Sets ``recipe_``."""
        from scorelid.training.config import QUICK, TrainConfig, auto_recipe, recipe_summary
        from scorelid.training.loop import RUN_OPTIONS

        options = dict(self.train_options or {})
        own = sorted(set(options) & {"arch", "steps", "batch_size", "lr", "seed", "device", "progress",
                                     "config"})
        if own:
            raise TypeError(f"train_options cannot set {own[0]!r}: it is set by ScoreLID's own parameters "
                            "(arch, train_steps, batch_size, lr, random_state, device, progress)")
        run_options = {k: options.pop(k) for k in RUN_OPTIONS if k in options}
        base = QUICK
        if self.arch != QUICK.arch:  # the recipe's network options (and c_in) are for the MLP
            base = QUICK.replace(arch=self.arch, net={}, c_in=TrainConfig().c_in)
        self.recipe_ = None
        if X is not None:
            base, self.recipe_ = auto_recipe(X, base)
        config = base.replace(steps=int(self.train_steps or base.steps),
                              batch_size=int(self.batch_size or base.batch_size),
                              lr=float(self.lr or base.lr), seed=self._seed(), **options)
        if X is not None:  # what is finally used, the user's settings included
            self.recipe_ = recipe_summary(config, X, self.recipe_["scale"])
        return config, run_options

    # ------------------------------------------------------------------ sklearn API
    def fit(self, X: Any, y: Any = None) -> ScoreLID:
        """Train a denoiser on ``X`` ``[N, n]`` (unless one was given) and estimate its LID.

        ``y`` is ignored (present for Pipeline compatibility).
        """
        self._check_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        self.sigma_ = self._resolve_sigma(X)
        self.method_ = self._method(X.shape[1])
        if self.denoiser is not None:
            self.denoiser_ = self.denoiser
            self.recipe_ = None
        else:
            from scorelid.training.config import describe_recipe
            from scorelid.training.loop import train_denoiser

            config, run_options = self._train_config(X)
            self.recipe_["sigma"] = self.sigma_
            _log.info("ScoreLID: %s; method %s", describe_recipe(self.recipe_), self.method_)
            if self.progress:
                print(f"ScoreLID: {describe_recipe(self.recipe_)}; method {self.method_}", file=sys.stderr)
            self.denoiser_ = train_denoiser(torch.tensor(np.asarray(X, dtype=np.float32)), config=config,
                                            device=self._device(), progress=self.progress, **run_options)
        self.dimension_pw_ = self._estimate(X)
        self.dimension_ = float(self.dimension_pw_.mean())
        return self

    def _estimate(self, X: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=self._device())
        fitted = self.sigma is None and hasattr(self, "sigma_")
        sigma = self.sigma_ if fitted else self._resolve_sigma(None)
        if sigma is None:
            raise ValueError("sigma=None needs the data's scale: fit the estimator, or give sigma for a "
                             f"{type(self.denoiser_).__name__} that does not record its training scale")
        method = self._method(X.shape[1])
        lid = estimate(
            self.denoiser_, x, method, float(sigma), n_noise=self.n_noise, seed=self._seed(),
            batch_size=self.estimate_batch_size, indices=point_seeds(X), progress=self.progress,
            **(self.estimate_options or {}),
        )
        return lid.numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Per-point LID ``[M]`` (float64) of points ``X`` ``[M, n]`` under the fitted denoiser."""
        if not hasattr(self, "denoiser_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet; call fit(X) or use "
                "ScoreLID.from_denoiser(D) before predict/transform."
            )
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=not hasattr(self, "n_features_in_"))
        return self._estimate(X)

    def transform(self, X: Any) -> np.ndarray:
        """Per-point LID as a column ``[M, 1]`` (a transformer's output must be 2-D)."""
        return self.predict(X)[:, None]

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit(X).dimension_pw_`` as a column ``[N, 1]`` (no second pass over ``X``)."""
        return self.fit(X, y).dimension_pw_[:, None]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The one output column's name: ``["lid"]``."""
        check_is_fitted(self, "denoiser_")
        return np.asarray(["lid"], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.requires_fit = True
        return tags

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted estimator to directory ``path``; returns it.

        The denoiser goes through ``scorelid.save_denoiser`` (so ``path`` is also a plain
        denoiser directory for ``scorelid.load_denoiser`` and ``scorelid estimate``); the
        parameters and fitted summary go to ``scorelid_estimator.json``.  Only trained scorelid
        denoisers can be saved (a wrapped closed form or adapter has no weights file here).
        """
        from scorelid.nn.precond import EDMDenoiser
        from scorelid.training.checkpoint import save_denoiser

        check_is_fitted(self, "denoiser_")
        if not isinstance(self.denoiser_, EDMDenoiser):
            raise ValueError(
                f"only a scorelid-trained denoiser can be saved, this estimator wraps a "
                f"{type(self.denoiser_).__name__}; save that model with its own format"
            )
        path = Path(path)
        save_denoiser(self.denoiser_, path)
        params = {k: getattr(self, k) for k in _SAVED}
        fitted = {"n_features_in_": getattr(self, "n_features_in_", None),
                  "dimension_": getattr(self, "dimension_", None), "sigma_": getattr(self, "sigma_", None),
                  "method_": getattr(self, "method_", None), "recipe_": getattr(self, "recipe_", None)}
        if hasattr(self, "dimension_pw_"):
            fitted["dimension_pw_"] = [float(v) for v in self.dimension_pw_]
        atomic_write_json(path / ESTIMATOR_CONFIG, {"format": _FORMAT, "version": 1, "params": params,
                                                    "fitted": fitted})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> ScoreLID:
        """Load an estimator written by ``save`` (``FileNotFoundError``/``ValueError`` if absent/corrupt)."""
        from scorelid.training.checkpoint import load_denoiser

        path = Path(path)
        cfg_file = path / ESTIMATOR_CONFIG
        if not cfg_file.is_file():
            raise FileNotFoundError(f"no saved ScoreLID estimator at {path} (missing {ESTIMATOR_CONFIG})")
        try:
            meta = json.loads(cfg_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"corrupt estimator config {cfg_file}: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise ValueError(f"{cfg_file} is not a ScoreLID estimator config")
        params = {k: v for k, v in meta.get("params", {}).items() if k in _SAVED}
        den = load_denoiser(path, device=device or "cpu")
        est = cls(device=device, **params)
        est.denoiser_ = den
        fitted = meta.get("fitted", {})
        if fitted.get("n_features_in_") is not None:
            est.n_features_in_ = int(fitted["n_features_in_"])
        for k in ("sigma_", "method_", "recipe_"):
            if k in fitted:
                setattr(est, k, fitted[k])
        if fitted.get("dimension_pw_") is not None:
            est.dimension_pw_ = np.asarray(fitted["dimension_pw_"], dtype=np.float64)
            est.dimension_ = float(fitted["dimension_"])
        return est
