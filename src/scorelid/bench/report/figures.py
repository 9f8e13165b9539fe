"""The report's figures (matplotlib, Agg backend), each written atomically as a PNG:

* ``plot_mae``: MAE per manifold (groups) and row (bars), log scale;
* ``plot_hist``: per-point LID histograms of each row of one manifold, true ``d`` marked;
* ``plot_curves``: per manifold, the mean LID curve over the sigma grid of each adaptive row (10-90%
  band), true ``d``, the chosen sigma (median over points) and the oracle sigma;
* ``plot_train_lid``: the mean LID read off the training loss per sigma bucket against the DSM
  estimate's mean LID on the held-out points.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from scorelid.bench.report.labels import group_rows, manifolds, true_d
from scorelid.bench.report.references import MANIFOLD_ORDER, SHORT
from scorelid.runtime.io import atomic_path

__all__ = ["plot_curves", "plot_hist", "plot_mae", "plot_train_lid"]



def _savefig(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")



def plot_mae(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mans = manifolds(records)
    rows = group_rows(records)
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(mans) + 0.15 * len(rows) * len(mans)), 4.5))
    # one distinct colour per row: tab20 (10 hues, dark and light), tab20b beyond 20 rows
    colors = [*plt.get_cmap("tab20").colors, *plt.get_cmap("tab20b").colors]
    for j, (label, by_m) in enumerate(rows):
        vals = [by_m.get(m, {}).get("mae") for m in mans]
        xs = np.arange(len(mans)) + (j - (len(rows) - 1) / 2) * width
        ax.bar(xs, [np.nan if v is None else v for v in vals], width, label=label,
               color=colors[j % len(colors)])
    ax.set_xticks(np.arange(len(mans)), [f"{SHORT.get(m, m)}\n(d={true_d(records, m)})" for m in mans])
    ax.set_yscale("log")
    ax.set_ylabel("MAE of per-point LID (log scale)")
    ax.set_title("MAE per manifold and method (held-out points)")
    ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    _savefig(fig, path)
    plt.close(fig)


def plot_hist(manifold: str, d: int, per_point: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in per_point if k != "d_true"]
    cols = min(4, len(keys))
    nrows = math.ceil(len(keys) / cols)
    # one x range for every panel (the true d and the 1-99% range of every row), so that the
    # spreads compare at a glance
    finite = [v[np.isfinite(v)] for v in (per_point[k] for k in keys)]
    lo = min([d - 1.0] + [float(np.quantile(v, 0.01)) for v in finite if v.size])
    hi = max([d + 1.0] + [float(np.quantile(v, 0.99)) for v in finite if v.size])
    edges = np.linspace(lo, hi, 61)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.4 * nrows), squeeze=False)
    for ax, key, v in zip(axes.ravel(), keys, finite, strict=False):
        ax.hist(np.clip(v, lo, hi), bins=edges, color="tab:blue", alpha=0.8)
        ax.set_xlim(lo, hi)
        ax.axvline(d, color="tab:red", lw=1.5, label=f"true d={d}")
        ax.set_title(key, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{manifold}: per-point LID estimates (held-out points; values beyond the rows' 1-99% "
                 "range are piled at the edges)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    _savefig(fig, path)
    plt.close(fig)


def plot_curves(curves: dict[str, dict[str, dict[str, np.ndarray]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mans = [m for m in MANIFOLD_ORDER if m in curves] + [m for m in curves if m not in MANIFOLD_ORDER]
    cols = min(3, len(mans))
    nrows = math.ceil(len(mans) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.4 * cols, 3.3 * nrows), squeeze=False)
    for ax, m in zip(axes.ravel(), mans, strict=False):
        d = None
        for j, (label, it) in enumerate(curves[m].items()):
            s, c, color = np.asarray(it["grid"], float), it["curve"], f"C{j}"
            d = it["d"]
            ax.plot(s, c.mean(1), "o-", ms=3, color=color, label=f"{label} (mean)")
            ax.fill_between(s, np.quantile(c, 0.1, axis=1), np.quantile(c, 0.9, axis=1), color=color,
                            alpha=0.2)
            ax.axvline(float(np.median(it["sigma"])), color=color, lw=1.3, label="chosen σ (median)")
            if it.get("oracle") is not None:
                ax.axvline(float(it["oracle"]), color=color, lw=1.0, ls=":", label="oracle σ")
        lo = min(float(np.quantile(it["curve"], 0.1, axis=1).min()) for it in curves[m].values())
        hi = max(float(np.quantile(it["curve"], 0.9, axis=1).max()) for it in curves[m].values())
        _lid_axes(ax, m, "LID", d, lo, hi)
    _legend_in_spare(fig, axes, len(mans))
    fig.suptitle("LID curves over σ (held-out points; band 10-90%) and the chosen σ", fontsize=10)
    _savefig(fig, path)
    plt.close(fig)


def _lid_axes(ax: Any, title: str, ylabel: str, d: float | None, lo: float | None, hi: float | None) -> None:
    """Log-σ axes of an LID-against-σ panel; with a true ``d``, its line and y-limits around
    ``[lo, hi]`` (the plotted range) that keep ``d`` in view and cut runaway curves at ``3 d``."""
    if d is not None:
        ax.axhline(d, color="k", ls="--", lw=1, label="true d")
        ax.set_ylim(max(0.0, min(lo, 0.8 * d)), min(max(hi, 1.2 * d), 3 * d) * 1.03)
    ax.set_xscale("log")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("σ (VE, data units)", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)


def _legend_in_spare(fig: Any, axes: np.ndarray, used: int) -> None:
    """The first panel's legend in the first unused panel, or below the figure when all are used."""
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    for ax in axes.ravel()[used:]:
        ax.axis("off")
    if used < axes.size:
        axes.ravel()[used].legend(handles, labels, fontsize=8, loc="center")
        fig.tight_layout(rect=(0, 0, 1, 0.95))
    else:
        fig.tight_layout(rect=(0, 0.12, 1, 0.95))
        fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=3)


