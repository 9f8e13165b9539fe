"""The manifold benchmark (the paper's Table 1): train, estimate on held-out points, record, report.

Work is split into *units*: one per (manifold, arch) — train the model (or load it from the
results directory), then run every estimator row (``scorelid.bench.rows``) on the evaluation
points — plus one (manifold, ``"knn"``) unit for the nonparametric baselines.  Each finished unit
is stored atomically in the results directory (``scorelid.bench.store``, which alone knows its
layout), trained models too; a rerun of the same command skips finished units and resumes an
interrupted training from its last checkpoint.

Data: ``n_train`` training points drawn with seed ``2 * seed`` and ``n_eval`` evaluation points
with seed ``2 * seed + 1`` (independent samples of the same normalised manifold); estimator
noise uses ``seed``.

``train_jobs > 1`` (``scorelid bench --jobs N``) trains the missing models first, several at a time
(``scorelid.bench.models.train_parallel``), then runs the unfinished units' estimators several at a
time too, each unit in its own process with the profile's thread count (``_units_parallel``): the
same models and numbers, sooner.  Each row's seconds are still its own process's wall time.

A trained model's ``history["lid_by_sigma"]`` (the training loss's mean LID per sigma bucket,
``scorelid.training.loop``) is kept in the unit's ``meta`` for the report.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from scorelid.bench.meter import measure
from scorelid.bench.models import ambient_n, default_data, default_train, run_spawned, train_parallel
from scorelid.bench.profiles import Profile
from scorelid.bench.report import write_report
from scorelid.bench.rows import ROW_BUILDERS, RowOutput, RowSpec, UnitData, baseline_rows, model_rows
from scorelid.bench.store import BASELINE_ARCH, BenchDir, ResultRow, UnitMeta, UnitRecord, unit_name
from scorelid.runtime.lock import exclusive_dir

__all__ = ["run_bench"]

DataFn = Callable[[str, int, int, Profile], tuple[Tensor, Tensor]]


def run_bench(
    profile: Profile,
    out: str | Path,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    resume: bool = True,
    report: bool = True,
    data_fn: DataFn | None = None,
    train_fn: Callable[..., Any] | None = None,
    train_jobs: int = 1,
) -> list[dict[str, Any]]:
    """Run ``profile`` into ``out``; returns the records (also in ``out/results.json``).

    Args:
        profile: what to run (``scorelid.bench.profiles``).
        out: results directory (created).  It belongs to one (profile, seed): reusing it with other
            settings raises ``ValueError``.
        seed: data seeds ``2*seed`` (train) / ``2*seed+1`` (eval), model seed and noise seed.
        device: ``"cpu"`` or a CUDA device for training and estimation (baselines run on the CPU).
        resume: skip units already finished in ``out`` (``False``: recompute them all).
        report: write ``report.md`` and the figures at the end.
        data_fn, train_fn: replace data generation (``(name, num, seed, profile) -> (x, d_true)``) and
            training (``(x, arch, recipe, seed, device, out_dir) -> denoiser``), e.g. for tests.
        train_jobs: train up to this many missing models at once, each in its own process, before
            estimating (CPU with the default ``data_fn``/``train_fn`` only; otherwise ignored).
            Not part of the results directory's settings: it changes the wall time, not the numbers.
    """
    device = _check_args(profile, seed, device, train_jobs)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a directory")
    with exclusive_dir(out):  # one run at a time in ``out`` (scorelid.runtime.lock)
        parallel = train_jobs > 1 and device.type == "cpu" and data_fn is None and train_fn is None
        jobs = train_jobs if parallel else 1
        return _run_bench_locked(profile, BenchDir(out), seed, device, resume, report,
                                 data_fn or default_data, train_fn or default_train, jobs)


def _check_args(profile: Profile, seed: int, device: str | torch.device, train_jobs: int) -> torch.device:
    """``ValueError`` on bad arguments (before any work); the device."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(train_jobs, int) or train_jobs < 1:
        raise ValueError(f"train_jobs must be a positive integer, got {train_jobs!r}")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    bad = [m for m in profile.methods if m not in ROW_BUILDERS]
    if bad:
        raise ValueError(f"unknown row builder(s) {bad}; registered: {sorted(ROW_BUILDERS)}")
    missing = [a for a in profile.archs if a not in profile.recipes]
    if missing:
        raise ValueError(f"profile {profile.name!r} has no recipe for arch {missing[0]!r}")
    return device


