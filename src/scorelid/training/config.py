"""Training settings: the frozen ``TrainConfig`` and the recipes, which are instances of it.

    >>> from scorelid.training.config import QUICK, TrainConfig
    >>> cfg = QUICK.replace(steps=500, width=128)        # a setting, or a network option by name
    >>> train_denoiser(x, config=cfg)                    # the same as train_denoiser(x, **kwargs)

A ``TrainConfig`` holds what decides the trained weights (architecture and network options, length,
batch, learning-rate schedule, EMA, noise-level law, seed) plus ``num_threads``; where the run
writes, its device and its callbacks are arguments of ``train_denoiser``.  Every field is checked
when a config is made: a bad value raises ``ValueError`` naming the field.

Recipes.  ``QUICK`` (CPU MLP), ``CPU_DIT`` (CPU DiT) and ``PAPER["mlp"|"dit"]`` (GPU).  The dicts
of ``train_denoiser`` keywords ``QUICK_RECIPE``, ``CPU_DIT_RECIPE`` and ``PAPER_RECIPE`` are
derived from them (``to_kwargs(named_only=True)``: exactly the keywords each recipe names, so
``train_denoiser(x, **QUICK_RECIPE)`` and code that edits the dicts keep working).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scorelid.data.independence import independent_groups, pack_groups
from scorelid.nn.precond import ARCHS, C_INS, SKIPS, data_scale
from scorelid.training.sigma_sampling import SIGMA_DISTS

__all__ = [
    "AUTO_SIGMA_RANGE",
    "AUTO_STEPS",
    "CPU_DIT",
    "CPU_DIT_RECIPE",
    "DEFAULT_SIGMA_FRACTION",
    "PACK_SIZE",
    "PAPER",
    "PAPER_RECIPE",
    "QUICK",
    "QUICK_RECIPE",
    "TrainConfig",
    "auto_recipe",
    "data_scale",
    "default_sigma",
    "describe_recipe",
    "factor_groups",
    "group_width",
    "grouped_schedule",
    "net_options",
    "recipe_summary",
]


def net_options(arch: str) -> frozenset[str]:
    """The network options (``**model_kwargs``) architecture ``arch`` takes."""
    return frozenset(inspect.signature(ARCHS[arch].__init__).parameters) - {"self", "n"}


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (the defaults are ``train_denoiser``'s).

    Attributes:
        arch: ``"mlp"`` or ``"dit"``.
        net: network options for ``arch`` (MLP: ``width``, ``depth``, ``gate``, ...; DiT:
            ``hidden``, ``heads``, ``depth``, ``patch``); the network's defaults for the rest.
        steps, batch_size, lr: optimisation length, batch rows, peak AdamW learning rate.
        seed: seeds initialisation, batches, noise levels and noise.
        skip, c_in: EDM skip path and input scaling (``scorelid.nn.precond``).
        sigma_dist, sigma_min, sigma_max, p_mean, p_std: the noise-level law (``SigmaSampler``).
        ema_decay: EMA decay of the returned weights.
        weight_decay, warmup, final_lr_frac, grad_clip: AdamW weight decay, warm-up steps, final
            learning rate as a fraction of ``lr`` (cosine decay), gradient-norm clip (``None``: off).
        n_buckets, lid_tail: ``lid_by_sigma`` buckets and the fraction of final steps averaged.
        antithetic: draw the noise in pairs ``(x, sigma, eps)``, ``(x, sigma, -eps)`` (rows ``2i``,
            ``2i + 1``; ``batch_size`` must be even).  The DSM gradient's largest noise term, linear
            in ``eps`` (the unpredictable tangent noise times the network's gradient at the clean
            point), cancels within each pair; its mean is unchanged.  See docs/training.md.
        factorize, group_width: with ``arch="mlp"``, test the training data's coordinates for
            independent groups (``scorelid.data.independence``) and, where there are several,
            train one MLP of width at least ``group_width`` per group (``scorelid.nn.grouped``;
            the width: ``scorelid.training.config.group_width``) instead of
            one MLP on all of them.  Data with one group, and other architectures, get ``arch``'s
            network.
        group_steps_factor, group_lr_factor: a factorised model (several groups found) trains
            ``round(group_steps_factor * steps)`` steps at peak learning rate ``group_lr_factor *
            lr`` (``grouped_schedule``): its networks are small (width ``group_width``) and their
            error at small σ keeps falling long after one large MLP's has stopped
            (docs/training.md).  Factors, so that ``replace(steps=...)`` still sets the length.
        num_threads: torch CPU threads while training (``None``: leave as is); no effect on results.
        named: the keywords this config was made from (``from_kwargs``) or changed by ``replace``,
            in order; ignored by ``==``.  ``to_kwargs(named_only=True)`` gives them back.
    """

    arch: str = "mlp"
    net: dict[str, Any] = field(default_factory=dict)
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0
    skip: str = "edm"
    c_in: str = "edm"
    sigma_dist: str = "loguniform"
    sigma_min: float = 0.002
    sigma_max: float = 2.0
    p_mean: float = -1.2
    p_std: float = 1.2
    ema_decay: float = 0.999
    weight_decay: float = 0.0
    warmup: int = 0
    final_lr_frac: float = 0.01
    grad_clip: float | None = 1.0
    n_buckets: int = 16
    lid_tail: float = 0.2
    antithetic: bool = False
    factorize: bool = False
    group_width: int = 32
    group_steps_factor: float = 1.0
    group_lr_factor: float = 1.0
    num_threads: int | None = None
    named: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.net, dict):
            raise ValueError(f"net must be a dict of network options, got {type(self.net).__name__}")
        object.__setattr__(self, "net", dict(self.net))  # a copy: the caller's dict can change
        object.__setattr__(self, "named", tuple(self.named))
        _validate(self)

    def __hash__(self) -> int:
        return hash(tuple(tuple(sorted(self.net.items())) if f.name == "net" else getattr(self, f.name)
                          for f in dataclasses.fields(self) if f.compare))

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> TrainConfig:
        """From flat ``train_denoiser`` keywords: settings by name, any other name a network option."""
        if "net" in kwargs or "named" in kwargs:
            raise TypeError("from_kwargs takes flat keywords: pass network options by name (width=...)")
        settings = {k: v for k, v in kwargs.items() if k in _SETTINGS}
        net = {k: v for k, v in kwargs.items() if k not in _SETTINGS}
        return cls(net=net, named=tuple(kwargs), **settings)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes``: settings, network options by name, or ``net=`` a whole new mapping.

        Switching ``arch`` keeps the network options, so pass ``net={...}`` with it (``ValueError``
        names options the new architecture does not take).
        """
        if "named" in changes:
            raise TypeError("named is bookkeeping; it cannot be replaced")
        settings = {k: v for k, v in changes.items() if k in _SETTINGS or k == "net"}
        options = {k: v for k, v in changes.items() if k not in settings}
        net = {**settings.pop("net", self.net), **options}
        new = tuple(k for k in (*changes, *net) if k != "net")
        named = self.named + tuple(dict.fromkeys(k for k in new if k not in self.named))
        return dataclasses.replace(self, net=net, named=named, **settings)

    def to_kwargs(self, named_only: bool = False) -> dict[str, Any]:
        """Flat ``train_denoiser`` keywords: ``arch``, the network options, then the other settings
        (``named_only``: only those in ``named``, in that order: a recipe's dict)."""
        flat = {"arch": self.arch, **self.net}
        flat.update((k, getattr(self, k)) for k in _SETTINGS if k != "arch")
        if named_only:
            return {k: flat[k] for k in self.named if k in flat}
        return flat

    def record(self, n_train: int, data: str) -> dict[str, Any]:
        """The ``config["train"]`` dict saved with a model and its checkpoints (a resumed run must
        match it): the settings that decide the weights, the data's size and fingerprint."""
        keys = ("arch", "steps", "batch_size", "lr", "seed", "skip", "c_in", "sigma_dist", "sigma_min",
                "sigma_max", "p_mean", "p_std", "ema_decay", "weight_decay", "warmup", "final_lr_frac",
                "grad_clip", "n_buckets", "lid_tail")
        # ``antithetic``/``factorize`` only when on: checkpoints written before them still resume
        extra = {"antithetic": True} if self.antithetic else {}
        if self.factorize:
            extra.update(factorize=True, group_width=self.group_width)
        return {**{k: getattr(self, k) for k in keys}, **extra, "n_train": n_train, "data": data,
                "model": dict(self.net)}


#: the settings (fields other than ``net`` and ``named``), in field order
_SETTINGS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("net", "named"))


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer)


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and math.isfinite(v)


