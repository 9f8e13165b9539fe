"""The manifold benchmark (the paper's Table 1): train, estimate on held-out points, record, report.

Work is split into *units*: one per (manifold, arch) — train the model (or load it from the
results directory), then run every estimator row on the evaluation points — plus one
(manifold, ``"knn"``) unit for the nonparametric baselines.  Each finished unit is written
atomically to ``DIR/units/<manifold>__<arch>.json`` (records) and ``.npz`` (per-point LIDs), and
trained models to ``DIR/models/<manifold>__<arch>/``; a rerun of the same command skips finished
units and resumes an interrupted training from its last checkpoint.

Data: ``n_train`` training points drawn with seed ``2 * seed`` and ``n_eval`` evaluation points
with seed ``2 * seed + 1`` (independent samples of the same normalised manifold); estimator
noise uses ``seed``.

Rows are built by ``ROW_BUILDERS``: ``{name: builder(profile, n) -> [RowSpec, ...]}``; a profile
lists the builders it runs in ``profile.methods``.  Add a row type with ``register_rows``.  A row's
function returns the per-point LIDs, or a ``RowOutput`` that adds record fields (e.g. the chosen
sigma of an adaptive row) and per-point arrays (saved to ``DIR/units/<unit>.extra.npz`` under
``"<row key>::<name>"``, e.g. ``"dsm@auto::curve"``).

Built-in builders: ``dsm``, ``flipd``, ``error_bundle``, ``normal_bundle`` (fixed sigmas) and
``dsm_auto``, ``flipd_auto`` (issue 7: the noise level chosen per point from the LID curve on
``profile.auto_sigmas`` by ``scorelid.sigma.select.estimate_auto`` with ``profile.auto_rule``;
rows ``dsm@auto`` / ``flipd@auto`` with ``sigma = None`` and the grid's fixed-level MAEs, the
oracle level and the chosen levels' quantiles in the record).

``train_jobs > 1`` (``scorelid bench --jobs N``) trains the models that are still missing first, up
to ``N`` at a time in separate processes (CPU, default data and training only); each process
trains as the sequential path would (same data, seed and recipe, the recipe's thread count), so
the models and every number are the same, only sooner on a machine with cores to spare.

A trained model's ``history["lid_by_sigma"]`` (the training loss's mean LID per sigma bucket,
``scorelid.training.loop``) is kept in the unit's ``meta`` for the report.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from scorelid.bench.meter import measure
from scorelid.bench.profiles import Profile
from scorelid.runtime.io import atomic_path, atomic_write_json, atomic_write_text
from scorelid.runtime.lock import exclusive_dir

__all__ = ["RECORD_KEYS", "ROW_BUILDERS", "RowOutput", "RowSpec", "UnitData", "load_records", "register_rows",
           "run_bench", "write_results"]

RECORD_KEYS = ("manifold", "d", "n", "arch", "method", "sigma", "options", "mae", "mean_lid", "seconds",
               "points_per_second", "peak_mem_bytes", "n_points", "device")
BASELINE_ARCH = "knn"


@dataclass
class UnitData:
    """What a row's function sees: evaluation points ``x [N, n]`` (on ``device``), training points
    ``x_train [M, n]`` (CPU), true LIDs ``d_true [N]``, the denoiser (``None`` for baselines)."""

    x: Tensor
    x_train: Tensor
    d_true: Tensor
    denoiser: Any
    device: torch.device
    seed: int
    profile: Profile


@dataclass(frozen=True)
class RowSpec:
    """One result row: ``fn(unit) -> [N]`` per-point LIDs (``[n_points]`` when set: the first
    ``n_points`` evaluation points).  ``options``: a short text shown in the results (e.g.
    ``"K=8"``, ``"trace=exact"``, ``"k=50"``)."""

    method: str
    sigma: float | None
    fn: Callable[[UnitData], Tensor]
    options: str = ""
    key: str = field(default="")
    n_points: int | None = None  # rows evaluate only the first n_points evaluation points

    def row_key(self) -> str:
        return self.key or (self.method if self.sigma is None else f"{self.method}@{self.sigma!r}")


@dataclass
class RowOutput:
    """A row's result with extras: ``lid [N]``; ``fields``: JSON-able values added to the record;
    ``arrays``: per-row arrays (any shape) saved to ``units/<unit>.extra.npz``."""

    lid: Tensor
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def _est(method: str, sigma: float, points: int | None = None, **kw: Any) -> Callable[[UnitData], Tensor]:
    from scorelid.estimators import estimate

    def fn(u: UnitData) -> Tensor:
        x = u.x if points is None else u.x[:points]
        return estimate(u.denoiser, x, method, sigma, seed=u.seed, batch_size=u.profile.batch_size,
                        progress=True, **kw)

    return fn


def _dsm_rows(p: Profile, n: int) -> list[RowSpec]:
    return [RowSpec("dsm", s, _est("dsm", s, n_noise=p.dsm_noise), f"K={p.dsm_noise}") for s in p.sigmas]


def _flipd_rows(p: Profile, n: int) -> list[RowSpec]:
    if n <= p.flipd_exact_max_n:
        return [RowSpec("flipd", s, _est("flipd", s, trace="exact"), "trace=exact") for s in p.sigmas]
    return [RowSpec("flipd", s, _est("flipd", s, trace="hutchinson", n_probes=p.flipd_probes),
                    f"trace=hutchinson,probes={p.flipd_probes}") for s in p.sigmas]


def _auto(method: str, p: Profile, **kw: Any) -> Callable[[UnitData], RowOutput]:
    def fn(u: UnitData) -> RowOutput:
        from scorelid.sigma import estimate_auto

        res = estimate_auto(u.denoiser, u.x, method, list(p.auto_sigmas), rule=p.auto_rule, seed=u.seed,
                            batch_size=u.profile.batch_size, progress=True, **kw)
        d = u.d_true.double().reshape(1, -1)
        grid_mae = (res.curve - d).abs().mean(1)  # [S]: MAE of each fixed level of the grid (same noise)
        best = int(grid_mae.argmin())
        sig = res.sigma
        fields = {"rule": res.rule, "grid": res.sigmas.tolist(), "grid_mae": grid_mae.tolist(),
                  "grid_mean_lid": res.curve.mean(1).tolist(), "oracle_sigma": float(res.sigmas[best]),
                  "oracle_mae": float(grid_mae[best]), "sigma_median": float(sig.median()),
                  "sigma_q10": float(sig.quantile(0.1)), "sigma_q90": float(sig.quantile(0.9)),
                  "flatness_median": float(res.flatness.median())}
        arrays = {"curve": res.curve.float().numpy(), "sigma": sig.numpy(), "flatness": res.flatness.numpy(),
                  "grid": res.sigmas.numpy()}
        return RowOutput(res.lid, fields, arrays)

    return fn


def _grid_text(p: Profile) -> str:
    g = p.auto_sigmas
    return f"grid={g[0]:g}..{g[-1]:g}x{len(g)},rule={p.auto_rule}"


def _dsm_auto_rows(p: Profile, n: int) -> list[RowSpec]:
    k = p.auto_noise or p.dsm_noise
    return [RowSpec("dsm@auto", None, _auto("dsm", p, n_noise=k), f"K={k},{_grid_text(p)}")]


def _flipd_auto_rows(p: Profile, n: int) -> list[RowSpec]:
    # Hutchinson's trace at every size: the exact trace at every level of the grid costs S * n JVPs
    kw = {"trace": "hutchinson", "n_probes": p.flipd_probes}
    return [RowSpec("flipd@auto", None, _auto("flipd", p, **kw),
                    f"trace=hutchinson,probes={p.flipd_probes},{_grid_text(p)}")]


def _bundle_rows(method: str, p: Profile, n: int) -> list[RowSpec]:
    m = p.bundle_points
    return [RowSpec(method, s, _est(method, s, m, n_noise=n), f"K={n}" + (f",first {m} points" if m else ""),
                    n_points=m) for s in p.bundle_sigmas]


def _error_bundle_rows(p: Profile, n: int) -> list[RowSpec]:
    return _bundle_rows("error_bundle", p, n)


def _normal_bundle_rows(p: Profile, n: int) -> list[RowSpec]:
    return _bundle_rows("normal_bundle", p, n)


#: builder name -> ``builder(profile, n) -> [RowSpec]`` (model rows; baselines are separate)
ROW_BUILDERS: dict[str, Callable[[Profile, int], list[RowSpec]]] = {
    "dsm": _dsm_rows,
    "flipd": _flipd_rows,
    "error_bundle": _error_bundle_rows,
    "normal_bundle": _normal_bundle_rows,
    "dsm_auto": _dsm_auto_rows,
    "flipd_auto": _flipd_auto_rows,
}


def register_rows(name: str, builder: Callable[[Profile, int], list[RowSpec]]) -> None:
    """Add (or replace) a row builder; profiles run it when ``name`` is in ``profile.methods``."""
    ROW_BUILDERS[name] = builder


def _baseline_rows(p: Profile) -> list[RowSpec]:
    from scorelid.estimators.baselines import baseline_lid

    def make(m: str) -> Callable[[UnitData], Tensor]:
        return lambda u: baseline_lid(u.x.cpu(), m, p.baseline_k, reference=u.x_train, seed=u.seed,
                                      progress=True)

    return [RowSpec(m, None, make(m), f"k={p.baseline_k}") for m in p.baselines]


# --------------------------------------------------------------------------- data and models


def default_data(name: str, num: int, seed: int, profile: Profile) -> tuple[Tensor, Tensor]:
    """``scorelid.data.manifold`` with the profile's dimension overrides."""
    from scorelid.data import manifold

    d, n = profile.dims.get(name, (None, None))
    return manifold(name, num, seed, d=d, n=n)


