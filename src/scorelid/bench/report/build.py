"""``write_report``: read a results directory through ``scorelid.bench.store``, draw the figures,
write ``report.md``.  Also what the report derives from the stored arrays: per-point LIDs merged
per manifold, the adaptive rows' LID curves, and every selection rule's MAE on those curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scorelid.bench.report.figures import plot_curves, plot_hist, plot_mae, plot_train_lid
from scorelid.bench.report.labels import arch_name, is_auto, manifold_rank, manifolds, row_label, true_d
from scorelid.bench.report.tables import render_markdown
from scorelid.bench.store import BASELINE_ARCH, BenchDir
from scorelid.runtime.io import atomic_write_text

__all__ = ["rule_maes", "write_report"]

#: ``{manifold: {row label: {"curve": [S, N], "sigma": [N], "grid": [S], "d": int, "oracle": float}}}``
Curves = dict[str, dict[str, dict[str, Any]]]


def _per_point(store: BenchDir, manifold: str) -> tuple[dict[str, np.ndarray], int | None]:
    """``({row: [N_row]}, d)``: the per-point LIDs of every unit of ``manifold`` (model rows first,
    named ``"<arch> <row key>"``; baselines by their row key) and the true ``d`` (``None`` when
    the points' true LIDs differ)."""
    merged: dict[str, np.ndarray] = {}
    d = None
    archs = sorted(store.unit_archs(manifold), key=lambda a: a == BASELINE_ARCH)  # model rows first
    for arch in archs:
        for k, v in store.load_per_point(manifold, arch).items():
            if k == "d_true":
                d = int(np.unique(v)[0]) if len(np.unique(v)) == 1 else None
            else:
                merged[k if arch == BASELINE_ARCH else f"{arch} {k}"] = v
    return merged, d


def _auto_curves(store: BenchDir, records: list[dict]) -> Curves:
    """The adaptive rows' stored LID curves (from the units' extras), by manifold and row label."""
    res: Curves = {}
    for r in records:
        if not is_auto(r["method"]):
            continue
        ex = store.load_extras(r["manifold"], r["arch"])
        key = r["method"]
        if f"{key}::curve" in ex:
            res.setdefault(r["manifold"], {})[row_label(r)] = {
                "curve": ex[f"{key}::curve"].astype(np.float64), "sigma": ex[f"{key}::sigma"],
                "grid": ex[f"{key}::grid"], "d": r["d"], "oracle": r.get("oracle_sigma")}
    return res


def rule_maes(curves: Curves, records: list[dict]) -> dict[tuple[str, str], dict[str, float]]:
    """MAE of every selection rule (but ``agreement``, which needs a second curve) on the stored
    curves: ``{(method, rule): {manifold: MAE}}``."""
    import torch

    from scorelid.sigma import RULES, select

    label_to_method = {row_label(r): r["method"] for r in records if is_auto(r["method"])}
    out: dict[tuple[str, str], dict[str, float]] = {}
    for m, by_label in curves.items():
        for label, item in by_label.items():
            c = torch.from_numpy(item["curve"])
            g = torch.from_numpy(np.asarray(item["grid"], dtype=np.float64))
            for rule in RULES:
                if rule == "agreement":
                    continue
                idx, _ = select(c, g, rule)
                lid = c.gather(0, idx.unsqueeze(0)).squeeze(0)
                out.setdefault((label_to_method[label], rule), {})[m] = float((lid - item["d"]).abs().mean())
    return out


def _train_curves(store: BenchDir) -> dict[str, list[dict]]:
    """``{"<manifold> (<ARCH>)": lid_by_sigma rows}`` of the units whose model recorded them."""
    res = {}
    for _, meta in sorted(store.metas(), key=lambda item: manifold_rank(item[0])):
        if meta.lid_by_sigma:
            res[f"{meta.manifold} ({arch_name(meta.arch)})"] = meta.lid_by_sigma
    return res


def _run_meta(store: BenchDir, records: list[dict]) -> dict[str, Any]:
    """Profile and seed (from the settings stamp, when any), the devices of the records, and the
    manifolds whose model was factorised (``networks`` in a unit's meta)."""
    meta: dict[str, Any] = {}
    s = store.read_stamp()
    if s is not None:
        meta = {"profile": s.get("profile", {}).get("name"), "seed": s.get("seed")}
    devices = sorted({r.get("device") for r in records if r.get("device")})
    if devices:
        meta["device"] = ", ".join(devices)
    factorised = [(m, um.extra["networks"]) for m, um in store.metas() if um.extra.get("networks")]
    if factorised:  # trained as one network per independent coordinate group (docs/training.md)
        meta["factorised"] = ", ".join(f"{m} ({k} networks)" for m, k in
                                       sorted(factorised, key=lambda item: manifold_rank(item[0])))
    return meta


def _figures(store: BenchDir, records: list[dict], curves: Curves, train: dict[str, list[dict]]) -> list[str]:
    """Draw every figure the results allow; their file names in report order."""
    figures = ["mae.png"]
    plot_mae(records, store.figure("mae.png"))
    for m in manifolds(records):
        pp, d = _per_point(store, m)
        if pp:
            d = d if d is not None else true_d(records, m)
            plot_hist(m, int(d), pp, store.figure(f"hist_{m}.png"))
            figures.append(f"hist_{m}.png")
    if curves:
        plot_curves(curves, store.figure("lid_curves.png"))
        figures.append("lid_curves.png")
    if train:
        plot_train_lid(train, records, store.figure("train_lid.png"))
        figures.append("train_lid.png")
    return figures


def write_report(out: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``out/report.md`` and the PNGs from ``out/results.json``; returns the report's path."""
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"results directory not found: {out}")
    store = BenchDir(out)
    records = store.load_records()
    if not records:
        raise ValueError(f"{out}/results.json has no records")
    if meta is None:
        meta = _run_meta(store, records)
    curves = _auto_curves(store, records) if store.has_units() else {}
    rules = rule_maes(curves, records) if curves else {}
    train = _train_curves(store) if store.has_units() else {}
    figures = _figures(store, records, curves, train)
    atomic_write_text(store.report, render_markdown(records, meta, figures, rules, train))
    return store.report