def _run_bench_locked(profile: Profile, store: BenchDir, seed: int, device: torch.device, resume: bool,
                      report: bool, data_fn: DataFn, train_fn: Callable,
                      train_jobs: int = 1) -> list[dict[str, Any]]:
    settings = {"profile": profile.to_dict(), "fingerprint": profile.fingerprint(), "seed": seed}
    old = store.read_stamp()
    if old is not None and (old.get("fingerprint"), old.get("seed")) != (settings["fingerprint"], seed):
        raise ValueError(f"{store.root} holds results of another profile or seed; use another --out")
    store.write_stamp(settings)
    pretrained = train_parallel(profile, store, seed, resume, train_jobs) if train_jobs > 1 else {}
    done = _units_parallel(profile, store, seed, resume, train_jobs, pretrained) if train_jobs > 1 else set()
    _warm_imports()
    threads = torch.get_num_threads()
    if profile.num_threads is not None:
        torch.set_num_threads(profile.num_threads)
    try:
        records = _run_all(profile, store, seed, device, resume, data_fn, train_fn, pretrained, done)
    finally:
        torch.set_num_threads(threads)
    store.write_results(records)
    if report:
        write_report(store.root)
    return records


def _warm_imports() -> None:
    """Import what the rows use lazily, so that no row's time or memory includes an import."""
    import importlib

    for mod in ("skdim.id", "sklearn.neighbors", "torch.func", "scorelid.estimators",
                "scorelid.sigma.select"):
        try:
            importlib.import_module(mod)
        except ImportError:  # pragma: no cover - optional bench dependencies
            pass


