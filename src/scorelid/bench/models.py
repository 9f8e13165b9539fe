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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from scorelid.bench.profiles import Profile
from scorelid.bench.store import BenchDir, model_done, unit_name

__all__ = ["ambient_n", "default_data", "default_train", "run_spawned", "train_parallel"]


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
    todo = [(name, arch, profile.recipes[arch], seed, profile, str(store.model_dir(name, arch)))
            for name in profile.manifolds for arch in profile.archs
            if not (resume and store.unit_done(name, arch)) and not store.model_done(name, arch)]
    todo.sort(key=lambda j: -ambient_n(profile, j[0]))
    return todo


def ambient_n(profile: Profile, name: str) -> int:
    """The ambient dimension of manifold ``name`` in ``profile`` (0 when unknown): parallel jobs
    start with the largest, which take longest, so that none of them starts last."""
    from scorelid.data.manifolds import MANIFOLDS

    return (profile.dims.get(name) or MANIFOLDS.get(name) or (0, 0))[1] or 0


def run_spawned(fn: Callable[[Any], Any], todo: list[Any], jobs: int, doing: str, things: str,
                label: Callable[[Any], str]) -> list[Any]:
    """``fn`` on every item of ``todo``, ``jobs`` at a time in spawned processes, with a progress
    bar ("{doing} {len(todo)} {things}, {k} at a time"; each finished result shown as
    ``label(result)``); the results in finishing order.  An interrupt or a failed job stops the
    others (what they stored lets a rerun resume)."""
    k = min(jobs, len(todo))
    pool = multiprocessing.get_context("spawn").Pool(k)
    results = []
    try:
        with tqdm(total=len(todo), desc=f"{doing} {len(todo)} {things}, {k} at a time", unit="job") as bar:
            for res in pool.imap_unordered(fn, todo):
                results.append(res)
                bar.set_postfix_str(label(res))
                bar.update(1)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return results


def train_parallel(profile: Profile, store: BenchDir, seed: int, resume: bool, jobs: int) -> dict[str, float]:
    """Train the missing models ``jobs`` at a time in spawned processes; ``{unit name: seconds}``."""
    todo = _missing(profile, store, seed, resume)
    if not todo:
        return {}
    # checkpoints let a rerun resume an interrupted model
    return dict(run_spawned(_train_one, todo, jobs, "training", "models", lambda r: f"{r[0]} {r[1]:.0f} s"))
