"""The resumable state of a training run: built from a ``TrainConfig``, packed into a checkpoint's
tensors and metadata, and loaded back from one.

A checkpoint holds the weights, the EMA weights, the AdamW moments, the batch generator's state and
the ``lid_by_sigma`` accumulators (``state.safetensors``) plus the settings record, the history and
the elapsed time (``state.json``), so a resumed run ends with the uninterrupted run's weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from scorelid.nn.precond import EDMDenoiser
from scorelid.runtime.resume import fingerprint
from scorelid.training.checkpoint import latest_train_state, load_train_state
from scorelid.training.config import TrainConfig, group_width
from scorelid.training.sigma_sampling import SigmaSampler

__all__ = ["TrainState", "build_state", "network_for", "resume_state", "state_meta", "state_tensors"]


@dataclass
class TrainState:
    """Everything a step changes, plus what a resumed run must agree on.

    ``record`` is ``config["train"]`` (``TrainConfig.record``); ``step`` the steps done; ``seconds``
    the training time spent before this process (a resumed run's earlier part).
    """

    model: EDMDenoiser
    ema: dict[str, Tensor]
    opt: torch.optim.Optimizer
    gen: torch.Generator
    sampler: SigmaSampler
    stats: dict[str, Any]
    edges: Tensor
    sums: Tensor
    counts: Tensor
    record: dict[str, Any]
    history: dict[str, Any] = field(default_factory=lambda: {"loss": []})
    step: int = 0
    seconds: float = 0.0


def build_state(x: Tensor, cfg: TrainConfig, device: torch.device,
                groups: list[list[int]] | None) -> TrainState:
    """A fresh state for float32 points ``x [N, n]``: the network initialised from ``cfg.seed``
    (without touching torch's global generator), EMA = weights, AdamW, the batch generator.
    ``groups``: the coordinate groups of a factorised network (``factor_groups(x, cfg)``), or
    ``None`` for ``cfg``'s own network."""
    N, n = x.shape
    arch, net = network_for(cfg, groups)
    stats = EDMDenoiser.data_stats(x, groups)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = EDMDenoiser(arch, n, sigma_data=stats["sigma_data"], skip=cfg.skip,
                            rank=stats["U"].shape[1], net=net, c_in=cfg.c_in)
    model.set_data_stats(stats)
    model.to(device).train()
    ema = {k: p.detach().clone() for k, p in model.named_parameters()}
    sampler = SigmaSampler(cfg.sigma_dist, cfg.sigma_min, cfg.sigma_max, cfg.p_mean, cfg.p_std,
                           stats["scale"])
    return TrainState(
        model=model, ema=ema,
        opt=torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False),
        gen=torch.Generator().manual_seed(cfg.seed), sampler=sampler, stats=stats,
        edges=sampler.bucket_edges(cfg.n_buckets),
        sums=torch.zeros(cfg.n_buckets, dtype=torch.float64),
        counts=torch.zeros(cfg.n_buckets, dtype=torch.float64),
        record=cfg.record(N, fingerprint(x.float())),  # the training points, as float32 bytes
    )


def network_for(cfg: TrainConfig, groups: list[list[int]] | None) -> tuple[str, dict[str, Any]]:
    """``(arch, network options)`` of the network ``cfg`` trains: a ``GroupedMLP`` of width
    ``group_width(cfg, G)`` per group (with the MLP's other options) for ``groups``
    (``factor_groups``), else ``cfg``'s own network (``groups`` ``None``)."""
    if groups is None:
        return cfg.arch, cfg.net
    return "grouped", {**cfg.net, "width": group_width(cfg, len(groups)), "groups": groups}


def state_tensors(state: TrainState) -> dict[str, Tensor]:
    """The tensors of a checkpoint (``state.safetensors``)."""
    tensors = {f"model.{k}": v for k, v in state.model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in state.ema.items()})
    tensors.update(_optimizer_tensors(state.opt))
    tensors["rng.torch"] = state.gen.get_state()
    tensors["lid.sums"], tensors["lid.counts"] = state.sums, state.counts
    return tensors


def state_meta(state: TrainState, seconds: float) -> dict[str, Any]:
    """The metadata of a checkpoint (``state.json``, beside its step)."""
    return {"train": state.record, "config": state.model.config, "history": state.history, "seconds": seconds}


def resume_state(state: TrainState, out_dir: str | os.PathLike) -> Path | None:
    """Load the newest checkpoint in ``out_dir`` into ``state``; returns it (``None``: there is none).

    ``ValueError`` naming the differing keys if it was made with other settings or data.
    """
    ck = latest_train_state(out_dir)
    if ck is None:
        return None
    tensors, meta = load_train_state(ck)
    if meta.get("train") != state.record:
        diff = sorted(k for k in state.record if meta.get("train", {}).get(k) != state.record[k])
        raise ValueError(f"checkpoint {ck} was made with other settings or data (differs in {diff}); "
                         "use another out_dir or the same settings")
    state.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    with torch.no_grad():
        for k in state.ema:
            state.ema[k].copy_(tensors[f"ema.{k}"])
    _load_optimizer(state.opt, tensors)
    state.gen.set_state(tensors["rng.torch"])
    state.sums, state.counts = tensors["lid.sums"].clone(), tensors["lid.counts"].clone()
    state.history, state.step = meta["history"], int(meta["step"])
    state.seconds = float(meta.get("seconds", 0.0))
    return ck


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