def default_train(x: Tensor, arch: str, recipe: dict[str, Any], seed: int, device: torch.device,
                  out_dir: Path, progress: bool = True) -> Any:
    """Load the finished model in ``out_dir`` or train it there (resuming from its checkpoints)."""
    from scorelid import load_denoiser, train_denoiser

    if _model_done(out_dir):
        return load_denoiser(out_dir, device=device)
    return train_denoiser(x, arch=arch, seed=seed, device=device, out_dir=out_dir, resume=True,
                          progress=progress, **recipe)


def _model_done(mdir: Path) -> bool:
    return (mdir / "config.json").is_file() and (mdir / "model.safetensors").is_file()


def _unit_name(manifold: str, arch: str) -> str:
    return f"{manifold}__{arch}"


def _record(manifold: str, d: int, n: int, arch: str, row: RowSpec, lid: Tensor, d_true: Tensor,
            seconds: float, peak: int | None, device: torch.device) -> dict[str, Any]:
    lid = lid.double().cpu()
    ok = torch.isfinite(lid)  # ESS returns NaN on degenerate patches: averaged over the rest, counted
    err = (lid - d_true.double()).abs()[ok]
    return {
        "manifold": manifold, "d": d, "n": n, "arch": arch, "method": row.method, "sigma": row.sigma,
        "options": row.options,
        "mae": float(err.mean()) if ok.any() else None,
        "mean_lid": float(lid[ok].mean()) if ok.any() else None,
        "seconds": float(seconds),
        "points_per_second": float(len(lid) / seconds) if seconds > 0 else None,
        "peak_mem_bytes": peak, "n_points": len(lid), "device": str(device),
        "n_nonfinite": int((~ok).sum()),
    }


