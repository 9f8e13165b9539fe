"""Tables and figures of the real-data benchmark: the markdown section (``markdown``), the summary
table's rows (``summary_rows``) and the figures (matplotlib, Agg backend; PNGs written atomically):

* ``extremes_figure``: the 8x8 images of lowest and highest DSM LID of each set;
* ``class_figure``: mean LID per digit class, one bar per method;
* ``anomaly_figure``: per method, LID histograms (log scale) of each set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scorelid.real.store import METHODS
from scorelid.runtime.io import atomic_path

__all__ = ["anomaly_figure", "class_figure", "extremes_figure", "markdown", "summary_rows"]


def summary_rows(res: dict[str, Any]) -> dict[str, list]:
    """The summary table's columns ``part``, ``method``, ``metric``, ``value`` (one entry per row)."""
    rows: list[tuple[str, str, str, float]] = []
    for name in ("digits", "patches"):
        for m in METHODS:
            rows.append((name, m, "mean_lid", res[name]["mean_lid"][m]))
            rows.append((name, m, "spearman_png", res[name]["spearman_png"][m]))
    for o, d in res["anomaly"]["auroc"].items():
        for m, v in d.items():
            rows.append((f"anomaly:{o}", m, "auroc", v))
    for pt, d in res.get("unet", {}).items():
        for key in ("dsm_flipd_pearson", "negative_flipd_fraction", "spearman_vs_mlp_dsm"):
            rows.append((f"unet:{pt}", "dsm/flipd", key, d[key]))
    return {"part": [r[0] for r in rows], "method": [r[1] for r in rows], "metric": [r[2] for r in rows],
            "value": [r[3] for r in rows]}


def markdown(res: dict[str, Any]) -> str:
    """The benchmark's results as a markdown section (tables; figures referenced by file name)."""
    c = res["config"]
    L = ["## Real data: digits and natural-image patches", "",
         f"sigma = {c['sigma']} (pixels in [0, 1]), DSM with {c['n_noise']} noise draws, FLIPD exact trace, "
         f"k-NN baselines with k = {c['k']}; MLP trained {c['mlp_steps']} steps; total "
         f"{res['seconds']:.0f} s with {res['torch_threads']} torch threads.", "",
         "| data | n | " + " | ".join(f"mean LID {m}" for m in METHODS) + " | "
         + " | ".join(f"Spearman(LID, PNG) {m}" for m in METHODS) + " |",
         "|---|---|" + "---|" * (2 * len(METHODS))]
    for name in ("digits", "patches"):
        d = res[name]
        L.append(f"| {name} | {d['n']} | " + " | ".join(f"{d['mean_lid'][m]:.2f}" for m in METHODS) + " | "
                 + " | ".join(f"{d['spearman_png'][m]:+.3f}" for m in METHODS) + " |")
    L += ["", "Within-class Spearman(LID, PNG size) of digits, averaged over the 10 classes: "
          + ", ".join(f"{m} {v:+.3f}" for m, v in res["digits"]["spearman_png_within_class_mean"].items())
          + ".",
          "", "Per-class mean LID of digits (`digits_per_class.png`):", "",
          "| method | " + " | ".join(str(i) for i in range(10)) + " |", "|---|" + "---|" * 10]
    for m, vals in res["digits"]["per_class_mean_lid"].items():
        L.append(f"| {m} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    L += ["", "Lowest / highest DSM-LID examples: `extremes.png`.", "",
          "### Anomaly detection (digits model; AUROC of LID, higher LID = OOD)", "",
          "| OOD set | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
    for o, d in res["anomaly"]["auroc"].items():
        L.append(f"| {o} | " + " | ".join(f"{d[m]:.3f}" for m in METHODS) + " |")
    L += ["", "Mean LID per set:", "", "| set | " + " | ".join(METHODS) + " |",
          "|---|" + "---|" * len(METHODS)]
    for s, d in res["anomaly"]["mean_lid"].items():
        L.append(f"| {s} | " + " | ".join(f"{d[m]:.2f}" for m in METHODS) + " |")
    if "unet" in res:
        L += ["", f"### Trained diffusers UNet2DModel on digits ({c['unet_steps']} steps, channels "
              f"{tuple(c['unet_channels'])}), held-out digits through VPDenoiser", "",
              "| prediction | DSM mean | FLIPD mean | Pearson(DSM, FLIPD) | Spearman(DSM, FLIPD) | "
              "negative FLIPD | Spearman vs MLP DSM | Spearman vs MLP FLIPD | train s |",
              "|---|---|---|---|---|---|---|---|---|"]
        for pt, d in res["unet"].items():
            ts = "resumed" if d["train_seconds"] is None else f"{d['train_seconds']:.0f}"
            L.append(f"| {pt} | {d['dsm_mean']:.2f} | {d['flipd_mean']:.2f} | {d['dsm_flipd_pearson']:.3f} | "
                     f"{d['dsm_flipd_spearman']:.3f} | {d['negative_flipd_fraction']:.3f} | "
                     f"{d['spearman_vs_mlp_dsm']:.3f} | {d['spearman_vs_mlp_flipd']:.3f} | {ts} |")
    return "\n".join(L) + "\n"


def extremes_figure(path: Path, sets: dict[str, tuple[np.ndarray, np.ndarray]], n: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2 * len(sets), n, figsize=(n * 0.9, 2 * len(sets) * 1.1))
    for r, (name, (x, lid)) in enumerate(sets.items()):
        order = np.argsort(lid)
        for row, (label, idx) in enumerate((("lowest", order[:n]), ("highest", order[::-1][:n]))):
            for c, i in enumerate(idx):
                ax = axes[2 * r + row, c]
                ax.imshow(x[i].reshape(8, 8), cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{lid[i]:.1f}", fontsize=7)
            axes[2 * r + row, 0].set_ylabel(f"{name}\n{label}", fontsize=7)
    fig.suptitle("Lowest and highest DSM LID (title: LID)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def class_figure(path: Path, per_class: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    w = 0.8 / len(per_class)
    for j, (m, vals) in enumerate(per_class.items()):
        ax.bar(np.arange(10) + (j - (len(per_class) - 1) / 2) * w, vals, w, label=m)
    ax.set_xticks(range(10))
    ax.set_xlabel("digit")
    ax.set_ylabel("mean LID")
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def anomaly_figure(path: Path, scores: dict[str, dict[str, np.ndarray]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(scores)
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 2.6))
    for ax, m in zip(np.atleast_1d(axes), methods, strict=True):
        allv = np.concatenate(list(scores[m].values()))
        allv = allv[allv > 0]  # log axis: non-positive (negative FLIPD) values are left out
        bins = np.geomspace(np.percentile(allv, 0.5), np.percentile(allv, 99.5), 40)
        for name, v in scores[m].items():
            ax.hist(v, bins=bins, histtype="step", label=name)
        ax.set_xscale("log")
        ax.set_title(m)
        ax.set_xlabel("LID (log scale)")
    np.atleast_1d(axes)[0].legend(fontsize=6)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
