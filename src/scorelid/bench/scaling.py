"""The scaling study (the paper's Figure 2): DSM vs FLIPD as the manifold dimension grows.

For each intrinsic dimension ``d`` of a family (default: hyperspheres ``S^d`` in ``n = 4d``
coordinates, ``scorelid.data.dims_family``'s default), train one model with the given recipe on
``n_train`` points, then on ``n_eval`` held-out points measure, at one noise level:

* DSM (``K`` noise draws, forward passes only, ``torch.inference_mode``);
* FLIPD with the exact trace (``n`` Jacobian-vector products per point; skipped above
  ``exact_max_n``);
* FLIPD with Hutchinson's trace (``probes`` Rademacher probes).

Each row records MAE, mean LID, wall seconds, seconds per point, points per second and peak
memory (``scorelid.bench.meter``).  On the CPU every estimate runs in a fresh process
(``scorelid.bench.isolated``; ``isolate=None`` does so whenever the trained model is saved): in
one process the allocator would hand memory freed by the first row to the next ones, so the
first row (DSM) would be charged for allocations FLIPD then gets for free.  Per-member results
are cached in ``out/scaling/units`` so an
interrupted study resumes; ``out/scaling.json``, ``scaling.csv``, ``scaling.md`` and
``scaling.png`` are written atomically at the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from scorelid.bench.meter import measure
from scorelid.bench.models import default_train
from scorelid.bench.store import write_results
from scorelid.runtime.io import atomic_path, atomic_write_json, atomic_write_text
from scorelid.runtime.lock import exclusive_dir

__all__ = ["CPU_DIMS", "GPU_DIMS", "run_scaling", "scaling_markdown"]

CPU_DIMS = (4, 8, 16, 32, 64)  # n = 16 .. 256
GPU_DIMS = (4, 16, 64, 256, 512, 1024)  # n = 16 .. 4096


def _rows(n: int, sigma: float, dsm_noise: int, probes: int, exact_max_n: int) -> list[tuple[str, str, dict]]:
    rows = [("dsm", f"K={dsm_noise}", {"n_noise": dsm_noise})]
    if n <= exact_max_n:
        rows.append(("flipd", "trace=exact", {"trace": "exact"}))
    rows.append(("flipd", f"trace=hutchinson,probes={probes}", {"trace": "hutchinson", "n_probes": probes}))
    return rows


def run_scaling(
    out: str | Path,
    dims: Sequence[int] = CPU_DIMS,
    *,
    manifold: str = "hypersphere",
    n_of_d: int = 4,
    n_train: int = 2000,
    n_eval: int = 1000,
    recipe: dict[str, Any] | None = None,
    arch: str = "mlp",
    sigma: float = 0.05,
    dsm_noise: int = 8,
    probes: int = 8,
    exact_max_n: int = 4096,
    seed: int = 0,
    device: str | torch.device = "cpu",
    resume: bool = True,
    train_fn: Callable[..., Any] | None = None,
    data_fn: Callable[[int, int, int, int], tuple[Any, Any]] | None = None,
    num_threads: int | None = None,
    isolate: bool | None = None,
    repeats: int = 3,
) -> list[dict[str, Any]]:
    """Run the study into ``out`` (files ``scaling.*``); returns the records.

    Args:
        dims: intrinsic dimensions; member ``d`` lives in ``n = n_of_d * d`` coordinates.
        recipe: ``train_denoiser`` keywords (default ``QUICK_RECIPE``).
        sigma, dsm_noise, probes: estimation noise level (VE), DSM draws, Hutchinson probes.
        exact_max_n: largest ``n`` for the exact FLIPD trace.
        train_fn: replaces training, ``(x, arch, recipe, seed, device, out_dir) -> denoiser``.
        data_fn: replaces sampling, ``(d, n, num, seed) -> (x [num, n], d_true [num])``.
        num_threads: torch CPU threads while estimating (``None``: leave as is).
        isolate: run each estimate in a fresh process (``scorelid.bench.isolated``); ``None``: on
            the CPU when the model is saved in its directory (not for injected ``train_fn`` models).
        repeats: isolated estimates are timed this many times, the fastest run reported (the
            machine may be shared); peak memory is the first run's.
    """
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        with exclusive_dir(out):  # one run at a time in ``out`` (scorelid.runtime.lock)
            return _run_scaling(out, dims, manifold, n_of_d, n_train, n_eval, recipe, arch, sigma, dsm_noise,
                                probes, exact_max_n, seed, device, resume, train_fn, data_fn, num_threads,
                                isolate, repeats)
    finally:
        torch.set_num_threads(threads)


def _run_scaling(out, dims, manifold, n_of_d, n_train, n_eval, recipe, arch, sigma, dsm_noise, probes,
                 exact_max_n, seed, device, resume, train_fn, data_fn, num_threads,
                 isolate, repeats) -> list[dict[str, Any]]:
    from scorelid.bench.isolated import measure_isolated
    from scorelid.data import manifold as sample
    from scorelid.estimators import estimate

    if not dims or any(not isinstance(d, int) or d < 1 for d in dims):
        raise ValueError(f"dims must be positive integers, got {list(dims)!r}")
    if recipe is None:
        from scorelid.training.loop import QUICK_RECIPE

        recipe = {k: v for k, v in QUICK_RECIPE.items() if k != "arch"}
    device = torch.device(device)
    out = Path(out)
    units = out / "scaling" / "units"
    train_fn = train_fn or default_train
    if data_fn is None:
        def data_fn(d: int, n: int, num: int, s: int) -> tuple[Any, Any]:
            return sample(manifold, num, s, d=d, n=n)
    records: list[dict[str, Any]] = []
    for d in tqdm(list(dims), desc="scaling", unit="member"):
        n = n_of_d * d
        cache = units / f"{manifold}_d{d}_n{n}.json"
        if resume and cache.is_file():
            records += json.loads(cache.read_text())
            continue
        x_train, _ = data_fn(d, n, n_train, 2 * seed)
        x, d_true = data_fn(d, n, n_eval, 2 * seed + 1)
        mdir = out / "scaling" / "models" / f"d{d}"
        t = measure(lambda xt=x_train, md=mdir: train_fn(xt, arch, recipe, seed, device, md), device)
        den = t.value
        if isinstance(den, torch.nn.Module):
            den.eval()
        xd = x.to(device)
        iso = (device.type == "cpu" and (mdir / "config.json").is_file()) if isolate is None else isolate
        member = []
        for method, opts, kw in _rows(n, sigma, dsm_noise, probes, exact_max_n):
            if iso:
                m = measure_isolated(mdir, x, method, sigma, kw, seed=seed, device=device,
                                     num_threads=num_threads, repeats=repeats)
            else:
                m = measure(lambda method=method, kw=kw, den=den, xd=xd: estimate(
                    den, xd, method, sigma, seed=seed, progress=True, **kw), device)
            lid = m.value.double()
            member.append({
                "manifold": manifold, "d": d, "n": n, "arch": arch, "method": method, "sigma": sigma,
                "options": opts, "mae": float((lid - d_true.double()).abs().mean()),
                "mean_lid": float(lid.mean()), "seconds": m.seconds,
                "seconds_per_point": m.seconds / len(lid), "points_per_second": len(lid) / m.seconds,
                "peak_mem_bytes": m.peak_mem_bytes, "n_points": len(lid), "device": str(device),
                "train_seconds": t.seconds, "isolated": bool(iso), "timing": "fastest of "
                f"{repeats} runs, fresh process" if iso else "one run, in process",
            })
        atomic_write_json(cache, member)
        records += member
    write_results(out / "scaling", records)
    atomic_write_json(out / "scaling.json", records)
    atomic_write_text(out / "scaling.md", scaling_markdown(records))
    _plot(records, out / "scaling.png")
    return records


def _label(r: dict[str, Any]) -> str:
    if r["method"] == "dsm":
        return f"DSM ({r['options']})"
    return "FLIPD exact" if "exact" in r["options"] else "FLIPD Hutchinson"


def scaling_markdown(records: list[dict[str, Any]]) -> str:
    """Table: one row per (n, method) with MAE, time per point, throughput, peak memory and ratios."""
    lines = ["# Scaling study: DSM vs FLIPD (Figure 2)", "",
             f"Manifold {records[0]['manifold']}, σ = {records[0]['sigma']} (VE), "
             f"device {records[0]['device']}.",
             "Ratios: DSM's peak memory / FLIPD's, DSM's throughput / FLIPD's. Timing: "
             f"{records[0].get('timing', 'one run, in process')}; peak memory above the phase's start "
             "(CPU: resident set size, see `scorelid.bench.meter`).", "",
             "| d | n | method | MAE | mean LID | ms/point | points/s | peak MiB | DSM mem / this "
             "| DSM speed / this |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    by_n: dict[int, list[dict]] = {}
    for r in records:
        by_n.setdefault(r["n"], []).append(r)
    for n, rs in sorted(by_n.items()):
        dsm = next((r for r in rs if r["method"] == "dsm"), None)
        for r in rs:
            mem = r["peak_mem_bytes"]
            ratio_m = ratio_s = "–"
            if dsm is not None and r is not dsm:
                if mem and dsm["peak_mem_bytes"] is not None:
                    ratio_m = f"{dsm['peak_mem_bytes'] / mem:.2f}"
                ratio_s = f"{dsm['points_per_second'] / r['points_per_second']:.1f}×"
            lines.append(f"| {r['d']} | {n} | {_label(r)} | {r['mae']:.2f} | {r['mean_lid']:.2f} | "
                         f"{1e3 * r['seconds_per_point']:.3f} | {r['points_per_second']:.0f} | "
                         f"{'–' if mem is None else f'{mem / 2**20:.1f}'} | {ratio_m} | {ratio_s} |")
    return "\n".join(lines) + "\n"


def _plot(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    labels = list(dict.fromkeys(_label(r) for r in records))
    for lab in labels:
        rs = sorted((r for r in records if _label(r) == lab), key=lambda r: r["n"])
        ns = [r["n"] for r in rs]
        axes[0].plot(ns, [r["mae"] for r in rs], "o-", label=lab)
        axes[1].plot(ns, [(r["peak_mem_bytes"] or 0) / 2**20 for r in rs], "o-", label=lab)
        axes[2].plot(ns, [1e3 * r["seconds_per_point"] for r in rs], "o-", label=lab)
    for ax, title in zip(axes, ("MAE", "peak memory (MiB)", "time per point (ms)"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("ambient dimension n (d = n/4)")
        ax.set_title(title)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
