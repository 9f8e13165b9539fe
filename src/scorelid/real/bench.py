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
``anomaly.csv``, figures ``*.png`` and ``real.md`` (a markdown section) into ``out_dir``
(``scorelid.real.store``, which alone knows the layout; tables and figures in
``scorelid.real.report``).  Trained models are kept under ``out_dir/models`` and reused when the
run is repeated (resume).
"""

from __future__ import annotations

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
from scorelid.real.report import anomaly_figure, class_figure, extremes_figure, markdown, summary_rows
from scorelid.real.store import METHODS, RealDir

__all__ = ["RealConfig", "run_real"]



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



def _mlp(x: np.ndarray, where: Path, cfg: RealConfig, progress: bool) -> Any:
    """The vector MLP kept in ``where``, or trained there (``QUICK_RECIPE``, ``cfg.mlp_steps``)."""
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


def _unet_part(xtr: np.ndarray, xte: np.ndarray, mlp_dsm: np.ndarray, mlp_flipd: np.ndarray, store: RealDir,
               cfg: RealConfig, progress: bool) -> dict[str, Any]:
    from scorelid.real.unet_digits import load_digits_unet, train_digits_unet

    out: dict[str, Any] = {}
    imgs = torch.as_tensor(xte).reshape(-1, 1, 8, 8)
    for pt in ("epsilon", "v_prediction"):
        where = store.unet_dir(pt)
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
    store = RealDir(Path(out_dir))
    store.root.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    res: dict[str, Any] = {"config": asdict(cfg), "torch_threads": torch.get_num_threads()}
    xtr, ytr, xte, ptr, pte = _data(cfg)
    digits_model = _per_point_part(res, store, xtr, ytr, ptr, cfg, progress)
    scores = _anomaly_part(res, store, digits_model, xtr, xte, pte, cfg, progress)
    if unet:
        _unet_results(res, store, xtr, xte, scores, cfg, progress)
    res["seconds"] = time.time() - t_start
    store.write_results(res, summary_rows(res), markdown(res))
    return res


def _data(cfg: RealConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training digits ``[M, 64]`` and their labels ``[M]``, held-out digits ``[n_test, 64]``,
    training patches ``[n_patches, 64]`` and held-out patches ``[n_ood, 64]`` (pixels in [0, 1])."""
    xtr, ytr, xte, _ = digits(cfg.n_test, seed=cfg.seed)
    if cfg.n_digits is not None:
        if not 2 * cfg.k < cfg.n_digits <= len(xtr):
            raise ValueError(f"n_digits must be in ({2 * cfg.k}, {len(xtr)}], got {cfg.n_digits}")
        xtr, ytr = xtr[:cfg.n_digits], ytr[:cfg.n_digits]
    if not 2 * cfg.k < cfg.n_patches or cfg.n_ood < 1:
        raise ValueError(f"need n_patches > {2 * cfg.k} and n_ood >= 1, got {cfg.n_patches}, {cfg.n_ood}")
    pall, _ = image_patches(cfg.n_patches + cfg.n_ood, seed=cfg.seed)
    return xtr, ytr, xte, pall[:cfg.n_patches], pall[cfg.n_patches:]


