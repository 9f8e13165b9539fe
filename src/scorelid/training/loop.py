"""Denoising score-matching training of a vector denoiser (``scorelid.train_denoiser``).

Loss.  For a batch of training points ``x``, noise levels ``sigma ~ p(sigma)`` and ``eps ~ N(0, I)``,

    lid_i  = ||D(x_i + sigma_i eps_i, sigma_i) - x_i||^2 / sigma_i^2      (per-sample DSM-LID)
    loss   = mean_i  w(sigma_i) lid_i / n,     w = (s^2 + sigma_data^2) / sigma_data^2,

which is the EDM loss ``lambda(s) ||D_norm - x_norm||^2`` (``s``: sigma in normalised units).  At the
estimation levels (``s << sigma_data``) ``w ~ 1``: training minimises exactly the quantity the DSM
estimator reports, so the excess of the estimate over ``d`` is the model's remaining error there.

``lid_i`` is an unbiased estimate of the training set's mean DSM-LID at ``sigma_i``; training keeps
running means of it per log-spaced sigma bucket over the last ``lid_tail`` fraction of steps and
stores them as ``history["lid_by_sigma"]`` (in-sample values, from the online weights).

Noise levels.  ``sigma_dist="loguniform"``: ``log sigma ~ U[log sigma_min, log sigma_max]`` (data
units); ``"lognormal"``: EDM's ``log sigma ~ N(p_mean, p_std^2)`` (normalised units).  The
log-uniform default puts equal effort on every octave of ``[sigma_min, sigma_max]``, which for the
benchmark is chosen around the estimation levels 0.01-0.05 (see ``QUICK_RECIPE``).

Several processes (``torchrun``; ``dist=init_distributed(...)``).  The model is wrapped in
``DistributedDataParallel``.  Every rank draws the same global batch (indices, sigma, eps) from the
seeded generator, exactly as one process does, and rank ``r`` keeps the contiguous rows
``[r b, (r + 1) b)``, ``b = batch_size / world_size``.  Its loss is the mean over those rows, so DDP's
gradient average is the gradient of the global mean: the run is the single-process run up to the
order of float additions.  The per-row ``lid_i`` are gathered every step (one small all-gather), so
the logged loss and the ``lid_by_sigma`` accumulators are the global ones on every rank.  Only rank
0 writes checkpoints and the model; every rank resumes from the same checkpoint.  A rank whose
forward pass, callback or checkpoint write raises reports it at the next all-gather (or at the end)
and every rank raises ``RankFailure`` naming it; a rank that dies elsewhere (inside the backward
pass's all-reduce, killed, out of memory) exits non-zero and torchrun stops the others.

Reproducibility.  Initialisation uses ``seed``; batches, noise levels and noise come from one
``torch.Generator`` seeded with ``seed``.  Checkpoints hold weights, EMA weights, AdamW moments, the
generator state and the accumulators, so resuming after an interruption gives bit-identical final
weights to an uninterrupted run (on the same device and torch build).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist
from torch import Tensor
from tqdm.auto import tqdm

from scorelid.errors import TrainingDivergedError
from scorelid.estimators.api import validate_points
from scorelid.nn.precond import EDMDenoiser
from scorelid.runtime.distributed import DistInfo, all_ok
from scorelid.runtime.lock import exclusive_dir, holds_lock
from scorelid.training.checkpoint import save_denoiser, save_train_state

# The recipes and the sampler lived here before training/config.py and training/sigma_sampling.py;
# ``from scorelid.training.loop import QUICK_RECIPE`` keeps working.
from scorelid.training.config import (
    CPU_DIT_RECIPE,
    PAPER_RECIPE,
    QUICK_RECIPE,
    TrainConfig,
    factor_groups,
    grouped_schedule,
)
from scorelid.training.sigma_sampling import SIGMA_DISTS, SigmaSampler
from scorelid.training.state import TrainState, build_state, resume_state, state_meta, state_tensors

__all__ = ["CPU_DIT_RECIPE", "PAPER_RECIPE", "QUICK_RECIPE", "RUN_OPTIONS", "SIGMA_DISTS", "SigmaSampler",
           "TrainConfig", "draw_batch", "lid_by_sigma_rows", "train_denoiser"]


def _lr_at(step: int, steps: int, lr: float, warmup: int, final_frac: float) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay to ``final_frac * lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def lid_by_sigma_rows(edges: Tensor, sums: Tensor, counts: Tensor) -> list[dict[str, float]]:
    """Rows ``{sigma_lo, sigma_hi, sigma_mid, mean_lid, count}`` (``sigma_mid``: geometric mean)."""
    rows = []
    for i in range(len(edges) - 1):
        c = float(counts[i])
        rows.append({"sigma_lo": float(edges[i]), "sigma_hi": float(edges[i + 1]),
                     "sigma_mid": float(math.sqrt(edges[i] * edges[i + 1])),
                     "mean_lid": float(sums[i] / c) if c > 0 else float("nan"), "count": int(c)})
    return rows


def train_denoiser(
    x: Tensor | np.ndarray,
    arch: str = "mlp",
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    out_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    progress: bool = True,
    *,
    resume: bool = False,
    skip: str = "edm",
    c_in: str = "edm",
    sigma_dist: str = "loguniform",
    sigma_min: float = 0.002,
    sigma_max: float = 2.0,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    ema_decay: float = 0.999,
    weight_decay: float = 0.0,
    warmup: int = 0,
    final_lr_frac: float = 0.01,
    grad_clip: float | None = 1.0,
    n_buckets: int = 16,
    lid_tail: float = 0.2,
    antithetic: bool = False,
    factorize: bool = False,
    group_width: int = 32,
    group_steps_factor: float = 1.0,
    group_lr_factor: float = 1.0,
    log_every: int | None = None,
    callback: Callable[[int, float], None] | None = None,
    on_resume: Callable[[Path, int], None] | None = None,
    num_threads: int | None = None,
    dist: DistInfo | None = None,
    config: TrainConfig | None = None,
    **model_kwargs: Any,
) -> EDMDenoiser:
    """Train a denoiser ``D(y, sigma)`` on points ``x`` by denoising score matching.

    Args:
        x: training points ``[N, n]`` (finite), any units; the model works in these units.
        arch: ``"mlp"`` or ``"dit"``; ``**model_kwargs`` go to the network (e.g. ``width``,
            ``depth`` for the MLP; ``hidden``, ``heads``, ``depth``, ``patch`` for the DiT).
        steps, batch_size, lr: optimisation length, batch rows (drawn with replacement), peak
            AdamW learning rate (warm-up ``warmup`` steps, cosine decay to ``final_lr_frac * lr``).
        seed: seeds initialisation, batches, noise levels and noise.
        device: training device.
        out_dir: where to write checkpoints and the final model (``config.json`` +
            ``model.safetensors``, loadable with ``load_denoiser(out_dir)``).  ``None``: nothing.
        checkpoint_every: steps between training checkpoints (default ``steps // 10``).
        progress: show a tqdm bar.
        resume: continue from the newest checkpoint in ``out_dir`` if there is one (it must
            have been made with the same settings and data, else ``ValueError``).  Without it,
            old checkpoints in ``out_dir/checkpoints`` are removed first.
        skip, c_in: EDM skip path (``"edm"``/``"wiener"``) and input scaling (``"edm"``/``"data"``),
            see ``scorelid.nn.precond``.
        sigma_dist, sigma_min, sigma_max, p_mean, p_std: the noise-level law (``SigmaSampler``).
        ema_decay: EMA decay of the returned weights (warm-up ``min(decay, (1+t)/(10+t))``).
        weight_decay, grad_clip: AdamW weight decay; gradient-norm clipping (``None``: off).
        n_buckets, lid_tail: ``lid_by_sigma`` buckets and the fraction of final steps averaged.
        antithetic: noise in pairs ``eps``, ``-eps`` on the same point and level (rows ``2i``,
            ``2i + 1``), a variance reduction of the DSM gradient (``TrainConfig.antithetic``).
        factorize, group_width: one MLP per group of independent coordinates, where the data has
            several, each of width ``max(group_width, width / groups)`` (``TrainConfig.factorize``,
            ``scorelid.training.config.group_width``).
        group_steps_factor, group_lr_factor: a factorised model trains this many times ``steps``
            at this many times ``lr`` (``TrainConfig.group_steps_factor``); the model's
            ``config["train"]`` records the steps and rate it trained with.
        log_every: steps between loss-curve entries (default ``max(1, steps // 200)``).
        callback: called as ``callback(step, loss)`` after every step (e.g. to stop early).
        on_resume: called as ``on_resume(checkpoint_dir, step)`` once a checkpoint has been found
            to fit these settings and data and been loaded (not before a refusal).
        num_threads: torch CPU threads while training (restored afterwards; ``None``: leave as
            is).  Small MLPs gain little from a second thread and lose a lot when the cores are
            shared: 300 quick-recipe steps took 5.6 s on one thread and 39 s on two on our loaded
            2-core machine, hence ``QUICK_RECIPE["num_threads"] = 1``.
        dist: this process's place in a torchrun job (``scorelid.runtime.distributed.init_distributed``);
            ``None`` or a single process: ordinary training.  With ``world_size > 1`` the model is
            trained with DistributedDataParallel on ``batch_size / world_size`` rows per rank
            (``batch_size`` must be a multiple of ``world_size``), ``device`` should be
            ``dist.device``, only rank 0 writes to ``out_dir`` and shows progress, and every rank
            returns the same model.  A failure on any rank raises ``RankFailure`` on all of them.
        config: all the settings at once, a ``scorelid.training.config.TrainConfig`` (e.g. the
            recipe ``QUICK.replace(steps=500)``), given instead of the setting keywords (``arch``
            to ``num_threads`` except ``device``, ``out_dir``, ``checkpoint_every``, ``progress``,
            ``resume``, ``log_every``, ``callback``, ``on_resume``, ``dist``) and
            ``**model_kwargs``; ``TypeError`` if one of those is given too.

    Returns:
        The EMA denoiser in eval mode, an ``EDMDenoiser`` with ``.config`` (architecture plus
        ``config["train"]``, the training settings) and ``.history`` (``loss``: ``[[step, loss],
        ...]``, ``lid_by_sigma``: rows of ``lid_by_sigma_rows``, ``seconds``).
    """
    settings = {"arch": arch, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "skip": skip,
                "c_in": c_in, "sigma_dist": sigma_dist, "sigma_min": sigma_min, "sigma_max": sigma_max,
                "p_mean": p_mean, "p_std": p_std, "ema_decay": ema_decay, "weight_decay": weight_decay,
                "warmup": warmup, "final_lr_frac": final_lr_frac, "grad_clip": grad_clip,
                "n_buckets": n_buckets, "lid_tail": lid_tail, "antithetic": antithetic,
                "factorize": factorize, "group_width": group_width,
                "group_steps_factor": group_steps_factor, "group_lr_factor": group_lr_factor,
                "num_threads": num_threads}
    cfg = _config(config, settings, model_kwargs)
    opts = _Options(device=torch.device(device), out_dir=out_dir, checkpoint_every=checkpoint_every,
                    log_every=log_every, progress=progress, resume=resume, callback=callback,
                    on_resume=on_resume, dist=dist or DistInfo())
    with _exclusive_run(out_dir, dist, cfg.num_threads):
        return _train(x, cfg, opts)


def _config(config: TrainConfig | None, settings: dict[str, Any],
            model_kwargs: dict[str, Any]) -> TrainConfig:
    """``config``, or one made from the keywords (``TypeError`` for settings given both ways)."""
    if config is None:
        return TrainConfig(net=model_kwargs, **settings)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    default = TrainConfig()
    both = [k for k, v in settings.items() if v != getattr(default, k)] + list(model_kwargs)
    if both:
        raise TypeError(f"train_denoiser got config= and {both[0]}=; pass config.replace({both[0]}=...) "
                        "instead")
    return config


@dataclasses.dataclass(frozen=True)
class _Options:
    """How a run is carried out (not what it computes): ``train_denoiser``'s other arguments."""

    device: torch.device
    out_dir: str | Path | None
    checkpoint_every: int | None
    log_every: int | None
    progress: bool
    resume: bool
    callback: Callable[[int, float], None] | None
    on_resume: Callable[[Path, int], None] | None
    dist: DistInfo


#: ``train_denoiser``'s arguments that say how a run is carried out, not what it computes (the
#: others are the settings of a ``TrainConfig``)
RUN_OPTIONS = tuple(f.name for f in dataclasses.fields(_Options))


@contextmanager
def _exclusive_run(out_dir: str | Path | None, dist: DistInfo | None,
                   num_threads: int | None) -> Iterator[None]:
    """One run at a time in ``out_dir`` (the main process takes its lock, ``scorelid.runtime.lock``,
    unless it holds it already) and ``num_threads`` torch threads; both undone on any exit."""
    lock = out_dir is not None and (dist is None or dist.is_main) and not holds_lock(out_dir)
    with ExitStack() as stack:
        if lock:
            stack.enter_context(exclusive_dir(out_dir))
        if num_threads is not None:
            stack.callback(torch.set_num_threads, torch.get_num_threads())
            torch.set_num_threads(num_threads)
        yield


def _train(x: Tensor | np.ndarray, cfg: TrainConfig, opts: _Options) -> EDMDenoiser:
    x = validate_points(x)
    if x.ndim != 2:
        raise ValueError(f"train_denoiser needs vectors [N, n], got shape {tuple(x.shape)}")
    if opts.resume and opts.out_dir is None:
        raise ValueError("resume=True needs an out_dir to resume from")
    world = opts.dist.world_size
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of the number of processes "
                         f"({world}): every rank takes an equal share of each batch")
    x = x.to(torch.float32)
    groups = factor_groups(x, cfg)  # the network decides the schedule (grouped_schedule)
    trainer = _Trainer(x, grouped_schedule(cfg, groups), opts, groups)
    trainer.run()
    return trainer.finish()


def draw_batch(cfg: TrainConfig, n_train: int, n: int, sampler: SigmaSampler,
               gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """One global batch: point indices ``[B]`` (with replacement), noise levels ``[B]`` and noise
    ``[B, n]``.  With ``cfg.antithetic`` rows ``2i + 1`` repeat the point and level of row ``2i``
    with the noise negated (the same draws are made either way, then overwritten)."""
    b = cfg.batch_size
    idx = torch.randint(n_train, (b,), generator=gen)
    sigma = sampler.sample(b, gen)
    eps = torch.randn(b, n, generator=gen)
    if cfg.antithetic:
        idx[1::2], sigma[1::2], eps[1::2] = idx[0::2], sigma[0::2], -eps[0::2]
    return idx, sigma, eps


class _Trainer:
    """One run: its state (``scorelid.training.state``), the network it steps (DDP-wrapped under
    torchrun) and a rank's own failure, held until the next collective reports it to every rank."""

    def __init__(self, x: Tensor, cfg: TrainConfig, opts: _Options, groups: list[list[int]] | None) -> None:
        self.cfg, self.opts, self.info = cfg, opts, opts.dist
        self.n_train, self.n = x.shape
        self.local_b = cfg.batch_size // self.info.world_size
        self.rows = slice(self.info.rank * self.local_b, (self.info.rank + 1) * self.local_b)
        self.checkpoint_every = opts.checkpoint_every or max(1, cfg.steps // 10)
        self.log_every = opts.log_every or max(1, cfg.steps // 200)
        self.tail_start = math.floor((1 - cfg.lid_tail) * cfg.steps)
        self.state = build_state(x, cfg, opts.device, groups)
        if opts.resume and (ck := resume_state(self.state, opts.out_dir)) is not None:
            if opts.on_resume is not None:
                opts.on_resume(ck, self.state.step)
        if opts.out_dir is not None and not opts.resume and self.info.is_main:
            # a fresh run: no stale state
            shutil.rmtree(Path(opts.out_dir) / "checkpoints", ignore_errors=True)
        self.net = self._parallel(self.state.model)
        self.x = x.to(opts.device)
        self.error: Exception | None = None
        self.t0 = 0.0

    def _parallel(self, model: EDMDenoiser) -> torch.nn.Module:
        if not self.info.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        # constructing DDP broadcasts rank 0's parameters (all ranks built them from ``seed``
        # anyway) and is a collective: no rank starts before every rank has loaded its state.
        # The buffers are the data statistics, the same on every rank: no need to broadcast them.
        device = self.opts.device
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                       broadcast_buffers=False)

    def run(self) -> None:
        """Steps from the state's step to ``cfg.steps``; every rank raises ``RankFailure`` if one failed."""
        st = self.state
        self.t0 = time.perf_counter() - st.seconds
        bar = tqdm(total=self.cfg.steps, initial=st.step, desc=f"train {self.cfg.arch}", unit="step",
                   disable=not (self.opts.progress and self.info.is_main), leave=False)
        with bar:
            for step in range(st.step, self.cfg.steps):
                if not self._step(step, bar):
                    break  # every rank leaves here; all_ok below names the failed rank(s)
        all_ok(self.info, self.error)

    def _step(self, step: int, bar: tqdm) -> bool:
        """One optimisation step on the global batch's rows of this rank; ``False``: a rank failed."""
        cfg, st = self.cfg, self.state
        for g in st.opt.param_groups:
            g["lr"] = _lr_at(step, cfg.steps, cfg.lr, cfg.warmup, cfg.final_lr_frac)
        # every rank draws the whole global batch from the same generator, as one process does
        idx, sigma, eps = draw_batch(cfg, self.n_train, self.n, st.sampler, st.gen)
        sig_all = sigma.to(self.opts.device)
        lid, loss = self._forward(idx[self.rows], sig_all[self.rows], eps[self.rows])
        synced = self._gather(lid, loss, sig_all)
        if synced is None:
            return False
        lid_all, lv = synced
        st.opt.zero_grad(set_to_none=True)
        loss.backward()  # DDP: gradients averaged over ranks = gradient of the global mean
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(st.model.parameters(), cfg.grad_clip)
        st.opt.step()
        if not math.isfinite(lv):  # the global loss: every rank stops here together
            raise TrainingDivergedError(f"training diverged at step {step} (loss {lv}); lower lr")
        try:
            self._bookkeep(step, sigma, lid_all, lv, bar)
        except Exception as exc:
            if not self.info.active:
                raise
            self.error = exc
        return True

    def _forward(self, idx: Tensor, sig: Tensor, eps: Tensor) -> tuple[Tensor, Tensor | None]:
        """Per-row ``lid [b]`` and the loss of this rank's rows (zeros and ``None`` after a failure
        under torchrun, reported at the next gather)."""
        try:
            if self.error is not None:
                raise self.error
            x0 = self.x[idx]
            y = x0 + sig[:, None] * eps.to(self.opts.device)
            D = self.net(y, sig)
            lid = ((D - x0) ** 2).sum(1) / sig**2
            return lid, self._loss(lid, sig)
        except Exception as exc:
            if not self.info.active:
                raise
            self.error = exc
            return torch.zeros(self.local_b, device=self.opts.device), None

    def _loss(self, lid: Tensor, sig: Tensor) -> Tensor:
        stats = self.state.stats
        return _dsm_loss(lid, sig, stats["scale"], stats["sigma_data"], self.n)

    def _gather(self, lid: Tensor, loss: Tensor | None, sig_all: Tensor) -> tuple[Tensor, float] | None:
        """The global batch's per-row ``lid`` and loss (``None``: some rank failed)."""
        if not self.info.active:
            return lid.detach(), float(loss.detach())
        lid_all, failed = _gather_rows(lid.detach(), self.error is not None, self.info)
        if failed:
            return None
        return lid_all, float(self._loss(lid_all, sig_all))  # the global batch's loss

    def _bookkeep(self, step: int, sigma: Tensor, lid_all: Tensor, lv: float, bar: tqdm) -> None:
        """EMA, ``lid_by_sigma`` accumulators, loss curve, progress, callback and checkpoint."""
        cfg, st = self.cfg, self.state
        _ema_update(st.model, st.ema, cfg.ema_decay, step)
        if step >= self.tail_start:
            _accumulate(st.edges, st.sums, st.counts, sigma, lid_all.double().cpu())
        if step % self.log_every == 0 or step == cfg.steps - 1:
            st.history["loss"].append([step, lv])
            bar.set_postfix(loss=f"{lv:.4g}")
        bar.update(1)
        if self.opts.callback is not None:
            self.opts.callback(step, lv)
        st.step = done = step + 1
        if self.opts.out_dir is not None and self.info.is_main and (
                done % self.checkpoint_every == 0 or done == cfg.steps):
            st.history["lid_by_sigma"] = lid_by_sigma_rows(st.edges, st.sums, st.counts)
            _checkpoint(self.opts.out_dir, done, st, time.perf_counter() - self.t0)

    def finish(self) -> EDMDenoiser:
        """The EMA model with ``config["train"]`` and ``history``; rank 0 writes it to ``out_dir``."""
        st = self.state
        st.history["lid_by_sigma"] = lid_by_sigma_rows(st.edges, st.sums, st.counts)
        st.history["seconds"] = time.perf_counter() - self.t0
        final = _ema_model(st.model, st.ema)
        final.config = {**st.model.config, "train": st.record}
        final.history = st.history
        error = None
        try:
            if self.opts.out_dir is not None and self.info.is_main:
                save_denoiser(final, self.opts.out_dir)
        except Exception as exc:
            error = exc
        all_ok(self.info, error)  # also a barrier: every rank returns once the model is written
        return final


def _checkpoint(out_dir: str | Path, step: int, state: TrainState, seconds: float) -> None:
    """A resumable checkpoint of ``state`` after ``step`` steps (``scorelid.training.state``)."""
    save_train_state(out_dir, step, state_tensors(state), state_meta(state, seconds))


def _dsm_loss(lid: Tensor, sig: Tensor, scale: float, sd: float, n: int) -> Tensor:
    """The EDM-weighted loss ``mean_i w(sigma_i) lid_i / n`` of per-row ``lid [B]`` at ``sig [B]``."""
    s_norm = sig / scale
    return (lid * (s_norm**2 + sd**2) / sd**2).mean() / n


def _gather_rows(lid: Tensor, failed: bool, info: DistInfo) -> tuple[Tensor, bool]:
    """All-gather the ranks' per-row values ``[b]`` into the global batch's ``[world_size * b]``
    (rank order = row order) and whether any rank failed; one collective per step."""
    mine = torch.cat([lid.float(), lid.new_full((1,), float(failed), dtype=torch.float32)])
    parts = [torch.empty_like(mine) for _ in range(info.world_size)]
    tdist.all_gather(parts, mine)
    return torch.cat([p[:-1] for p in parts]), any(bool(p[-1]) for p in parts)


@torch.no_grad()
def _ema_update(model: EDMDenoiser, ema: dict[str, Tensor], decay: float, step: int) -> None:
    beta = min(decay, (1 + step) / (10 + step))
    for k, p in model.named_parameters():
        ema[k].mul_(beta).add_(p.detach(), alpha=1 - beta)


def _accumulate(edges: Tensor, sums: Tensor, counts: Tensor, sigma: Tensor, lid: Tensor) -> None:
    b = torch.bucketize(sigma.double(), edges) - 1
    ok = (b >= 0) & (b < len(sums))
    sums.index_add_(0, b[ok], lid[ok])
    counts.index_add_(0, b[ok], torch.ones_like(lid[ok]))


def _ema_model(model: EDMDenoiser, ema: dict[str, Tensor]) -> EDMDenoiser:
    final = copy.deepcopy(model)
    with torch.no_grad():
        for k, p in final.named_parameters():
            p.copy_(ema[k])
    return final.eval().requires_grad_(False)