def plot_train_lid(train: dict[str, list[dict]], records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(train)
    cols = min(3, len(names))
    nrows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.4 * cols, 3.3 * nrows), squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        m, arch = name.split(" (")[0], name.split(" (")[1].rstrip(")").lower()
        rows = [r for r in train[name] if r.get("count") and r.get("mean_lid") is not None
                and math.isfinite(r["mean_lid"])]
        ax.plot([r["sigma_mid"] for r in rows], [r["mean_lid"] for r in rows], "s-", ms=3, color="C1",
                label="training loss (train points)")
        mine = [r for r in records if r["manifold"] == m and r["arch"] == arch]
        auto = next((r for r in mine if r["method"] == "dsm@auto" and r.get("grid_mean_lid")), None)
        if auto is not None:
            ax.plot(auto["grid"], auto["grid_mean_lid"], "o-", ms=3, color="C0",
                    label="DSM estimate (held-out points)")
        fixed = sorted((r["sigma"], r["mean_lid"]) for r in mine
                       if r["method"] == "dsm" and r.get("mean_lid") is not None)
        if fixed and auto is None:
            ax.plot(*zip(*fixed, strict=True), "o", color="C0", label="DSM estimate (held-out points)")
        d = next((r["d"] for r in records if r["manifold"] == m), None)
        vals = [r["mean_lid"] for r in rows] + list((auto or {}).get("grid_mean_lid", []))
        lo, hi = (min(vals), max(vals)) if vals else (d, d)
        _lid_axes(ax, name, "mean LID", d, lo, hi)
    _legend_in_spare(fig, axes, len(names))
    fig.suptitle("Mean LID read off the training loss vs the DSM estimate", fontsize=10)
    _savefig(fig, path)
    plt.close(fig)