def _validate(c: TrainConfig) -> None:
    """``ValueError`` naming the first bad field."""
    if c.arch not in ARCHS:
        raise ValueError(f"unknown architecture {c.arch!r}; choose one of {sorted(ARCHS)}")
    allowed = net_options(c.arch)
    unknown = set(c.net) - allowed
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for arch {c.arch!r}; "
                         f"it takes {sorted(allowed)}")
    for name in ("steps", "batch_size", "n_buckets", "group_width"):
        v = getattr(c, name)
        if not _is_int(v) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not (_is_real(c.lr) and c.lr > 0):
        raise ValueError(f"lr must be > 0, got {c.lr!r}")
    if not _is_int(c.seed):
        raise ValueError(f"seed must be an integer, got {c.seed!r}")
    if c.skip not in SKIPS:
        raise ValueError(f"unknown skip {c.skip!r}; choose one of {SKIPS}")
    if c.c_in not in C_INS:
        raise ValueError(f"unknown c_in {c.c_in!r}; choose one of {C_INS}")
    _validate_sigma(c)
    _validate_schedule(c)
    if not isinstance(c.antithetic, bool | np.bool_):
        raise ValueError(f"antithetic must be True or False, got {c.antithetic!r}")
    if c.antithetic and c.batch_size % 2:
        raise ValueError(f"antithetic pairs need an even batch_size, got {c.batch_size}")
    if not isinstance(c.factorize, bool | np.bool_):
        raise ValueError(f"factorize must be True or False, got {c.factorize!r}")
    for name in ("group_steps_factor", "group_lr_factor"):
        v = getattr(c, name)
        if not (_is_real(v) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    if c.num_threads is not None and (not isinstance(c.num_threads, int) or c.num_threads < 1):
        raise ValueError(f"num_threads must be a positive integer, got {c.num_threads!r}")


def _validate_sigma(c: TrainConfig) -> None:
    if c.sigma_dist not in SIGMA_DISTS:
        raise ValueError(f"unknown sigma_dist {c.sigma_dist!r}; choose one of {SIGMA_DISTS}")
    if not (_is_real(c.sigma_min) and _is_real(c.sigma_max) and 0 < c.sigma_min < c.sigma_max):
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {c.sigma_min}, {c.sigma_max}")
    if not _is_real(c.p_mean):
        raise ValueError(f"p_mean must be a finite number, got {c.p_mean!r}")
    if not (_is_real(c.p_std) and c.p_std > 0):
        raise ValueError(f"p_std must be > 0, got {c.p_std!r}")


def _validate_schedule(c: TrainConfig) -> None:
    if not (_is_real(c.ema_decay) and 0 <= c.ema_decay <= 1):
        raise ValueError(f"ema_decay must be in [0, 1], got {c.ema_decay!r}")
    if not (_is_real(c.weight_decay) and c.weight_decay >= 0):
        raise ValueError(f"weight_decay must be >= 0, got {c.weight_decay!r}")
    if not _is_int(c.warmup) or c.warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {c.warmup!r}")
    if not (_is_real(c.final_lr_frac) and c.final_lr_frac >= 0):
        raise ValueError(f"final_lr_frac must be >= 0, got {c.final_lr_frac!r}")
    if c.grad_clip is not None and not (_is_real(c.grad_clip) and c.grad_clip > 0):
        raise ValueError(f"grad_clip must be > 0 or None, got {c.grad_clip!r}")
    if not (_is_real(c.lid_tail) and 0 <= c.lid_tail <= 1):
        raise ValueError(f"lid_tail must be in [0, 1], got {c.lid_tail!r}")


#: Benchmark recipe for CPU (2 cores, about a minute per manifold); see docs/training.md.
QUICK = TrainConfig.from_kwargs(
    arch="mlp", width=256, depth=3, gate=True, squares=True, delta=True, skip="wiener", c_in="data",
    steps=3000, batch_size=256, lr=1e-3, warmup=100, sigma_dist="loguniform", sigma_min=0.004,
    sigma_max=0.3, ema_decay=0.995, antithetic=True, factorize=True, group_steps_factor=2.0,
    group_lr_factor=3.0, num_threads=1,
)

#: A DiT small enough for a CPU (318k parameters at n = 128; ~0.24 s per step on one thread at
#: n = 128, 3,000 steps ~12 min) on the quick recipe's schedule.  Far better than the quick MLP on
#: the nonlinear manifold (benchmarks/nonlinear_study.py); the ``cpu-dit`` bench profile uses it.
CPU_DIT = TrainConfig.from_kwargs(
    arch="dit", hidden=64, heads=4, depth=4, patch=4, skip="wiener", steps=3000, batch_size=256, lr=2e-3,
    warmup=100, sigma_dist="loguniform", sigma_min=0.004, sigma_max=0.3, ema_decay=0.995, num_threads=1,
)

#: The paper's sizes, meant for a GPU: ``PAPER["mlp"]`` and ``PAPER["dit"]``.
PAPER: dict[str, TrainConfig] = {
    "mlp": TrainConfig.from_kwargs(
        arch="mlp", width=1024, depth=6, gate=True, squares=True, delta=True, skip="wiener", c_in="data",
        steps=50_000, batch_size=512, lr=1e-3, warmup=1000, sigma_dist="loguniform", sigma_min=0.002,
        sigma_max=1.0, ema_decay=0.9995,
    ),
    "dit": TrainConfig.from_kwargs(
        arch="dit", hidden=128, heads=16, depth=8, patch=4, skip="wiener", steps=50_000, batch_size=512,
        lr=3e-4, warmup=1000, sigma_dist="loguniform", sigma_min=0.002, sigma_max=1.0, ema_decay=0.9995,
    ),
}

# The recipes as dicts of train_denoiser keywords (the old form; bench profiles and scripts use them).
QUICK_RECIPE: dict[str, Any] = QUICK.to_kwargs(named_only=True)
CPU_DIT_RECIPE: dict[str, Any] = CPU_DIT.to_kwargs(named_only=True)
PAPER_RECIPE: dict[str, dict[str, Any]] = {a: r.to_kwargs(named_only=True) for a, r in PAPER.items()}


#: the fewest coordinates per network of a factorised MLP: the 128 independent coordinates of the
#: twin-peaks cube train as 16 networks of 8, not 128 of 1.  One training step at batch 256, one
#: thread: the quick MLP 23 ms; 128 groups of width 23, 142 ms; 16 groups of width 64, 33 ms, of
#: width 32, 15 ms (a group's activations, not its weights, set the cost)
PACK_SIZE = 8


def group_width(config: TrainConfig, n_groups: int) -> int:
    """Hidden width of each network of a factorised MLP with ``n_groups`` groups: at least
    ``config.group_width``, and at least the one MLP's width shared out among the groups (3 groups
    under a width-256 recipe get 86 each; 16 groups get 32), so few large groups are not starved."""
    mlp_width = config.net.get("width", inspect.signature(ARCHS["mlp"].__init__).parameters["width"].default)
    return max(config.group_width, math.ceil(mlp_width / n_groups))


def factor_groups(x: Any, config: TrainConfig) -> list[list[int]] | None:
    """The coordinate groups of the factorised network ``config`` trains on points ``x [N, n]``:
    with ``config.factorize`` and ``arch="mlp"``, the independent groups
    (``scorelid.data.independence``) packed to at least ``PACK_SIZE`` coordinates; ``None`` where
    that leaves one group (one network), and for other architectures."""
    if not (config.factorize and config.arch == "mlp"):
        return None
    groups = pack_groups(independent_groups(x), PACK_SIZE)
    return groups if len(groups) > 1 else None


def grouped_schedule(config: TrainConfig, groups: list[list[int]] | None) -> TrainConfig:
    """The settings a run of ``config`` trains with once its network is known: with ``groups``
    (``factor_groups`` found several) ``steps`` and ``lr`` times ``group_steps_factor`` and
    ``group_lr_factor``; ``config`` itself for one network."""
    if groups is None or (config.group_steps_factor == 1 and config.group_lr_factor == 1):
        return config
    return config.replace(steps=max(1, round(config.group_steps_factor * config.steps)),
                          lr=config.group_lr_factor * config.lr)


# ---------------------------------------------------------------------------------------------------
# The default recipe for a user's own data: QUICK, placed on the data's scale and sized to it.

#: ``ScoreLID``'s and ``scorelid estimate``'s default noise level, as a fraction of the data's scale
DEFAULT_SIGMA_FRACTION = 0.05


def _sig2(v: float) -> float:
    """``v`` rounded to two significant figures (readable noise levels: 0.05, not 0.04987)."""
    return float(f"{v:.2g}")


def default_sigma(scale: float) -> float:
    """The default estimation noise level for data of scale ``scale``: 5% of it, two significant figures."""
    return _sig2(DEFAULT_SIGMA_FRACTION * scale)


#: What ``auto_recipe`` changes in its base recipe: the training noise range as fractions of the
#: data's scale (a decade and a half around ``DEFAULT_SIGMA_FRACTION``) and the length.  Measured
#: on curved data (benchmarks/unseen_data.py), a 3-torus in R^16 read by the normal bundle: the
#: quick recipe's 3,000 steps over [0.004, 0.3] 4.6; 6,000 steps 3.7; [0.01, 0.25] with 3,000
#: steps 3.8, with 6,000 steps 2.99.
AUTO_SIGMA_RANGE = (0.01, 0.25)
AUTO_STEPS = 6000


def auto_recipe(x: Any, base: TrainConfig | None = None) -> tuple[TrainConfig, dict[str, Any]]:
    """The recipe for points ``x [N, n]``: ``base`` (default ``QUICK``) put on the data's scale and
    trained where the default noise level reads, and what was chosen, for the user to read.

    The training noise range is ``AUTO_SIGMA_RANGE`` times ``data_scale(x)`` (two significant
    figures), so the same recipe trains the same model on ``x`` and on ``1000 * x`` and the default
    estimation level ``default_sigma`` (5% of the scale) is in the middle of the trained range;
    ``AUTO_STEPS`` steps, a factorised model too (at ``base``'s ``group_lr_factor``).  The
    network, schedule and thread count are ``base``'s (the quick recipe pins one thread: two were
    7x slower on a shared 2-core machine, docs/training.md).

    Returns:
        ``(config, chosen)``; ``chosen`` is ``recipe_summary(config, x)``, and
        ``describe_recipe(chosen)`` is one line for a log.
    """
    base = QUICK if base is None else base
    scale = data_scale(x)
    lo, hi = AUTO_SIGMA_RANGE
    # AUTO_STEPS is already the length the quick recipe gives a factorised model (3,000 x 2): the
    # groups keep the base's learning-rate factor and train AUTO_STEPS like one network would
    config = base.replace(sigma_min=_sig2(lo * scale), sigma_max=_sig2(hi * scale), steps=AUTO_STEPS,
                          group_steps_factor=1.0)
    return config, recipe_summary(config, x, scale)


def recipe_summary(config: TrainConfig, x: Any, scale: float | None = None) -> dict[str, Any]:
    """What a recipe trains on points ``x [N, n]``: ``n_points``, ``n``, ``scale``, ``sigma_min``,
    ``sigma_max``, ``steps``, ``batch_size``, ``antithetic``, ``width``, ``groups`` (networks of a
    factorised MLP, 1 for one network) and ``sigma`` (the default estimation level)."""
    scale = data_scale(x) if scale is None else scale
    groups = factor_groups(np.asarray(x).reshape(len(x), -1), config)
    run = grouped_schedule(config, groups)
    return {"n_points": len(x), "n": int(np.prod(np.shape(x)[1:])), "scale": scale,
            "sigma_min": config.sigma_min, "sigma_max": config.sigma_max, "steps": run.steps,
            "lr": run.lr, "batch_size": config.batch_size, "antithetic": config.antithetic,
            "width": group_width(config, len(groups)) if groups else config.net.get("width"),
            "groups": len(groups) if groups else 1, "sigma": default_sigma(scale)}


def describe_recipe(chosen: dict[str, Any]) -> str:
    """One line saying what ``auto_recipe`` chose and from what."""
    width = f", width {chosen['width']}" if chosen.get("width") is not None else ""
    if chosen.get("groups", 1) > 1:
        width = f", one network per independent coordinate group ({chosen['groups']}){width} each"
    return (f"recipe for {chosen['n_points']} points in R^{chosen['n']} of scale {chosen['scale']:.3g}: "
            f"{chosen['steps']} steps of {chosen['batch_size']}"
            f"{' in antithetic pairs' if chosen.get('antithetic') else ''}{width}, training noise "
            f"[{chosen['sigma_min']:g}, {chosen['sigma_max']:g}], estimation sigma {chosen['sigma']:g}")
