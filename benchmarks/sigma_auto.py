"""Adaptive sigma vs fixed sigma on the five benchmark manifolds (docs/sigma.md).

For each manifold: train a quick-recipe denoiser on 2000 points (seed 0; cached under
``--runs``, reused when present), take 1000 held-out points (seed 1), compute the DSM LID curve on
the grid ``scorelid.sigma_select.DEFAULT_GRID`` (common random numbers, K=64 by default), and report

* the MAE ``mean |LID - d|`` at every fixed sigma of the grid,
* the oracle: the best fixed sigma chosen afterwards with knowledge of the truth,
* ``dsm@auto`` under every selection rule (the ``agreement`` rule needs the error-bundle curve
  with K >= d draws; it is run with ``--agreement-points`` points and K = d + 8),
* optionally FLIPD (Hutchinson trace) on ``--flipd-points`` points, fixed and auto,

and the training loss's mean LID per sigma bucket next to the estimated mean LID there.

    .venv/bin/python benchmarks/sigma_auto.py --out benchmarks/results/sigma_auto.json

Writes the JSON (records + summary), a CSV of the MAE table and a PNG of the curves.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from scorelid.checkpoint import load_denoiser
from scorelid.curves import lid_curve
from scorelid.data import manifold
from scorelid.data.manifolds import MANIFOLDS
from scorelid.io import atomic_write_json, atomic_write_text
from scorelid.sigma_select import DEFAULT_GRID, RULES, estimate_auto, plot_lid_curves, select
from scorelid.train import QUICK_RECIPE, train_denoiser


def _model(name: str, runs: Path, n_train: int):
    out = runs / name
    if (out / "config.json").exists() and (out / "lid_by_sigma.json").exists():
        return load_denoiser(out), json.loads((out / "lid_by_sigma.json").read_text())
    x, _ = manifold(name, n_train, seed=0)
    model = train_denoiser(x, seed=0, out_dir=out, progress=False, **QUICK_RECIPE)
    rows = model.history["lid_by_sigma"]
    atomic_write_json(out / "lid_by_sigma.json", rows)
    return model, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/sigma_auto.json")
    ap.add_argument("--runs", default="runs/sigma_auto")
    ap.add_argument("--manifolds", default=",".join(MANIFOLDS))
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-eval", type=int, default=1000)
    ap.add_argument("--n-noise", type=int, default=64)
    ap.add_argument("--agreement-points", type=int, default=100)
    ap.add_argument("--flipd-points", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sig = torch.tensor(DEFAULT_GRID, dtype=torch.float64)
    records, plot_items = [], {}
    for name in args.manifolds.split(","):
        key = (f"record_e{args.n_eval}_k{args.n_noise}_a{args.agreement_points}_f{args.flipd_points}"
               f"_t{args.n_train}.json")
        cached = Path(args.runs) / name / key
        if cached.exists():  # resume: this manifold is done
            rec = json.loads(cached.read_text())
            records.append(rec)
            plot_items[name] = rec["_plot"]
            print(f"{name}: cached ({cached})", flush=True)
            continue
        t0 = time.perf_counter()
        model, buckets = _model(name, Path(args.runs), args.n_train)
        t_train = time.perf_counter() - t0
        x, d = manifold(name, args.n_eval, seed=1)
        d = d.double()
        t0 = time.perf_counter()
        curve = lid_curve(model, x, sig, "dsm", args.n_noise, seed=0)
        t_curve = time.perf_counter() - t0
        fixed = {f"{float(s):g}": float((curve[j] - d).abs().mean()) for j, s in enumerate(sig)}
        best = min(fixed, key=fixed.get)
        rec = {"manifold": name, "d": int(d[0]), "n": int(x.shape[1]), "train_s": t_train,
               "curve_s": t_curve, "fixed_mae": fixed,
               "fixed_mean": {f"{float(s):g}": float(curve[j].mean()) for j, s in enumerate(sig)},
               "oracle_sigma": float(best), "oracle_mae": fixed[best], "auto": {}}
        for rule in RULES:
            if rule == "agreement":
                continue
            idx, flat = select(curve, sig, rule)
            lid = curve.gather(0, idx.unsqueeze(0)).squeeze(0)
            rec["auto"][rule] = {"mae": float((lid - d).abs().mean()), "mean_lid": float(lid.mean()),
                                 "sigma_median": float(sig[idx].median()),
                                 "sigma_q10": float(sig[idx].quantile(0.1)),
                                 "sigma_q90": float(sig[idx].quantile(0.9)),
                                 "flatness_median": float(flat.median())}
            if rule == "first_plateau":
                plot_items[name] = {"sigmas": sig, "curve": curve, "d_true": float(d[0]), "sigma": sig[idx]}
        if args.agreement_points > 0:
            m = args.agreement_points
            t0 = time.perf_counter()
            res = estimate_auto(model, x[:m], "dsm", sig, rule="agreement", n_noise=int(d[0]) + 8)
            base = estimate_auto(model, x[:m], "dsm", sig, rule="first_plateau", n_noise=int(d[0]) + 8)
            rec["agreement"] = {"points": m, "seconds": time.perf_counter() - t0,
                                "mae": float((res.lid - d[:m]).abs().mean()),
                                "first_plateau_mae_same_points": float((base.lid - d[:m]).abs().mean()),
                                "sigma_median": float(res.sigma.median())}
        if args.flipd_points > 0:
            m = args.flipd_points
            t0 = time.perf_counter()
            fc = lid_curve(model, x[:m], sig, "flipd", trace="hutchinson", n_probes=8)
            idx, _ = select(fc, sig)
            lid = fc.gather(0, idx.unsqueeze(0)).squeeze(0)
            ff = {f"{float(s):g}": float((fc[j] - d[:m]).abs().mean()) for j, s in enumerate(sig)}
            fb = min(ff, key=ff.get)
            rec["flipd"] = {"points": m, "seconds": time.perf_counter() - t0, "fixed_mae": ff,
                            "oracle_sigma": float(fb), "oracle_mae": ff[fb],
                            "auto_mae": float((lid - d[:m]).abs().mean()),
                            "auto_sigma_median": float(sig[idx].median())}
        # training-loss LID per sigma bucket vs the estimated mean LID (held-out points) at the bucket mid
        mids = [b["sigma_mid"] for b in buckets if b["count"] > 0]
        est = lid_curve(model, x[:200], mids, "dsm", args.n_noise, seed=0).mean(1)
        rec["loss_buckets"] = [{"sigma_mid": b["sigma_mid"], "train_loss_lid": b["mean_lid"],
                                "estimated_mean_lid": float(e)}
                               for b, e in zip([b for b in buckets if b["count"] > 0], est, strict=True)]
        rec["_plot"] = {k: v.tolist() if isinstance(v, Tensor) else v for k, v in plot_items[name].items()}
        atomic_write_json(cached, rec)
        records.append(rec)
        print(f"{name}: oracle sigma={best} mae={fixed[best]:.3f}  sigma=0.05 mae={fixed['0.05']:.3f}  "
              + "  ".join(f"{r}={v['mae']:.3f}@{v['sigma_median']:g}" for r, v in rec["auto"].items()),
              flush=True)
    summary = _summary(records)
    out = Path(args.out)
    atomic_write_json(out, {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                                       f"torch threads={args.threads}",
                            "grid": list(DEFAULT_GRID), "n_noise": args.n_noise, "recipe": QUICK_RECIPE,
                            "records": [{k: v for k, v in r.items() if k != "_plot"} for r in records],
                            "summary": summary})
    atomic_write_text(out.with_suffix(".csv"), _table_csv(records))
    plot_lid_curves(plot_items, str(out.with_suffix(".png")))
    print(json.dumps(summary, indent=1))


def _summary(records: list[dict]) -> dict:
    rules = list(records[0]["auto"])
    oracle = np.array([r["oracle_mae"] for r in records])
    out = {"oracle_mae_mean": float(oracle.mean()),
           "fixed_0.05_mae_mean": float(np.mean([r["fixed_mae"]["0.05"] for r in records]))}
    for rule in rules:
        mae = np.array([r["auto"][rule]["mae"] for r in records])
        out[f"{rule}_mae_mean"] = float(mae.mean())
        out[f"{rule}_ratio_to_oracle_mean"] = float((mae / oracle).mean())
    return out


def _table_csv(records: list[dict]) -> str:
    rules = list(records[0]["auto"])
    sigmas = list(records[0]["fixed_mae"])
    head = ["manifold", "d"] + [f"fixed@{s}" for s in sigmas] + ["oracle", "oracle_sigma"] + [
        f"auto:{r}" for r in rules]
    lines = [",".join(head)]
    for r in records:
        vals = [r["manifold"], str(r["d"])] + [f"{r['fixed_mae'][s]:.4f}" for s in sigmas]
        vals += [f"{r['oracle_mae']:.4f}", f"{r['oracle_sigma']:g}"]
        vals += [f"{r['auto'][k]['mae']:.4f}" for k in rules]
        lines.append(",".join(vals))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
