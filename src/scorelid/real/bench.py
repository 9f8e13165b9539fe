"""The real-data benchmark: ``run_real(out_dir)``.

Parts (all data ships with scikit-learn / scikit-image; nothing is downloaded):

1. digits (8x8, 64-dim) and 8x8 grayscale natural-image patches: a vector MLP denoiser is trained
   on each (``scorelid.train_denoiser`` with ``QUICK_RECIPE``), then per-point LID by DSM and FLIPD
   at ``sigma`` (pixels in ``[0, 1]``), beside k-NN MLE and TwoNN; per-class mean LID of digits;
   Spearman correlation of per-image LID with its PNG-compressed size; extreme-LID figure.
2. anomaly detection: the digits model scores held-out digits (in-distribution) and three OOD
   sets (natural-image patches, digits with Gaussian noise, digits with an occluding square); AUROC
   of LID as the anomaly score for DSM, FLIPD, MLE, TwoNN (k-NN relative to the training digits).
3. a diffusers ``UNet2DModel`` trained on the digits with DDPM epsilon and v prediction, saved with
   ``save_pretrained`` and read back through ``scorelid.adapters.VPDenoiser``: DSM-FLIPD
   correlation, negative-FLIPD fraction, agreement with the vector-MLP estimates of the same digits.

Writes ``results.json``, ``summary.csv``, ``points_digits.csv``, ``points_patches.csv``,
``anomaly.csv``, figures ``*.png`` and ``real.md`` (a markdown section) into ``out_dir``.  Trained
models are kept under ``out_dir/models`` and reused when the run is repeated (resume).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

from scorelid.real.anomaly import auroc, knn_lid
from scorelid.real.datasets import digits, image_patches, noisy, occluded, png_sizes
from scorelid.runtime.io import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["RealConfig", "run_real"]

METHODS = ("dsm", "flipd", "mle", "twonn")


@dataclass
class RealConfig:
    """Sizes of the real-data benchmark (``quick`` default: a few minutes on 2 CPU cores)."""

    n_test: int = 300  # held-out digits (anomaly in-distribution set, UNet comparison)
    n_digits: int | None = None  # training digits (None: all 1797 - n_test)
    n_patches: int = 1500  # training patches
    n_ood: int = 300  # points in each OOD set
    mlp_steps: int = 1500
    unet_steps: int = 800
    unet_channels: tuple[int, ...] = (16, 32)
    sigma: float = 0.05
    n_noise: int = 8
    k: int = 20  # neighbours of the k-NN baselines
    noise_std: float = 0.1  # OOD: Gaussian noise on digits
    block: int = 3  # OOD: occluding square side (pixels)
    block_value: float = 1.0  # OOD: its grey level (1: full ink)
    seed: int = 0

    @classmethod
    def full(cls) -> RealConfig:
        return cls(n_patches=3000, mlp_steps=4000, unet_steps=3000, unet_channels=(32, 64), n_noise=16)


def _baseline(x: np.ndarray, method: str, k: int) -> np.ndarray:
    """In-sample k-NN LID ``[N]``: ``scorelid.estimators.baselines.baseline_lid`` when present, else
    ``knn_lid``."""
    try:
        from scorelid.estimators.baselines import baseline_lid
    except ImportError:
        return knn_lid(x, x, method, k, exclude_self=True)
    return np.asarray(baseline_lid(torch.as_tensor(x, dtype=torch.float64), method=method, k=k), np.float64)


def _mlp(x: np.ndarray, where: Path, cfg: RealConfig, progress: bool):
    from scorelid import load_denoiser, train_denoiser
    from scorelid.training.loop import QUICK_RECIPE

    if (where / "model.safetensors").is_file():
        return load_denoiser(where)
    recipe = {k: v for k, v in QUICK_RECIPE.items() if k != "steps"}
    # resume=True: an interrupted run continues from its newest training checkpoint
    return train_denoiser(torch.as_tensor(x), steps=cfg.mlp_steps, seed=cfg.seed, out_dir=where,
                          progress=progress, resume=True, **{**recipe, "arch": "mlp"})


def _lid(D, x: np.ndarray | torch.Tensor, method: str, cfg: RealConfig, progress: bool) -> np.ndarray:
    from scorelid import estimate

    x = torch.as_tensor(x)
    with torch.no_grad() if method == "dsm" else torch.enable_grad():
        out = estimate(D, x, method, cfg.sigma, n_noise=cfg.n_noise if method == "dsm" else None,
                       seed=cfg.seed, progress=progress)
    return out.numpy()


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b).statistic)


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame(columns).to_csv(tmp, index=False)


def _extremes_figure(path: Path, sets: dict[str, tuple[np.ndarray, np.ndarray]], n: int = 8) -> None:
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


def _class_figure(path: Path, per_class: dict[str, list[float]]) -> None:
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


def _anomaly_figure(path: Path, scores: dict[str, dict[str, np.ndarray]]) -> None:
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


def _unet_part(xtr: np.ndarray, xte: np.ndarray, mlp_dsm: np.ndarray, mlp_flipd: np.ndarray, root: Path,
               cfg: RealConfig, progress: bool) -> dict[str, Any]:
    from scorelid.real.unet_digits import load_digits_unet, train_digits_unet

    out: dict[str, Any] = {}
    imgs = torch.as_tensor(xte).reshape(-1, 1, 8, 8)
    for pt in ("epsilon", "v_prediction"):
        where = root / "models" / f"unet_{pt}"
        info: dict[str, Any] = {}
        if not (where / "model_index.json").is_file():
            info = train_digits_unet(xtr, where, pt, steps=cfg.unet_steps, channels=cfg.unet_channels,
                                     seed=cfg.seed, progress=progress)
        D = load_digits_unet(where)
        t0 = time.time()
        dsm = _lid(D, imgs, "dsm", cfg, progress)
        flipd = _lid(D, imgs, "flipd", cfg, progress)
        out[pt] = {
            "train_seconds": info.get("seconds"), "final_loss": info.get("final_loss"),
            "estimate_seconds": time.time() - t0,
            "dsm_mean": float(dsm.mean()), "flipd_mean": float(flipd.mean()),
            "dsm_flipd_pearson": float(pearsonr(dsm, flipd).statistic),
            "dsm_flipd_spearman": _spearman(dsm, flipd),
            "negative_flipd_fraction": float((flipd < 0).mean()),
            "spearman_vs_mlp_dsm": _spearman(dsm, mlp_dsm),
            "spearman_vs_mlp_flipd": _spearman(flipd, mlp_flipd),
            "mean_abs_diff_vs_mlp_dsm": float(np.abs(dsm - mlp_dsm).mean()),
            "dsm": dsm, "flipd": flipd,
        }
    return out


def run_real(out_dir: str | os.PathLike, full: bool = False, config: RealConfig | None = None,
             progress: bool = True, unet: bool = True) -> dict[str, Any]:
    """Run the real-data benchmark into ``out_dir``; returns the results dictionary.

    Args:
        out_dir: output directory (created).
        full: the larger ``RealConfig.full()`` sizes (ignored when ``config`` is given).
        config: explicit sizes.
        progress: progress bars.
        unet: include the diffusers UNet part (the slowest).
    """
    cfg = config or (RealConfig.full() if full else RealConfig())
    if not cfg.sigma > 0:
        raise ValueError(f"sigma must be > 0, got {cfg.sigma}")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    res: dict[str, Any] = {"config": asdict(cfg), "torch_threads": torch.get_num_threads()}

    # ---- data
    xtr, ytr, xte, _ = digits(cfg.n_test, seed=cfg.seed)
    if cfg.n_digits is not None:
        if not 2 * cfg.k < cfg.n_digits <= len(xtr):
            raise ValueError(f"n_digits must be in ({2 * cfg.k}, {len(xtr)}], got {cfg.n_digits}")
        xtr, ytr = xtr[:cfg.n_digits], ytr[:cfg.n_digits]
    if not 2 * cfg.k < cfg.n_patches or cfg.n_ood < 1:
        raise ValueError(f"need n_patches > {2 * cfg.k} and n_ood >= 1, got {cfg.n_patches}, {cfg.n_ood}")
    pall, _ = image_patches(cfg.n_patches + cfg.n_ood, seed=cfg.seed)
    ptr, pte = pall[:cfg.n_patches], pall[cfg.n_patches:]

    # ---- per-point LID of digits and patches (in-sample, each with its own model)
    lids: dict[str, dict[str, np.ndarray]] = {}
    models = {}
    for name, x in (("digits", xtr), ("patches", ptr)):
        t0 = time.time()
        D = _mlp(x, root / "models" / f"mlp_{name}", cfg, progress)
        models[name] = D
        lids[name] = {"dsm": _lid(D, x, "dsm", cfg, progress), "flipd": _lid(D, x, "flipd", cfg, progress)}
        for m in ("mle", "twonn"):
            lids[name][m] = _baseline(x, m, cfg.k)
        png = png_sizes(x)
        res[name] = {
            "n": len(x), "seconds": time.time() - t0,
            "mean_lid": {m: float(v.mean()) for m, v in lids[name].items()},
            "spearman_png": {m: _spearman(v, png) for m, v in lids[name].items()},
            "negative_flipd_fraction": float((lids[name]["flipd"] < 0).mean()),
            "png_bytes_mean": float(png.mean()),
        }
        cols = {"png_bytes": png, **{m: lids[name][m] for m in METHODS}}
        if name == "digits":
            cols = {"label": ytr, **cols}
        _write_csv(root / f"points_{name}.csv", cols)
    res["digits"]["per_class_mean_lid"] = {
        m: [float(lids["digits"][m][ytr == c].mean()) for c in range(10)] for m in METHODS
    }
    res["digits"]["spearman_png_within_class_mean"] = {
        m: float(np.mean([_spearman(lids["digits"][m][ytr == c], png_sizes(xtr[ytr == c]))
                          for c in range(10)]))
        for m in METHODS
    }
    _extremes_figure(root / "extremes.png",
                     {n: (x, lids[n]["dsm"]) for n, x in (("digits", xtr), ("patches", ptr))})
    _class_figure(root / "digits_per_class.png", res["digits"]["per_class_mean_lid"])

    # ---- anomaly detection with the digits model
    t0 = time.time()
    ood = {
        "patches": pte,
        "noisy": noisy(xte[:cfg.n_ood], cfg.noise_std, seed=cfg.seed + 1),
        "occluded": occluded(xte[:cfg.n_ood], cfg.block, cfg.block_value, seed=cfg.seed + 2),
    }
    sets = {"digits (held out)": xte, **ood}
    scores: dict[str, dict[str, np.ndarray]] = {m: {} for m in METHODS}
    for name, x in sets.items():
        for m in ("dsm", "flipd"):
            scores[m][name] = _lid(models["digits"], x, m, cfg, progress)
        for m in ("mle", "twonn"):
            scores[m][name] = knn_lid(x, xtr, m, cfg.k)
    res["anomaly"] = {
        "auroc": {o: {m: auroc(scores[m]["digits (held out)"], scores[m][o]) for m in METHODS} for o in ood},
        "mean_lid": {s: {m: float(scores[m][s].mean()) for m in METHODS} for s in sets},
        "seconds": time.time() - t0,
    }
    _anomaly_figure(root / "anomaly.png", scores)
    rows = [(s, m, float(v)) for m in METHODS for s in sets for v in scores[m][s]]
    _write_csv(root / "anomaly.csv", {"set": [r[0] for r in rows], "method": [r[1] for r in rows],
                                      "lid": [r[2] for r in rows]})

    # ---- trained diffusers UNet through the VP adapter
    if unet:
        mlp_dsm = scores["dsm"]["digits (held out)"]
        mlp_flipd = scores["flipd"]["digits (held out)"]
        u = _unet_part(xtr, xte, mlp_dsm, mlp_flipd, root, cfg, progress)
        res["unet"] = {pt: {k: v for k, v in d.items() if k not in ("dsm", "flipd")} for pt, d in u.items()}
        per_unet = {f"{pt}_{m}": u[pt][m] for pt in u for m in ("dsm", "flipd")}
        _write_csv(root / "points_unet.csv", {"mlp_dsm": mlp_dsm, "mlp_flipd": mlp_flipd, **per_unet})

    res["seconds"] = time.time() - t_start
    atomic_write_json(root / "results.json", res)
    _write_csv(root / "summary.csv", _summary_rows(res))
    atomic_write_text(root / "real.md", markdown(res))
    return res


def _summary_rows(res: dict[str, Any]) -> dict[str, list]:
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


def load_results(out_dir: str | os.PathLike) -> dict[str, Any]:
    """``results.json`` of a finished run (``FileNotFoundError`` if absent)."""
    p = Path(out_dir) / "results.json"
    if not p.is_file():
        raise FileNotFoundError(f"no real-data results at {p}")
    return json.loads(p.read_text(encoding="utf-8"))
