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

import hashlib
import math
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist
from torch import Tensor
from tqdm.auto import tqdm

from scorelid.estimators.api import validate_points
from scorelid.nn.precond import ARCHS, EDMDenoiser
from scorelid.runtime.distributed import DistInfo, all_ok
from scorelid.runtime.lock import exclusive_dir, holds_lock
from scorelid.training.checkpoint import (
    latest_train_state,
    load_train_state,
    save_denoiser,
    save_train_state,
)

__all__ = ["CPU_DIT_RECIPE", "PAPER_RECIPE", "QUICK_RECIPE", "SigmaSampler", "lid_by_sigma_rows",
           "train_denoiser"]

#: Benchmark recipe for CPU (2 cores, about a minute per manifold); see docs/training.md.
QUICK_RECIPE: dict[str, Any] = {
    "arch": "mlp",
    "width": 256,
    "depth": 3,
    "gate": True,
    "squares": True,
    "delta": True,
    "skip": "wiener",
    "c_in": "data",
    "steps": 3000,
    "batch_size": 256,
    "lr": 2e-3,
    "warmup": 100,
    "sigma_dist": "loguniform",
    "sigma_min": 0.004,
    "sigma_max": 0.3,
    "ema_decay": 0.995,
    "num_threads": 1,
}

#: A DiT small enough for a CPU (318k parameters at n = 128; ~0.24 s per step on one thread at
#: n = 128, 3,000 steps ~12 min) on the quick recipe's schedule.  Far better than the quick MLP on
#: the nonlinear manifold (benchmarks/nonlinear_study.py); the ``cpu-dit`` bench profile uses it.
CPU_DIT_RECIPE: dict[str, Any] = {
    "arch": "dit", "hidden": 64, "heads": 4, "depth": 4, "patch": 4, "skip": "wiener",
    "steps": 3000, "batch_size": 256, "lr": 2e-3, "warmup": 100, "sigma_dist": "loguniform",
    "sigma_min": 0.004, "sigma_max": 0.3, "ema_decay": 0.995, "num_threads": 1,
}

#: The paper's sizes, meant for a GPU: ``PAPER_RECIPE["mlp"]`` and ``PAPER_RECIPE["dit"]``.
PAPER_RECIPE: dict[str, dict[str, Any]] = {
    "mlp": {"arch": "mlp", "width": 1024, "depth": 6, "gate": True, "squares": True, "delta": True,
            "skip": "wiener", "c_in": "data", "steps": 50_000, "batch_size": 512, "lr": 1e-3, "warmup": 1000,
            "sigma_dist": "loguniform", "sigma_min": 0.002, "sigma_max": 1.0, "ema_decay": 0.9995},
    "dit": {"arch": "dit", "hidden": 128, "heads": 16, "depth": 8, "patch": 4, "skip": "wiener",
            "steps": 50_000, "batch_size": 512, "lr": 3e-4, "warmup": 1000, "sigma_dist": "loguniform",
            "sigma_min": 0.002, "sigma_max": 1.0, "ema_decay": 0.9995},
}

SIGMA_DISTS = ("loguniform", "lognormal")


