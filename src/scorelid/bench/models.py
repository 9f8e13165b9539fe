"""Data and models of the manifold benchmark: default data, training (or loading) a unit's model,
and training the missing models several at a time.

``train_parallel`` (``scorelid bench --jobs N``) trains the models that are still missing first,
up to ``N`` at a time in separate processes (CPU, default data and training only); each process
trains as the sequential path would (same data, seed and recipe, the recipe's thread count), so
the models and every number are the same, only sooner on a machine with cores to spare.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from scorelid.bench.profiles import Profile
from scorelid.bench.store import BenchDir, model_done, unit_name

__all__ = ["default_data", "default_train", "train_parallel"]


def default_data(name: str, num: int, seed: int, profile: Profile) -> tuple[Tensor, Tensor]:
    """``scorelid.data.manifold`` with the profile's dimension overrides: points ``[num, n]``
    and their true LIDs ``[num]``."""
    from scorelid.data import manifold

    d, n = profile.dims.get(name, (None, None))
    return manifold(name, num, seed, d=d, n=n)


def default_train(x: Tensor, arch: str, recipe: dict[str, Any], seed: int, device: torch.device,
                  out_dir: Path, progress: bool = True) -> Any:
    """Load the finished model in ``out_dir`` or train it there (resuming from its checkpoints)."""
    from scorelid import load_denoiser, train_denoiser

    if model_done(out_dir):
        return load_denoiser(out_dir, device=device)
    return train_denoiser(x, arch=arch, seed=seed, device=device, out_dir=out_dir, resume=True,
                          progress=progress, **recipe)


def _train_one(job: tuple[str, str, dict[str, Any], int, Profile, str]) -> tuple[str, float]:
    """Worker of ``train_parallel``: the sequential path's data and training, without a progress bar;
    ``(unit name, wall seconds)``."""
    name, arch, recipe, seed, profile, mdir = job
    t0 = time.perf_counter()
    x_train, _ = default_data(name, profile.n_train, 2 * seed, profile)
    default_train(x_train, arch, recipe, seed, torch.device("cpu"), Path(mdir), progress=False)
    return unit_name(name, arch), time.perf_counter() - t0


def _missing(profile: Profile, store: BenchDir, seed: int,
             resume: bool) -> list[tuple[str, str, dict[str, Any], int, Profile, str]]:
    """Jobs of the models to train, the longest first (more ambient dimensions, more work), so
    that no long job starts last."""
    from scorelid.data.manifolds import MANIFOLDS

    todo = [(name, arch, profile.recipes[arch], seed, profile, str(store.model_dir(name, arch)))
            for name in profile.manifolds for arch in profile.archs
            if not (resume and store.unit_done(name, arch)) and not store.model_done(name, arch)]
    todo.sort(key=lambda j: -((profile.dims.get(j[0]) or MANIFOLDS.get(j[0]) or (0, 0))[1] or 0))
    return todo


def train_parallel(profile: Profile, store: BenchDir, seed: int, resume: bool, jobs: int) -> dict[str, float]:
    """Train the missing models ``jobs`` at a time in spawned processes; ``{unit name: seconds}``."""
    todo = _missing(profile, store, seed, resume)
    if not todo:
        return {}
    seconds: dict[str, float] = {}
    pool = multiprocessing.get_context("spawn").Pool(min(jobs, len(todo)))
    try:
        bar = tqdm(total=len(todo), desc=f"training {len(todo)} models, {min(jobs, len(todo))} at a time",
                   unit="model")
        with bar:
            for uname, sec in pool.imap_unordered(_train_one, todo):
                seconds[uname] = sec
                bar.set_postfix_str(f"{uname} {sec:.0f} s")
                bar.update(1)
        pool.close()
    except BaseException:
        pool.terminate()  # an interrupt or a failed model stops the others; checkpoints let a rerun resume
        raise
    finally:
        pool.join()
    return seconds