def _in_sample(name: str, x: np.ndarray, store: RealDir, cfg: RealConfig,
               progress: bool) -> tuple[Any, dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """The MLP of ``x [N, 64]`` (trained or reloaded), in-sample LIDs ``{method: [N]}``, PNG sizes
    ``[N]`` (bytes) and the part's results."""
    t0 = time.time()
    D = _mlp(x, store.mlp_dir(name), cfg, progress)
    lids = {"dsm": _lid(D, x, "dsm", cfg, progress), "flipd": _lid(D, x, "flipd", cfg, progress)}
    for m in ("mle", "twonn"):
        lids[m] = _baseline(x, m, cfg.k)
    png = png_sizes(x)
    part = {
        "n": len(x), "seconds": time.time() - t0,
        "mean_lid": {m: float(v.mean()) for m, v in lids.items()},
        "spearman_png": {m: _spearman(v, png) for m, v in lids.items()},
        "negative_flipd_fraction": float((lids["flipd"] < 0).mean()),
        "png_bytes_mean": float(png.mean()),
    }
    return D, lids, png, part


def _per_class(lids: dict[str, np.ndarray], xtr: np.ndarray, ytr: np.ndarray) -> dict[str, Any]:
    """Per digit class: mean LID of each method, and Spearman(LID, PNG size) averaged over classes."""
    return {
        "per_class_mean_lid": {m: [float(lids[m][ytr == c].mean()) for c in range(10)] for m in METHODS},
        "spearman_png_within_class_mean": {
            m: float(np.mean([_spearman(lids[m][ytr == c], png_sizes(xtr[ytr == c])) for c in range(10)]))
            for m in METHODS
        },
    }


def _per_point_part(res: dict[str, Any], store: RealDir, xtr: np.ndarray, ytr: np.ndarray, ptr: np.ndarray,
                    cfg: RealConfig, progress: bool) -> Any:
    """Part 1 (into ``res``, per-point files, figures): in-sample LID of digits and patches, each
    with its own model; returns the digits model."""
    models, lids = {}, {}
    for name, x in (("digits", xtr), ("patches", ptr)):
        models[name], lids[name], png, res[name] = _in_sample(name, x, store, cfg, progress)
        cols = {"png_bytes": png, **{m: lids[name][m] for m in METHODS}}
        if name == "digits":
            cols = {"label": ytr, **cols}
        store.write_points(name, cols)
    res["digits"].update(_per_class(lids["digits"], xtr, ytr))
    extremes_figure(store.figure("extremes.png"),
                    {n: (x, lids[n]["dsm"]) for n, x in (("digits", xtr), ("patches", ptr))})
    class_figure(store.figure("digits_per_class.png"), res["digits"]["per_class_mean_lid"])
    return models["digits"]


def _anomaly_part(res: dict[str, Any], store: RealDir, D: Any, xtr: np.ndarray, xte: np.ndarray,
                  pte: np.ndarray, cfg: RealConfig, progress: bool) -> dict[str, dict[str, np.ndarray]]:
    """Part 2 (into ``res``, ``anomaly.csv``, figure): the digits model's LID as an anomaly score;
    returns the scores ``{method: {set: [N_set]}}``."""
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
            scores[m][name] = _lid(D, x, m, cfg, progress)
        for m in ("mle", "twonn"):
            scores[m][name] = knn_lid(x, xtr, m, cfg.k)
    res["anomaly"] = {
        "auroc": {o: {m: auroc(scores[m]["digits (held out)"], scores[m][o]) for m in METHODS} for o in ood},
        "mean_lid": {s: {m: float(scores[m][s].mean()) for m in METHODS} for s in sets},
        "seconds": time.time() - t0,
    }
    anomaly_figure(store.figure("anomaly.png"), scores)
    store.write_anomaly([(s, m, float(v)) for m in METHODS for s in sets for v in scores[m][s]])
    return scores


def _unet_results(res: dict[str, Any], store: RealDir, xtr: np.ndarray, xte: np.ndarray,
                  scores: dict[str, dict[str, np.ndarray]], cfg: RealConfig, progress: bool) -> None:
    """Part 3 (into ``res`` and ``points_unet.csv``): the trained diffusers UNets beside the MLP."""
    mlp_dsm = scores["dsm"]["digits (held out)"]
    mlp_flipd = scores["flipd"]["digits (held out)"]
    u = _unet_part(xtr, xte, mlp_dsm, mlp_flipd, store, cfg, progress)
    res["unet"] = {pt: {k: v for k, v in d.items() if k not in ("dsm", "flipd")} for pt, d in u.items()}
    per_unet = {f"{pt}_{m}": u[pt][m] for pt in u for m in ("dsm", "flipd")}
    store.write_points("unet", {"mlp_dsm": mlp_dsm, "mlp_flipd": mlp_flipd, **per_unet})