class SigmaSampler:
    """Noise levels for training, in data units: ``sample(B, gen) -> [B]``.

    Args:
        dist: ``"loguniform"`` or ``"lognormal"``.
        sigma_min, sigma_max: range of the log-uniform law (data units).
        p_mean, p_std: mean and std of ``log(sigma / scale)`` for the log-normal law.
        scale: the data's scale (largest per-coordinate std), to convert normalised units.
    """

    def __init__(self, dist: str, sigma_min: float, sigma_max: float, p_mean: float, p_std: float,
                 scale: float) -> None:
        if dist not in SIGMA_DISTS:
            raise ValueError(f"unknown sigma_dist {dist!r}; choose one of {SIGMA_DISTS}")
        if not (0 < sigma_min < sigma_max):
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.dist, self.scale = dist, scale
        self.lo, self.hi = math.log(sigma_min), math.log(sigma_max)
        self.p_mean, self.p_std = p_mean, p_std

    def sample(self, B: int, gen: torch.Generator) -> Tensor:
        if self.dist == "loguniform":
            return torch.exp(self.lo + (self.hi - self.lo) * torch.rand(B, generator=gen))
        return self.scale * torch.exp(self.p_mean + self.p_std * torch.randn(B, generator=gen))

    def bucket_edges(self, n_buckets: int) -> Tensor:
        """Log-spaced bucket edges ``[n_buckets + 1]`` covering the bulk of the law (data units)."""
        if self.dist == "loguniform":
            lo, hi = self.lo, self.hi
        else:
            lo = self.p_mean - 2.5 * self.p_std + math.log(self.scale)
            hi = self.p_mean + 2.5 * self.p_std + math.log(self.scale)
        return torch.exp(torch.linspace(lo, hi, n_buckets + 1, dtype=torch.float64))