def _run_unit(unit: UnitData, manifold: str, arch: str,
              rows: list[RowSpec]) -> tuple[list[dict], dict[str, np.ndarray], dict[str, np.ndarray]]:
    d_vals = unit.d_true.unique()
    d = int(d_vals[0]) if len(d_vals) == 1 else -1
    n = int(unit.x.shape[1])
    records, per_point, extra = [], {}, {}
    for row in tqdm(rows, desc=f"{manifold}/{arch}", unit="row", leave=False):
        m = measure(lambda row=row: row.fn(unit), unit.device)
        out = m.value if isinstance(m.value, RowOutput) else RowOutput(m.value)
        lid = torch.as_tensor(out.lid).reshape(-1)
        want = unit.x.shape[0] if row.n_points is None else min(row.n_points, unit.x.shape[0])
        if lid.shape[0] != want:
            raise RuntimeError(f"row {row.row_key()} returned {lid.shape[0]} values for {want} points")
        rec = _record(manifold, d, n, arch, row, lid, unit.d_true[:want], m.seconds, m.peak_mem_bytes,
                      unit.device)
        rec.update(out.fields)
        records.append(rec)
        per_point[row.row_key()] = lid.double().numpy()
        extra.update({f"{row.row_key()}::{k}": np.asarray(v) for k, v in out.arrays.items()})
    return records, per_point, extra


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def _save_unit(units_dir: Path, name: str, records: list[dict], per_point: dict[str, np.ndarray],
               meta: dict[str, Any], d_true: Tensor, extra: dict[str, np.ndarray] | None = None) -> None:
    """Per-point LIDs (``.npz``), extras (``.extra.npz``), then the records (``.json``): the unit
    counts as finished once its ``.json`` exists, so it is written last."""
    _save_npz(units_dir / f"{name}.npz", {"d_true": d_true.numpy(), **per_point})
    if extra:
        _save_npz(units_dir / f"{name}.extra.npz", extra)
    atomic_write_json(units_dir / f"{name}.json", {"meta": meta, "records": records})


