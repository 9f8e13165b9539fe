"""Why the ``nonlinear`` manifold (Mn1_Nonlinear, d=32 in n=128) is the quick benchmark's weak spot.

For several training budgets / widths of the quick MLP recipe (``scorelid.training.loop.QUICK_RECIPE``)
this trains a denoiser on 2000 points of ``nonlinear`` and measures the DSM LID (``n_noise=64``) at
``sigma in {0.01, 0.02, 0.05, 0.1}`` on

* 1000 held-out points (the bench runner's evaluation sample: seed ``2*seed+1`` = 1 for seed 0;
  training points use seed ``2*seed`` = 0, estimator noise uses ``seed`` = 0, exactly as
  ``scorelid.bench.runner``), and
* the first 1000 *training* points (in-sample), to tell underfitting (both too high) from
  overfitting (in-sample below held-out / below d).

It also records the training loss's own LID curve (``model.history["lid_by_sigma"]``, in-sample,
online weights, last 20% of steps), and the reading of the *Gaussian* (Wiener) part alone, i.e. the
denoiser the network starts from (``skip="wiener"``, zero-initialised head): for the linear
denoiser ``W = U diag(lam/(lam+s^2)) U^T`` fitted on the training points, the DSM reading at ``x``
is exactly ``||(W - I)(x - m)||^2 / s^2 + tr(W^2)`` (noise averaged in closed form), about the
covariance rank 2d = 64 at small s.

Timing: wall and CPU (``time.process_time``) seconds for training and for the evaluation of each
configuration, one thread.  Models live in ``--models`` (default ``runs/nonlinear_study/<config>``)
with checkpoints every 1000 steps: a rerun reuses finished models, resumes interrupted training
and skips configurations already in the results file.  When a training was resumed, ``train_wall_s``
is the training's own accumulated wall time (from the checkpoints) and ``train_cpu_s`` covers only
the last session (flagged by ``resumed``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nonlinear_study.py \
        [--configs w256_s3000 w256_s10000 w256_s30000 w512_s10000]

Writes ``benchmarks/results/nonlinear_study.json`` and ``.md`` (atomically) after each configuration.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scorelid import estimate, load_denoiser, train_denoiser
from scorelid.data import manifold
from scorelid.runtime.io import atomic_write_json, atomic_write_text
from scorelid.training.loop import PAPER_RECIPE, QUICK_RECIPE

NAME = "nonlinear"
SIGMAS = (0.01, 0.02, 0.05, 0.1)
N_TRAIN, N_EVAL, N_INSAMPLE, N_NOISE = 2000, 1000, 1000, 64
SEED = 0  # bench runner convention: train data 2*SEED, eval data 2*SEED+1, model/noise SEED

#: configuration name -> overrides of QUICK_RECIPE
CONFIGS: dict[str, dict[str, Any]] = {
    "w256_s3000": {},
    "w256_s10000": {"steps": 10_000},
    "w256_s30000": {"steps": 30_000},
    "w256_s60000": {"steps": 60_000},
    "w512_s10000": {"width": 512, "steps": 10_000},
    "w512d6_s10000": {"width": 512, "depth": 6, "steps": 10_000},
    # DiT (patches of 4 values) with the quick recipe's schedule (sigma range, lr, warm-up, EMA).
    # The paper's size (PAPER_RECIPE["dit"]: hidden 128, 16 heads, 8 layers) takes 1.37 s per step
    # on one thread here (3000 steps = 68 min): "dit_s3000" is for a GPU; the h64/d4 one fits a CPU.
    "dit_s3000": {"arch": "dit", "steps": 3000},
    "dit_h64d4_s3000": {"arch": "dit", "hidden": 64, "heads": 4, "depth": 4, "steps": 3000},
}

#: keys of QUICK_RECIPE that configure the MLP (dropped for a DiT configuration)
MLP_KEYS = ("width", "depth", "gate", "squares", "delta", "c_in")

ROOT = Path(__file__).resolve().parents[1]


def gaussian_reading(x_train: torch.Tensor, x: torch.Tensor, sigma: float) -> np.ndarray:
    """DSM LID ``[N]`` of the Wiener (Gaussian-fit) denoiser fitted on ``x_train [M, n]`` at points
    ``x [N, n]``, noise averaged exactly: ``||(W - I)(x - m)||^2 / s^2 + tr(W^2)``."""
    xt = x_train.double()
    m = xt.mean(0)
    lam, U = torch.linalg.eigh(torch.cov((xt - m).T, correction=0))
    lam = lam.clamp_min(0)
    g = lam / (lam + sigma ** 2)  # [n] Wiener gains
    z = (x.double() - m) @ U  # [N, n] coordinates in the eigenbasis
    return (((g - 1) * z).pow(2).sum(1) / sigma ** 2 + (g ** 2).sum()).numpy()


def _factor_map(u: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """One factor of Mn1_Nonlinear in normalised units: ``[..., 4]`` for parameters ``u, v [...]``."""
    return np.stack([np.tan(u * np.cos(v)), np.tan(v * np.cos(u)), np.arctan(v * np.sin(u)),
                     np.arctan(u * np.sin(v))], -1) / scale


def ideal_reading(sigma: float, num: int, seed: int, grid: int = 161, width: float = 10.0) -> np.ndarray:
    """DSM readings ``[num]`` of the exact (population) posterior-mean denoiser on one factor.

    Mn1_Nonlinear with d = 32 is a product of 16 independent, identically distributed factors: the
    pair ``(u, v) = (X_i, X_{31-i}) ~ U[0,1]^2`` gives the 4 coordinates ``tan(u cos v)``,
    ``tan(v cos u)``, ``arctan(v sin u)``, ``arctan(u sin v)``, each written twice, all divided by
    the same normalisation scale.  Isotropic noise keeps the product structure, so the exact
    denoiser factorises and a point's DSM reading is the sum of 16 factor readings.  On one factor,
    the duplicated copy is a 4-d surface seen through noise ``sigma / sqrt(2)`` (the copies'
    difference carries no signal and is removed exactly), and the reading is
    ``||E[a | y] - a||^2 / (sigma^2 / 2)``.  ``E[a | y]`` is computed by quadrature over the 2-d
    parameter square (uniform prior), on a ``grid x grid`` window of ``width`` posterior widths
    around the true parameter (clipped to the square; 161 vs 321 points and width 10 vs 14 agreed
    to 0.01 in the mean).  Exact up to Monte Carlo over ``(u, v, noise)``; curvature and the
    boundary of the parameter cube are included, the network and the finite training set are not.
    """
    from scorelid.data.manifolds import normalization

    _, scale = normalization(NAME)
    rng = np.random.default_rng(seed)
    sp = sigma / math.sqrt(2.0)
    out = np.empty(num)
    for k in range(num):
        u0, v0 = rng.random(2)
        a = _factor_map(np.array(u0), np.array(v0), scale)
        y = a + sp * rng.standard_normal(4)
        h = 1e-6
        J = np.stack([(_factor_map(np.array(u0 + h), np.array(v0), scale) - a) / h,
                      (_factor_map(np.array(u0), np.array(v0 + h), scale) - a) / h], -1)
        w = width * sp / np.linalg.svd(J, compute_uv=False).min()
        U, V = np.meshgrid(np.linspace(max(0.0, u0 - w), min(1.0, u0 + w), grid),
                           np.linspace(max(0.0, v0 - w), min(1.0, v0 + w), grid), indexing="ij")
        F = _factor_map(U, V, scale)  # [grid, grid, 4]
        logp = -((F - y) ** 2).sum(-1) / (2 * sp ** 2)
        p = np.exp(logp - logp.max())
        a_hat = (p[..., None] * F).sum((0, 1)) / p.sum()
        out[k] = ((a_hat - a) ** 2).sum() / sp ** 2
    return out


def ideal_rows(cache: Path, d: int, num: int = 4800) -> dict[str, dict[str, float]]:
    """Population-optimal DSM reading per sigma (``ideal_reading``), cached in ``cache`` (JSON)."""
    import json

    if cache.is_file():
        old = json.loads(cache.read_text())
        if old.get("num") == num and old.get("sigmas") == list(SIGMAS):
            return old["rows"]
    rows = {}
    n_fac = d // 2
    for s in SIGMAS:
        t0 = time.perf_counter()
        r = ideal_reading(s, num, seed=SEED)
        pts = r[: num // n_fac * n_fac].reshape(-1, n_fac).sum(1)  # whole points: 16 factors each
        rows[repr(s)] = {"mean_lid": float(n_fac * r.mean()), "se": float(n_fac * r.std() / math.sqrt(num)),
                         "mae_one_noise_draw": float(np.abs(pts - d).mean()), "n_points": len(pts),
                         "wall_s": time.perf_counter() - t0}
        row = rows[repr(s)]
        print(f"ideal denoiser, sigma={s}: mean LID {row['mean_lid']:.2f} +- {row['se']:.2f}", flush=True)
    atomic_write_json(cache, {"num": num, "sigmas": list(SIGMAS), "rows": rows})
    return rows


def covariance_spectrum(x_train: torch.Tensor) -> list[float]:
    xt = x_train.double()
    lam = torch.linalg.eigvalsh(torch.cov((xt - xt.mean(0)).T, correction=0)).flip(0)
    return lam.tolist()


def dsm_rows(D: Any, x: torch.Tensor, d: int) -> dict[str, dict[str, float]]:
    out = {}
    for s in SIGMAS:
        t0, c0 = time.perf_counter(), time.process_time()
        lid = estimate(D, x, "dsm", s, n_noise=N_NOISE, seed=SEED, progress=False).double()
        out[repr(s)] = {"mae": float((lid - d).abs().mean()), "mean_lid": float(lid.mean()),
                        "median_lid": float(lid.median()), "std_lid": float(lid.std()),
                        "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    return out


def run_config(name: str, models: Path, x_train: torch.Tensor, x_eval: torch.Tensor,
               d: int) -> dict[str, Any]:
    recipe = {k: v for k, v in QUICK_RECIPE.items()}
    if CONFIGS[name].get("arch") == "dit":
        recipe = {k: v for k, v in recipe.items() if k not in MLP_KEYS}
        recipe.update({k: PAPER_RECIPE["dit"][k] for k in ("hidden", "heads", "depth", "patch")})
    recipe.update(CONFIGS[name])
    recipe["num_threads"] = 1
    out_dir = models / name
    steps = int(recipe.pop("steps"))
    finished = (out_dir / "config.json").is_file() and (out_dir / "model.safetensors").is_file()
    resumed = (out_dir / "checkpoints").is_dir() and not finished
    t0, c0 = time.perf_counter(), time.process_time()
    if finished:
        D = load_denoiser(out_dir)
    else:
        D = train_denoiser(x_train, steps=steps, seed=SEED, out_dir=out_dir, resume=True, progress=True,
                           checkpoint_every=1000, **recipe)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    D.eval()
    hist = getattr(D, "history", {}) or {}
    train_wall = float(hist.get("seconds", wall))
    rec: dict[str, Any] = {
        "config": name, "arch": recipe["arch"], "width": recipe.get("width", recipe.get("hidden")),
        "depth": recipe["depth"], "steps": steps,
        "params": int(sum(p.numel() for p in D.parameters())),
        "train_wall_s": train_wall, "train_cpu_s": None if finished else cpu,
        "resumed": resumed, "loaded_finished_model": finished,
        "final_loss": (hist.get("loss") or [[None, None]])[-1][1],
        "lid_by_sigma": hist.get("lid_by_sigma", []),
    }
    t1, c1 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        rec["held_out"] = dsm_rows(D, x_eval, d)
        rec["in_sample"] = dsm_rows(D, x_train[:N_INSAMPLE], d)
    rec["eval_wall_s"], rec["eval_cpu_s"] = time.perf_counter() - t1, time.process_time() - c1
    return rec


def _f(v: Any, nd: int = 2) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def render(res: dict[str, Any]) -> str:
    d = res["d"]
    sig = [repr(s) for s in SIGMAS]
    lines = [f"# nonlinear manifold study (d={d}, n={res['n']}): training budget vs DSM LID", "",
             f"Quick MLP recipe (`QUICK_RECIPE`) with the overrides in the config name; {N_TRAIN} training "
             f"points (seed {2 * SEED}), {N_EVAL} held-out points (seed {2 * SEED + 1}, as the bench "
             "runner), "
             f"in-sample = the first {N_INSAMPLE} training points; DSM with K={N_NOISE} noise draws, "
             "estimator seed 0; one CPU thread on the shared 2-core machine.", "",
             f"Command: `{res['command']}`", "",
             "## Held-out MAE (mean LID) per sigma, in-sample mean LID, seconds", "",
             "| config | width | depth | steps | params | " + " | ".join(f"held-out σ={s}" for s in sig)
             + " | " + " | ".join(f"in-sample σ={s}" for s in sig)
             + " | train wall s | train CPU s | eval s |",
             "|" + "---|" * (5 + 2 * len(sig) + 3)]
    g = res["gaussian"]
    lines.append("| Wiener part alone (untrained net) | – | – | 0 | – | "
                 + " | ".join(f"{_f(g['held_out'][s]['mae'])} ({_f(g['held_out'][s]['mean_lid'], 1)})"
                              for s in sig)
                 + " | " + " | ".join(_f(g["in_sample"][s]["mean_lid"], 1) for s in sig) + " | 0 | 0 | |")
    if res.get("ideal"):
        ide = res["ideal"]
        lines.append("| exact population denoiser (quadrature) | – | – | ∞ | – | "
                     + " | ".join(f"– ({_f(ide[s]['mean_lid'], 1)} ± {_f(ide[s]['se'], 1)})" for s in sig)
                     + " | " + " | ".join("–" for _ in sig) + " | | | |")
    for r in res["configs"]:
        ho = " | ".join(f"{_f(r['held_out'][s]['mae'])} ({_f(r['held_out'][s]['mean_lid'], 1)})" for s in sig)
        ins = " | ".join(_f(r["in_sample"][s]["mean_lid"], 1) for s in sig)
        cpu = _f(r["train_cpu_s"], 0) + (" (last session)" if r["resumed"] else "")
        lines.append(f"| {r['config']} | {r['width']} | {r['depth']} | {r['steps']} | {r['params']} | {ho} "
                     f"| {ins} "
                     f"| {_f(r['train_wall_s'], 0)} | {cpu} | {_f(r['eval_wall_s'], 0)} |")
    lines += ["", "Held-out cells: MAE (mean LID). In-sample cells: mean LID on training points. "
              "The Wiener row is the closed-form reading of the Gaussian fit (the denoiser the network "
              "starts from); the covariance has rank 2d = 64. The exact-denoiser row is the population "
              "posterior mean (infinite data, perfect fit) by quadrature: mean over 4800 factor draws ± its "
              "standard error (see `ideal_reading`); no per-point MAE (one noise draw per factor, not "
              "K = 64). "
              "Its mean is the estimator's own bias at sigma (curvature, the cube's boundary).", "",
              "## Training-loss LID curve (`history[\"lid_by_sigma\"]`, in-sample, last 20% of steps)", ""]
    if res["configs"]:
        mids = [row["sigma_mid"] for row in res["configs"][0]["lid_by_sigma"]]
        lines.append("| config | " + " | ".join(f"{m:.3g}" for m in mids) + " |")
        lines.append("|" + "---|" * (1 + len(mids)))
        for r in res["configs"]:
            cells = " | ".join(_f(row["mean_lid"], 1) for row in r["lid_by_sigma"])
            lines.append(f"| {r['config']} | {cells} |")
    if res["configs"] and res.get("ideal"):
        lines += ["", "## Share of the Gaussian fit's excess that the network removes", "",
                  "`(Wiener mean LID - model mean LID) / (Wiener mean LID - exact-denoiser mean LID)`, "
                  "held-out: "
                  "0% = the network adds nothing to its linear skip path, 100% = the exact denoiser.", "",
                  "| config | " + " | ".join(f"σ={s}" for s in sig) + " |", "|" + "---|" * (1 + len(sig))]
        for r in res["configs"]:
            cells = []
            for s in sig:
                w, i = g["held_out"][s]["mean_lid"], res["ideal"][s]["mean_lid"]
                cells.append(f"{100 * (w - r['held_out'][s]['mean_lid']) / (w - i):.0f}%")
            lines.append(f"| {r['config']} | " + " | ".join(cells) + " |")
    lam = res["cov_spectrum"]
    lines += ["", f"Covariance spectrum of the training points: eigenvalues 1, 32, 33, 64, 65 = "
              f"{lam[0]:.3g}, {lam[31]:.3g}, {lam[32]:.3g}, {lam[63]:.3g}, {lam[64]:.2g} "
              f"(sigma^2 at sigma = 0.01 / 0.05 / 0.1: 1e-4 / 2.5e-3 / 1e-2)."]
    if res.get("pending"):
        lines += ["", f"Not finished (yet): {', '.join(res['pending'])}."]
    if res.get("diagnosis"):
        lines += ["", "## Diagnosis", "", res["diagnosis"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+",
                    default=["w256_s3000", "w256_s10000", "w256_s30000", "w512_s10000"],
                    choices=sorted(CONFIGS))
    ap.add_argument("--models", type=Path, default=ROOT / "runs" / "nonlinear_study")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "nonlinear_study")
    ap.add_argument("--diagnosis", help="text stored as the study's diagnosis (kept on reruns)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    x_train, d_true = manifold(NAME, N_TRAIN, 2 * SEED)
    x_eval, _ = manifold(NAME, N_EVAL, 2 * SEED + 1)
    d = int(d_true[0])
    json_path, md_path = args.results.with_suffix(".json"), args.results.with_suffix(".md")
    res: dict[str, Any] = {}
    if json_path.is_file():
        import json

        res = json.loads(json_path.read_text())
    res.update({"manifold": NAME, "d": d, "n": int(x_train.shape[1]), "n_train": N_TRAIN, "n_eval": N_EVAL,
                "n_insample": N_INSAMPLE, "n_noise": N_NOISE, "sigmas": list(SIGMAS), "seed": SEED,
                "recipe": QUICK_RECIPE,
                "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nonlinear_study.py --configs "
                           + " ".join(args.configs)})
    res.setdefault("configs", [])
    if args.diagnosis:
        res["diagnosis"] = args.diagnosis
    res["cov_spectrum"] = covariance_spectrum(x_train)
    res["gaussian"] = {
        part: {repr(s): {"mae": float(np.abs(v - d).mean()), "mean_lid": float(v.mean())}
               for s in SIGMAS for v in [gaussian_reading(x_train, xs, s)]}
        for part, xs in (("held_out", x_eval), ("in_sample", x_train[:N_INSAMPLE]))}
    res["ideal"] = ideal_rows(args.models / "ideal.json", d)
    done = {r["config"] for r in res["configs"]}
    res["pending"] = [c for c in args.configs if c not in done]

    def write() -> None:
        # another run of this script may have added configurations since we read the file
        if json_path.is_file():
            import json

            ours = {r["config"] for r in res["configs"]}
            theirs = json.loads(json_path.read_text()).get("configs", [])
            res["configs"] = [r for r in theirs if r["config"] not in ours] + res["configs"]
        atomic_write_json(json_path, res)
        atomic_write_text(md_path, render(res))

    write()
    for name in args.configs:
        if name in done:
            print(f"{name}: already in {json_path.name}, skipped")
            continue
        rec = run_config(name, args.models, x_train, x_eval, d)
        res["configs"].append(rec)
        res["pending"] = [c for c in res["pending"] if c != name]
        write()
        print(f"{name}: train {rec['train_wall_s']:.0f} s, held-out MAE "
              + ", ".join(f"σ={s}: {rec['held_out'][repr(s)]['mae']:.2f}" for s in SIGMAS)
              + "; in-sample mean LID "
              + ", ".join(f"{rec['in_sample'][repr(s)]['mean_lid']:.1f}" for s in SIGMAS), flush=True)
    print(md_path.read_text())


if __name__ == "__main__":
    main()