def _draw(data_fn: DataFn, name: str, profile: Profile, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Training points ``[M, n]``, evaluation points ``[N, n]`` and their true LIDs ``[N]``."""
    x_train, _ = data_fn(name, profile.n_train, 2 * seed, profile)
    x, d_true = data_fn(name, profile.n_eval, 2 * seed + 1, profile)
    return x_train, x, d_true


def _arch_list(profile: Profile) -> list[str]:
    """The units' architectures: the profile's, plus the k-NN baselines' pseudo-architecture."""
    return [*profile.archs, *([BASELINE_ARCH] if profile.baselines else [])]


def _run_all(profile: Profile, store: BenchDir, seed: int, device: torch.device, resume: bool,
             data_fn: DataFn, train_fn: Callable, pretrained: dict[str, float] | None = None,
             done: set[tuple[str, str]] | frozenset = frozenset()) -> list[dict[str, Any]]:
    """Every unit in order (finished ones, and the ``done`` ``(manifold, arch)`` pairs that worker
    processes of this run finished, read back); the records of all."""
    records: list[dict[str, Any]] = []
    arch_list = _arch_list(profile)
    bar = tqdm(total=len(profile.manifolds) * len(arch_list), desc=f"bench {profile.name}", unit="unit")
    with bar:
        for name in profile.manifolds:
            draw = functools.cache(functools.partial(_draw, data_fn, name, profile, seed))  # once, if needed
            for arch in arch_list:
                if (resume or (name, arch) in done) and store.unit_done(name, arch):
                    rows = store.load_rows(name, arch)
                else:
                    unit = _new_unit(profile, store, name, arch, seed, device, draw(), train_fn,
                                     pretrained or {}, bar)
                    store.save_unit(unit)
                    rows = unit.rows
                records += [r.to_dict() for r in rows]
                bar.update(1)
    return records


def _units_parallel(profile: Profile, store: BenchDir, seed: int, resume: bool, jobs: int,
                    pretrained: dict[str, float]) -> set[tuple[str, str]]:
    """Run the unfinished units ``jobs`` at a time in spawned processes (CPU, default data and
    training; their models are trained already), each stored as the sequential path stores it;
    the ``(manifold, arch)`` pairs finished.  Larger ambient dimensions start first."""
    todo = [(profile, str(store.root), name, arch, seed, pretrained) for name in profile.manifolds
            for arch in _arch_list(profile) if not (resume and store.unit_done(name, arch))]
    if len(todo) < 2:
        return set()
    todo.sort(key=lambda j: (-ambient_n(profile, j[2]), j[3] == BASELINE_ARCH))
    # finished units are stored: an interrupted run resumes from them
    return set(run_spawned(_unit_job, todo, jobs, "estimating", "units", "/".join))


def _unit_job(job: tuple[Profile, str, str, str, int, dict[str, float]]) -> tuple[str, str]:
    """Worker of ``_units_parallel``: one unit as the sequential path runs it, without progress bars."""
    profile, root, name, arch, seed, pretrained = job
    if profile.num_threads is not None:
        torch.set_num_threads(profile.num_threads)
    _warm_imports()
    store = BenchDir(Path(root))
    data = _draw(default_data, name, profile, seed)
    unit = _new_unit(profile, store, name, arch, seed, torch.device("cpu"), data, default_train, pretrained,
                     tqdm(disable=True), progress=False)
    store.save_unit(unit)
    return name, arch


def _new_unit(profile: Profile, store: BenchDir, name: str, arch: str, seed: int, device: torch.device,
              data: tuple[Tensor, Tensor, Tensor], train_fn: Callable, pretrained: dict[str, float],
              bar: Any, progress: bool = True) -> UnitRecord:
    """Train (or load) the unit's model, then run its rows on the evaluation points."""
    x_train, x, d_true = data
    meta = UnitMeta(name, arch, seed)
    if arch == BASELINE_ARCH:
        denoiser, rows = None, baseline_rows(profile)
    else:
        bar.set_postfix_str(f"training {name}/{arch}")
        denoiser = _model(profile, store, meta, x_train, device, train_fn, pretrained)
        rows = model_rows(profile, int(x.shape[1]))
    bar.set_postfix_str(f"estimating {name}/{arch}")
    unit = UnitData(x.to(device), x_train, d_true, denoiser, device, seed, profile, progress)
    return _run_unit(unit, meta, rows)


def _model(profile: Profile, store: BenchDir, meta: UnitMeta, x_train: Tensor, device: torch.device,
           train_fn: Callable, pretrained: dict[str, float]) -> Any:
    """The unit's denoiser (in eval mode); its training time and training-loss curve go to ``meta``."""
    arch, mdir = meta.arch, store.model_dir(meta.manifold, meta.arch)
    t = measure(lambda: train_fn(x_train, arch, profile.recipes[arch], meta.seed, device, mdir), device)
    denoiser = t.value
    if isinstance(denoiser, torch.nn.Module):
        denoiser.eval()
    # trained by train_parallel: its own training time, not the load's
    meta.train_seconds = pretrained.get(unit_name(meta.manifold, arch), t.seconds)
    meta.lid_by_sigma = (getattr(denoiser, "history", None) or {}).get("lid_by_sigma") or None
    config = getattr(denoiser, "config", None)
    groups = config.get("net", {}).get("groups") if isinstance(config, dict) else None
    if groups:  # a factorised MLP: one network per independent coordinate group
        meta.extra["networks"] = len(groups)
    return denoiser


def _result_row(meta: UnitMeta, d: int, n: int, row: RowSpec, lid: Tensor, d_true: Tensor, seconds: float,
                peak: int | None, device: torch.device) -> ResultRow:
    """The record of ``row``: MAE and mean of the finite per-point LIDs ``lid [N]`` against
    ``d_true [N]``, wall ``seconds``, ``peak`` memory (bytes)."""
    lid = lid.double().cpu()
    ok = torch.isfinite(lid)  # ESS returns NaN on degenerate patches: averaged over the rest, counted
    err = (lid - d_true.double()).abs()[ok]
    return ResultRow(
        manifold=meta.manifold, d=d, n=n, arch=meta.arch, method=row.method, sigma=row.sigma,
        options=row.options,
        mae=float(err.mean()) if ok.any() else None,
        mean_lid=float(lid[ok].mean()) if ok.any() else None,
        seconds=float(seconds),
        points_per_second=float(len(lid) / seconds) if seconds > 0 else None,
        peak_mem_bytes=peak, n_points=len(lid), device=str(device),
        n_nonfinite=int((~ok).sum()),
    )


def _run_unit(unit: UnitData, meta: UnitMeta, rows: list[RowSpec]) -> UnitRecord:
    """Measure every row on ``unit``; its records, per-point LIDs and extras."""
    d_vals = unit.d_true.unique()
    d = int(d_vals[0]) if len(d_vals) == 1 else -1
    n = int(unit.x.shape[1])
    result = UnitRecord(meta, [], unit.d_true.numpy(), {}, {})
    for row in tqdm(rows, desc=f"{meta.manifold}/{meta.arch}", unit="row", leave=False,
                    disable=not unit.progress):
        m = measure(lambda row=row: row.fn(unit), unit.device)
        out = m.value if isinstance(m.value, RowOutput) else RowOutput(m.value)
        lid = torch.as_tensor(out.lid).reshape(-1)
        want = unit.x.shape[0] if row.n_points is None else min(row.n_points, unit.x.shape[0])
        if lid.shape[0] != want:
            raise RuntimeError(f"row {row.row_key()} returned {lid.shape[0]} values for {want} points")
        rec = _result_row(meta, d, n, row, lid, unit.d_true[:want], m.seconds, m.peak_mem_bytes, unit.device)
        rec.update(out.fields)
        result.rows.append(rec)
        result.per_point[row.row_key()] = lid.double().numpy()
        result.extras.update({f"{row.row_key()}::{k}": np.asarray(v) for k, v in out.arrays.items()})
    return result