def _lr_at(step: int, steps: int, lr: float, warmup: int, final_frac: float) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay to ``final_frac * lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _fingerprint(x: Tensor) -> str:
    return hashlib.sha256(x.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()[:16]


def lid_by_sigma_rows(edges: Tensor, sums: Tensor, counts: Tensor) -> list[dict[str, float]]:
    """Rows ``{sigma_lo, sigma_hi, sigma_mid, mean_lid, count}`` (``sigma_mid``: geometric mean)."""
    rows = []
    for i in range(len(edges) - 1):
        c = float(counts[i])
        rows.append({"sigma_lo": float(edges[i]), "sigma_hi": float(edges[i + 1]),
                     "sigma_mid": float(math.sqrt(edges[i] * edges[i + 1])),
                     "mean_lid": float(sums[i] / c) if c > 0 else float("nan"), "count": int(c)})
    return rows


def _split_kwargs(arch: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    import inspect

    allowed = set(inspect.signature(ARCHS[arch].__init__).parameters) - {"self", "n"}
    unknown = set(kwargs) - allowed
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for arch {arch!r}; it takes {sorted(allowed)}")
    return dict(kwargs)


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, Tensor]:
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"opt.{i}.{k}"] = v if isinstance(v, Tensor) else torch.tensor(v)
    return out


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, i, k = key.split(".", 2)
            state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


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
    log_every: int | None = None,
    callback: Callable[[int, float], None] | None = None,
    on_resume: Callable[[Path, int], None] | None = None,
    num_threads: int | None = None,
    dist: DistInfo | None = None,
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

    Returns:
        The EMA denoiser in eval mode, an ``EDMDenoiser`` with ``.config`` (architecture plus
        ``config["train"]``, the training settings) and ``.history`` (``loss``: ``[[step, loss],
        ...]``, ``lid_by_sigma``: rows of ``lid_by_sigma_rows``, ``seconds``).
    """
    lock = out_dir is not None and (dist is None or dist.is_main) and not holds_lock(out_dir)
    if num_threads is not None or lock:
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
        with ExitStack() as stack:
            if lock:  # one run at a time in out_dir (scorelid.runtime.lock); released on any exit
                stack.enter_context(exclusive_dir(out_dir))
            if num_threads is not None:
                stack.callback(torch.set_num_threads, torch.get_num_threads())
                torch.set_num_threads(num_threads)
            return train_denoiser(x, arch, steps, batch_size, lr, seed, device, out_dir, checkpoint_every,
                                  progress, resume=resume, skip=skip, c_in=c_in, sigma_dist=sigma_dist,
                                  sigma_min=sigma_min, sigma_max=sigma_max, p_mean=p_mean, p_std=p_std,
                                  ema_decay=ema_decay, weight_decay=weight_decay, warmup=warmup,
                                  final_lr_frac=final_lr_frac, grad_clip=grad_clip, n_buckets=n_buckets,
                                  lid_tail=lid_tail, log_every=log_every, callback=callback,
                                  on_resume=on_resume, num_threads=None, dist=dist, **model_kwargs)
    x = validate_points(x)
    if x.ndim != 2:
        raise ValueError(f"train_denoiser needs vectors [N, n], got shape {tuple(x.shape)}")
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHS)}")
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if resume and out_dir is None:
        raise ValueError("resume=True needs an out_dir to resume from")
    info = dist or DistInfo()
    if batch_size % info.world_size:
        raise ValueError(f"batch_size {batch_size} must be a multiple of the number of processes "
                         f"({info.world_size}): every rank takes an equal share of each batch")
    local_b = batch_size // info.world_size
    rows = slice(info.rank * local_b, (info.rank + 1) * local_b)
    N, n = x.shape
    net_kwargs = _split_kwargs(arch, model_kwargs)
    checkpoint_every = checkpoint_every or max(1, steps // 10)
    log_every = log_every or max(1, steps // 200)
    device = torch.device(device)

    x = x.to(torch.float32)
    stats = EDMDenoiser.data_stats(x)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EDMDenoiser(arch, n, sigma_data=stats["sigma_data"], skip=skip, rank=stats["U"].shape[1],
                            net=net_kwargs, c_in=c_in)
    model.set_data_stats(stats)
    model.to(device).train()
    ema = {k: p.detach().clone() for k, p in model.named_parameters()}
    sampler = SigmaSampler(sigma_dist, sigma_min, sigma_max, p_mean, p_std, stats["scale"])
    edges = sampler.bucket_edges(n_buckets)
    sums = torch.zeros(n_buckets, dtype=torch.float64)
    counts = torch.zeros(n_buckets, dtype=torch.float64)
    train_cfg = {"arch": arch, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
                 "skip": skip, "c_in": c_in, "sigma_dist": sigma_dist, "sigma_min": sigma_min,
                 "sigma_max": sigma_max,
                 "p_mean": p_mean, "p_std": p_std, "ema_decay": ema_decay, "weight_decay": weight_decay,
                 "warmup": warmup, "final_lr_frac": final_lr_frac, "grad_clip": grad_clip,
                 "n_buckets": n_buckets, "lid_tail": lid_tail, "n_train": N, "data": _fingerprint(x),
                 "model": net_kwargs}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, foreach=False)
    gen = torch.Generator().manual_seed(seed)
    history: dict[str, Any] = {"loss": []}
    start, elapsed = 0, 0.0

    if resume and (ck := latest_train_state(out_dir)) is not None:
        tensors, meta = load_train_state(ck)
        if meta.get("train") != train_cfg:
            diff = sorted(k for k in train_cfg if meta.get("train", {}).get(k) != train_cfg[k])
            raise ValueError(f"checkpoint {ck} was made with other settings or data (differs in {diff}); "
                             "use another out_dir or the same settings")
        _load_state_into(model, ema, opt, tensors)
        gen.set_state(tensors["rng.torch"])
        sums, counts = tensors["lid.sums"].clone(), tensors["lid.counts"].clone()
        history, start, elapsed = meta["history"], int(meta["step"]), float(meta.get("seconds", 0.0))
        if on_resume is not None:
            on_resume(ck, start)

    if out_dir is not None and not resume and info.is_main:
        import shutil

        shutil.rmtree(Path(out_dir) / "checkpoints", ignore_errors=True)  # a fresh run: no stale state
    net = model
    if info.active:
        from torch.nn.parallel import DistributedDataParallel

        # constructing DDP broadcasts rank 0's parameters (all ranks built them from ``seed``
        # anyway) and is a collective: no rank starts before every rank has loaded its state.
        # The buffers are the data statistics, the same on every rank: no need to broadcast them.
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      broadcast_buffers=False)
    x_dev = x.to(device)
    sd = stats["sigma_data"]
    tail_start = math.floor((1 - lid_tail) * steps)
    t0 = time.perf_counter() - elapsed
    bar = tqdm(total=steps, initial=start, desc=f"train {arch}", unit="step",
               disable=not (progress and info.is_main), leave=False)
    error: Exception | None = None  # a rank's own failure, held until the next collective
    with bar:
        for step in range(start, steps):
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, steps, lr, warmup, final_lr_frac)
            idx = torch.randint(N, (batch_size,), generator=gen)
            sigma = sampler.sample(batch_size, gen)
            eps = torch.randn(batch_size, n, generator=gen)
            sig_all = sigma.to(device)
            sig = sig_all[rows]  # this rank's share of the global batch (all of it in one process)
            try:
                if error is not None:
                    raise error
                x0 = x_dev[idx[rows]]
                y = x0 + sig[:, None] * eps[rows].to(device)
                D = net(y, sig)
                lid = ((D - x0) ** 2).sum(1) / sig**2
                loss = _dsm_loss(lid, sig, stats["scale"], sd, n)
            except Exception as exc:
                if not info.active:
                    raise
                error, lid = exc, torch.zeros(local_b, device=device)
            if info.active:
                lid_all, failed = _gather_rows(lid.detach(), error is not None, info)
                if failed:
                    break  # every rank leaves here; all_ok below names the failed rank(s)
                lv = float(_dsm_loss(lid_all, sig_all, stats["scale"], sd, n))  # the global batch's loss
            else:
                lid_all = lid.detach()
                lv = float(loss.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()  # DDP: gradients averaged over ranks = gradient of the global mean
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            if not math.isfinite(lv):  # the global loss: every rank stops here together
                raise RuntimeError(f"training diverged at step {step} (loss {lv}); lower lr")
            try:
                _ema_update(model, ema, ema_decay, step)
                if step >= tail_start:
                    _accumulate(edges, sums, counts, sigma, lid_all.double().cpu())
                if step % log_every == 0 or step == steps - 1:
                    history["loss"].append([step, lv])
                    bar.set_postfix(loss=f"{lv:.4g}")
                bar.update(1)
                if callback is not None:
                    callback(step, lv)
                done = step + 1
                if out_dir is not None and (done % checkpoint_every == 0 or done == steps) and info.is_main:
                    history["lid_by_sigma"] = lid_by_sigma_rows(edges, sums, counts)
                    _checkpoint(out_dir, done, model, ema, opt, gen, sums, counts, train_cfg, history,
                                time.perf_counter() - t0)
            except Exception as exc:
                if not info.active:
                    raise
                error = exc
    all_ok(info, error)
    history["lid_by_sigma"] = lid_by_sigma_rows(edges, sums, counts)
    history["seconds"] = time.perf_counter() - t0
    final = _ema_model(model, ema)
    final.config = {**model.config, "train": train_cfg}
    final.history = history
    error = None
    try:
        if out_dir is not None and info.is_main:
            save_denoiser(final, out_dir)
    except Exception as exc:
        error = exc
    all_ok(info, error)  # also a barrier: every rank returns once the model is written
    return final


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
    import copy

    final = copy.deepcopy(model)
    with torch.no_grad():
        for k, p in final.named_parameters():
            p.copy_(ema[k])
    return final.eval().requires_grad_(False)


def _checkpoint(out_dir, step, model, ema, opt, gen, sums, counts, train_cfg, history, seconds) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.items()})
    tensors.update(_optimizer_tensors(opt))
    tensors["rng.torch"] = gen.get_state()
    tensors["lid.sums"], tensors["lid.counts"] = sums, counts
    save_train_state(out_dir, step, tensors, {"train": train_cfg, "config": model.config, "history": history,
                                              "seconds": seconds})


def _load_state_into(model, ema, opt, tensors) -> None:
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    with torch.no_grad():
        for k in ema:
            ema[k].copy_(tensors[f"ema.{k}"])
    _load_optimizer(opt, tensors)