def load_extras(out: str | Path, unit: str) -> dict[str, np.ndarray]:
    """The extra arrays of ``out/units/<unit>.extra.npz`` (``{}`` when the unit has none)."""
    path = Path(out) / "units" / f"{unit}.extra.npz"
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# --------------------------------------------------------------------------- results files


def load_records(out: str | Path) -> list[dict[str, Any]]:
    """The records of ``out/results.json`` (``FileNotFoundError``/``ValueError`` if missing/invalid)."""
    path = Path(out) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results.json in {out}")
    try:
        recs = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
        raise ValueError(f"{path} must hold a list of records")
    for i, r in enumerate(recs):
        missing = [k for k in ("manifold", "d", "arch", "method", "sigma", "mae") if k not in r]
        if missing:
            raise ValueError(f"{path}: record {i} lacks {missing}")
    return recs


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    return json.dumps(v) if isinstance(v, list | dict) else v


def write_results(out: str | Path, records: list[dict[str, Any]]) -> None:
    """``results.json`` and ``results.csv`` (columns ``RECORD_KEYS`` first), both atomically."""
    out = Path(out)
    atomic_write_json(out / "results.json", records)
    keys = list(RECORD_KEYS) + sorted({k for r in records for k in r} - set(RECORD_KEYS))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: _cell(r.get(k)) for k in keys})
    atomic_write_text(out / "results.csv", buf.getvalue())


# --------------------------------------------------------------------------- the run


