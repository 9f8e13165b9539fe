"""Figure of LID curves: per data set, mean / median LID against sigma with bands and the chosen sigma."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["plot_lid_curves"]


def plot_lid_curves(curves_by_manifold: dict[str, dict], out_png: str) -> None:
    """One panel per data set: mean and median LID curve over points, 10-90% and 25-75% bands,
    the true d if known, and the chosen sigma (median, and its 10-90% range over points).

    ``curves_by_manifold[name]`` holds ``sigmas`` ``[S]``, ``curve`` ``[S, N]``, optionally
    ``d_true`` (number), ``sigma`` (chosen levels ``[N]`` or a number), ``plateaus`` (per point, a
    list of ``scorelid.sigma.plateaus.Plateau``: drawn as dots at their scale and LID) and ``label``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scorelid.runtime.io import atomic_path

    names = list(curves_by_manifold)
    if not names:
        raise ValueError("no curves to plot")
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        item = curves_by_manifold[name]
        s = np.asarray(item["sigmas"], dtype=float)
        c = np.asarray(item["curve"], dtype=float)
        ax.plot(s, c.mean(1), "o-", ms=3, color="C0", label=item.get("label", "mean LID"))
        ax.plot(s, np.median(c, axis=1), "-", lw=1, color="C1", label="median")
        ax.fill_between(s, np.quantile(c, 0.1, axis=1), np.quantile(c, 0.9, axis=1), alpha=0.18,
                        color="C0", label="10-90%")
        ax.fill_between(s, np.quantile(c, 0.25, axis=1), np.quantile(c, 0.75, axis=1), alpha=0.3,
                        color="C0", label="25-75%")
        if item.get("d_true") is not None:
            ax.axhline(float(item["d_true"]), color="k", ls="--", lw=1, label="true d")
        if item.get("sigma") is not None:
            chosen = np.asarray(item["sigma"], dtype=float).reshape(-1)
            ax.axvline(float(np.median(chosen)), color="C3", lw=1.2, label="chosen sigma (median)")
            if chosen.size > 1 and np.ptp(chosen) > 0:
                ax.axvspan(float(np.quantile(chosen, 0.1)), float(np.quantile(chosen, 0.9)), color="C3",
                           alpha=0.08, label="chosen sigma 10-90%")
        found = [q for per_point in item.get("plateaus") or [] for q in per_point]
        if found:  # every plateau of every point: the scales at which the points have a dimension
            ax.scatter([q.sigma for q in found], [q.lid for q in found], s=6, color="C2", alpha=0.25,
                       linewidths=0, label=f"plateaus ({len(found)})", zorder=3)
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel("sigma")
        ax.set_ylabel("LID")
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