def run_bench(
    profile: Profile,
    out: str | Path,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    resume: bool = True,
    report: bool = True,
    data_fn: Callable[[str, int, int, Profile], tuple[Tensor, Tensor]] | None = None,
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
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a directory")
    with exclusive_dir(out):  # one run at a time in ``out`` (scorelid.runtime.lock)
        parallel = train_jobs > 1 and device.type == "cpu" and data_fn is None and train_fn is None
        return _run_bench_locked(profile, out, seed, device, resume, report, data_fn or default_data,
                                 train_fn or default_train, train_jobs if parallel else 1)


def _run_bench_locked(profile: Profile, out: Path, seed: int, device: torch.device, resume: bool,
                      report: bool, data_fn: Callable, train_fn: Callable,
                      train_jobs: int = 1) -> list[dict[str, Any]]:
    settings = {"profile": profile.to_dict(), "fingerprint": profile.fingerprint(), "seed": seed}
    stamp = out / "bench.json"
    if stamp.is_file():
        old = json.loads(stamp.read_text())
        if (old.get("fingerprint"), old.get("seed")) != (settings["fingerprint"], seed):
            raise ValueError(f"{out} holds results of another profile or seed; use another --out")
    atomic_write_json(stamp, settings)
    units_dir = out / "units"
    pretrained = _train_parallel(profile, out, units_dir, seed, resume, train_jobs) if train_jobs > 1 else {}
    _warm_imports()
    threads = torch.get_num_threads()
    if profile.num_threads is not None:
        torch.set_num_threads(profile.num_threads)
    try:
        records = _run_all(profile, out, units_dir, seed, device, resume, data_fn, train_fn, pretrained)
    finally:
        torch.set_num_threads(threads)
    write_results(out, records)
    if report:
        from scorelid.bench.report import write_report

        write_report(out)
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


def _unit_done(units_dir: Path, uname: str) -> bool:
    return (units_dir / f"{uname}.json").is_file() and (units_dir / f"{uname}.npz").is_file()


def _train_one(job: tuple[str, str, dict[str, Any], int, Profile, str]) -> tuple[str, float]:
    """Worker of ``_train_parallel``: the sequential path's data and training, without a progress bar."""
    name, arch, recipe, seed, profile, mdir = job
    t0 = time.perf_counter()
    x_train, _ = default_data(name, profile.n_train, 2 * seed, profile)
    default_train(x_train, arch, recipe, seed, torch.device("cpu"), Path(mdir), progress=False)
    return _unit_name(name, arch), time.perf_counter() - t0


def _train_parallel(profile: Profile, out: Path, units_dir: Path, seed: int, resume: bool,
                    jobs: int) -> dict[str, float]:
    """Train the missing models ``jobs`` at a time in spawned processes; ``{unit: seconds}``."""
    todo = []
    for name in profile.manifolds:
        for arch in profile.archs:
            uname = _unit_name(name, arch)
            mdir = out / "models" / uname
            if not (resume and _unit_done(units_dir, uname)) and not _model_done(mdir):
                todo.append((name, arch, profile.recipes[arch], seed, profile, str(mdir)))
    if not todo:
        return {}
    from scorelid.data.manifolds import MANIFOLDS

    # the longest first (more ambient dimensions, more work), so that no long job starts last
    todo.sort(key=lambda j: -((profile.dims.get(j[0]) or MANIFOLDS.get(j[0]) or (0, 0))[1] or 0))
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


def _run_all(profile: Profile, out: Path, units_dir: Path, seed: int, device: torch.device, resume: bool,
             data_fn: Callable, train_fn: Callable,
             pretrained: dict[str, float] | None = None) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    arch_list = [*profile.archs, *([BASELINE_ARCH] if profile.baselines else [])]
    bar = tqdm(total=len(profile.manifolds) * len(arch_list), desc=f"bench {profile.name}", unit="unit")
    with bar:
        for name in profile.manifolds:
            cache: dict[str, Tensor] = {}
            for arch in arch_list:
                uname = _unit_name(name, arch)
                done = units_dir / f"{uname}.json"
                if resume and _unit_done(units_dir, uname):
                    records += json.loads(done.read_text())["records"]
                    bar.update(1)
                    continue
                if not cache:
                    cache["x_train"], _ = data_fn(name, profile.n_train, 2 * seed, profile)
                    cache["x"], cache["d_true"] = data_fn(name, profile.n_eval, 2 * seed + 1, profile)
                x_train, x, d_true = cache["x_train"], cache["x"], cache["d_true"]
                meta: dict[str, Any] = {"manifold": name, "arch": arch, "seed": seed}
                if arch == BASELINE_ARCH:
                    denoiser, rows = None, _baseline_rows(profile)
                else:
                    bar.set_postfix_str(f"training {name}/{arch}")
                    mdir = out / "models" / uname
                    t = measure(lambda a=arch, xt=x_train, md=mdir: train_fn(
                        xt, a, profile.recipes[a], seed, device, md), device)
                    denoiser = t.value
                    if isinstance(denoiser, torch.nn.Module):
                        denoiser.eval()
                    # trained by _train_parallel: its own training time, not the load's
                    meta["train_seconds"] = (pretrained or {}).get(uname, t.seconds)
                    curve = (getattr(denoiser, "history", None) or {}).get("lid_by_sigma")
                    if curve:
                        meta["lid_by_sigma"] = curve
                    rows = [r for b in profile.methods for r in ROW_BUILDERS[b](profile, int(x.shape[1]))]
                bar.set_postfix_str(f"estimating {name}/{arch}")
                unit = UnitData(x.to(device), x_train, d_true, denoiser, device, seed, profile)
                recs, per_point, extra = _run_unit(unit, name, arch, rows)
                _save_unit(units_dir, uname, recs, per_point, meta, d_true, extra)
                records += recs
                bar.update(1)
    return records

