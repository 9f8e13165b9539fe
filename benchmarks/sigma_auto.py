"""Adaptive sigma vs fixed sigma on the five benchmark manifolds (docs/sigma.md).

For each manifold: train a quick-recipe denoiser on 2000 points (seed 0; cached under ``--runs``,
reused when present, resumed from its checkpoints if interrupted), take 1000 held-out points
(seed 1), compute the DSM LID curve on the grid ``scorelid.sigma.select.DEFAULT_GRID`` (common
random numbers, K = 64 draws by default), and report

* the MAE ``mean |LID - d|`` at every fixed sigma of the grid,
* the oracle: the best fixed sigma of the grid, chosen afterwards with knowledge of the truth,
* ``dsm@auto`` under every selection rule but ``agreement`` (same curve, so paired noise),
* the ``agreement`` rule on ``--agreement-points`` points, with ``K = n`` draws (the ambient
  dimension: the error bundle can count at most ``K`` directions, and ``K`` must not depend on
  the unknown ``d``), beside the default rule on the same points and draws,
* FLIPD (Hutchinson trace, 8 probes) on ``--flipd-points`` points: fixed, oracle and every rule,
* the training loss's mean LID per sigma bucket next to the estimated mean LID at the bucket
  middle (200 held-out points).

    .venv/bin/python benchmarks/sigma_auto.py --out benchmarks/results/sigma_auto.json

Writes the JSON (records + summary), a CSV and a Markdown table of the MAEs, and a PNG of the
curves with the chosen sigma.  Finished manifolds are cached in ``--runs/<name>/record_*.json``:
rerunning skips them.  ``--model NAME=DIR`` uses a model trained elsewhere for one manifold, e.g.
the small DiT of ``benchmarks/nonlinear_study.py``:

    .venv/bin/python benchmarks/sigma_auto.py --manifolds nonlinear --runs runs/sigma_auto_dit \
        --model nonlinear=runs/nonlinear_study/dit_h64d4_s3000 --flipd-points 0 \
        --out benchmarks/results/sigma_auto_nonlinear_dit.json
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

from scorelid.data import manifold
from scorelid.data.manifolds import MANIFOLDS
from scorelid.runtime.io import atomic_write_json, atomic_write_text
from scorelid.sigma import DEFAULT_GRID, DEFAULT_RULE, RULES, estimate_auto, lid_curve, select
from scorelid.sigma.plot import plot_lid_curves
from scorelid.training.checkpoint import load_denoiser
from scorelid.training.loop import QUICK_RECIPE, train_denoiser

CURVE_RULES = tuple(r for r in RULES if r != "agreement")
FLIPD_OPTIONS = {"trace": "hutchinson", "n_probes": 8}


def _model(name: str, runs: Path, n_train: int, given: str | None = None):
    if given is not None:  # a model trained elsewhere (``--model NAME=DIR``); its own loss buckets
        model = load_denoiser(given)
        return model, model.history["lid_by_sigma"]
    out = runs / name
    if (out / "config.json").exists() and (out / "lid_by_sigma.json").exists():
        return load_denoiser(out), json.loads((out / "lid_by_sigma.json").read_text())
    x, _ = manifold(name, n_train, seed=0)
    model = train_denoiser(x, seed=0, out_dir=out, progress=False, resume=True, **QUICK_RECIPE)
    rows = model.history["lid_by_sigma"]
    atomic_write_json(out / "lid_by_sigma.json", rows)
    return model, rows


def _rules(curve: Tensor, sig: Tensor, d: Tensor) -> dict[str, dict]:
    """MAE, mean LID, chosen-sigma quantiles and median flatness of every curve rule."""
    out = {}
    for rule in CURVE_RULES:
        idx, flat = select(curve, sig, rule)
        lid = curve.gather(0, idx.unsqueeze(0)).squeeze(0)
        out[rule] = {"mae": float((lid - d).abs().mean()), "mean_lid": float(lid.mean()),
                     "sigma_median": float(sig[idx].median()), "sigma_q10": float(sig[idx].quantile(0.1)),
                     "sigma_q90": float(sig[idx].quantile(0.9)), "flatness_median": float(flat.median())}
    return out


def _fixed(curve: Tensor, sig: Tensor, d: Tensor) -> dict[str, float]:
    return {f"{float(s):g}": float((curve[j] - d).abs().mean()) for j, s in enumerate(sig)}


def run_manifold(name: str, args: argparse.Namespace, sig: Tensor) -> dict:
    t0 = time.perf_counter()
    given = dict(m.split("=", 1) for m in args.model).get(name)
    model, buckets = _model(name, Path(args.runs), args.n_train, given)
    t_train = time.perf_counter() - t0
    x, d = manifold(name, args.n_eval, seed=1)
    d = d.double()
    n = int(x.shape[1])
    t0 = time.perf_counter()
    curve = lid_curve(model, x, sig, "dsm", args.n_noise, seed=0)
    t_curve = time.perf_counter() - t0
    fixed = _fixed(curve, sig, d)
    best = min(fixed, key=fixed.get)
    rec = {"manifold": name, "d": int(d[0]), "n": n, "points": int(x.shape[0]), "train_s": t_train,
           "curve_s": t_curve, "fixed_mae": fixed,
           "fixed_mean": {f"{float(s):g}": float(curve[j].mean()) for j, s in enumerate(sig)},
           "oracle_sigma": float(best), "oracle_mae": fixed[best], "auto": _rules(curve, sig, d)}
    idx, _ = select(curve, sig, DEFAULT_RULE)
    rec["_plot"] = {"sigmas": sig.tolist(), "curve": curve.tolist(), "d_true": float(d[0]),
                    "sigma": sig[idx].tolist()}
    if args.agreement_points > 0:
        m = args.agreement_points
        t0 = time.perf_counter()
        res = estimate_auto(model, x[:m], "dsm", sig, rule="agreement", n_noise=n)
        base = select(res.curve, sig, DEFAULT_RULE)[0]
        lid0 = res.curve.gather(0, base.unsqueeze(0)).squeeze(0)
        rec["agreement"] = {"points": m, "n_noise": n, "seconds": time.perf_counter() - t0,
                            "mae": float((res.lid - d[:m]).abs().mean()),
                            "default_rule_mae_same_points": float((lid0 - d[:m]).abs().mean()),
                            "oracle_mae_same_points": min(_fixed(res.curve, sig, d[:m]).values()),
                            "sigma_median": float(res.sigma.median())}
    if args.flipd_points > 0:
        m = args.flipd_points
        t0 = time.perf_counter()
        fc = lid_curve(model, x[:m], sig, "flipd", seed=0, **FLIPD_OPTIONS)
        ff = _fixed(fc, sig, d[:m])
        fb = min(ff, key=ff.get)
        rec["flipd"] = {"points": m, "seconds": time.perf_counter() - t0, "fixed_mae": ff,
                        "fixed_mean": {f"{float(s):g}": float(fc[j].mean()) for j, s in enumerate(sig)},
                        "oracle_sigma": float(fb), "oracle_mae": ff[fb], "auto": _rules(fc, sig, d[:m])}
    # training-loss LID per sigma bucket vs the estimated mean LID (held-out points) at the bucket middle
    used = [b for b in buckets if b["count"] > 0]
    est = lid_curve(model, x[:200], [b["sigma_mid"] for b in used], "dsm", args.n_noise, seed=0).mean(1)
    rec["loss_buckets"] = [{"sigma_mid": b["sigma_mid"], "train_loss_lid": b["mean_lid"],
                            "estimated_mean_lid": float(e)} for b, e in zip(used, est, strict=True)]
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/sigma_auto.json")
    ap.add_argument("--runs", default="runs/sigma_auto")
    ap.add_argument("--manifolds", default=",".join(MANIFOLDS))
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-eval", type=int, default=1000)
    ap.add_argument("--n-noise", type=int, default=64)
    ap.add_argument("--agreement-points", type=int, default=100)
    ap.add_argument("--flipd-points", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                    help="use the model trained in DIR (on the same 2000 points, seed 0) for manifold NAME "
                         "instead of the quick recipe's; give a separate --runs so caches do not mix")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sig = torch.tensor(DEFAULT_GRID, dtype=torch.float64)
    records = []
    t_all = time.perf_counter()
    for name in args.manifolds.split(","):
        key = (f"record_v2_e{args.n_eval}_k{args.n_noise}_a{args.agreement_points}_f{args.flipd_points}"
               f"_t{args.n_train}.json")
        cached = Path(args.runs) / name / key
        if cached.exists():  # resume: this manifold is done
            rec = json.loads(cached.read_text())
            print(f"{name}: cached ({cached})", flush=True)
        else:
            rec = run_manifold(name, args, sig)
            atomic_write_json(cached, rec)
        records.append(rec)
        print(f"{name}: oracle sigma={rec['oracle_sigma']:g} mae={rec['oracle_mae']:.3f}  sigma=0.05 "
              f"mae={rec['fixed_mae']['0.05']:.3f}  "
              + "  ".join(f"{r}={v['mae']:.3f}@{v['sigma_median']:g}" for r, v in rec["auto"].items()),
              flush=True)
    summary = _summary(records)
    out = Path(args.out)
    meta = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                       f"torch threads={args.threads}",
            "command": "python benchmarks/sigma_auto.py " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                if k not in ("out", "runs", "model"))
                + "".join(f" --model {m}" for m in args.model),
            "wall_s_this_run": time.perf_counter() - t_all, "grid": list(DEFAULT_GRID),
            "n_noise": args.n_noise, "recipe": QUICK_RECIPE, "default_rule": DEFAULT_RULE,
            "models": args.model}
    plain = [{k: v for k, v in r.items() if k != "_plot"} for r in records]
    atomic_write_json(out, {**meta, "records": plain, "summary": summary})
    atomic_write_text(out.with_suffix(".csv"), _table_csv(records))
    atomic_write_text(out.with_suffix(".md"), _markdown(records, summary, meta))
    plot_lid_curves({r["manifold"]: {**r["_plot"], "label": f"mean DSM LID (K={args.n_noise})"}
                     for r in records}, str(out.with_suffix(".png")))
    print(_markdown(records, summary, meta))


def _ratios(records: list[dict], key: str, rule: str) -> np.ndarray:
    def part(r):
        return r if key == "dsm" else r[key]

    return np.array([part(r)["auto"][rule]["mae"] / part(r)["oracle_mae"] for r in records])


def _summary(records: list[dict]) -> dict:
    out: dict = {"dsm": {}, "flipd": {}}
    for key in ("dsm", "flipd"):
        rs = [r if key == "dsm" else r.get("flipd") for r in records]
        if any(r is None for r in rs):
            continue
        oracle = np.array([r["oracle_mae"] for r in rs])
        s = out[key]
        s["oracle_mae_mean"] = float(oracle.mean())
        s["fixed_0.05_mae_mean"] = float(np.mean([r["fixed_mae"]["0.05"] for r in rs]))
        s["fixed_0.05_ratio_to_oracle_mean"] = float(np.mean([r["fixed_mae"]["0.05"] for r in rs] / oracle))
        for rule in CURVE_RULES:
            mae = np.array([r["auto"][rule]["mae"] for r in rs])
            s[f"{rule}_mae_mean"] = float(mae.mean())
            s[f"{rule}_ratio_to_oracle_mean"] = float((mae / oracle).mean())
            s[f"{rule}_ratio_to_oracle_max"] = float((mae / oracle).max())
    if all("agreement" in r for r in records):
        out["agreement"] = {
            "mae_mean": float(np.mean([r["agreement"]["mae"] for r in records])),
            "default_rule_mae_mean_same_points": float(np.mean(
                [r["agreement"]["default_rule_mae_same_points"] for r in records])),
            "oracle_mae_mean_same_points": float(np.mean(
                [r["agreement"]["oracle_mae_same_points"] for r in records]))}
    return out


def _table_csv(records: list[dict]) -> str:
    rules = list(records[0]["auto"])
    sigmas = list(records[0]["fixed_mae"])
    head = ["method", "manifold", "d"] + [f"fixed@{s}" for s in sigmas] + ["oracle", "oracle_sigma"] + [
        f"auto:{r}" for r in rules]
    lines = [",".join(head)]
    for key in ("dsm", "flipd"):
        for r in records:
            p = r if key == "dsm" else r.get("flipd")
            if p is None:
                continue
            vals = [key, r["manifold"], str(r["d"])] + [f"{p['fixed_mae'][s]:.4f}" for s in sigmas]
            vals += [f"{p['oracle_mae']:.4f}", f"{p['oracle_sigma']:g}"]
            vals += [f"{p['auto'][k]['mae']:.4f}" for k in rules]
            lines.append(",".join(vals))
    return "\n".join(lines) + "\n"


def _markdown(records: list[dict], summary: dict, meta: dict) -> str:
    names = [r["manifold"] for r in records]
    sigmas = list(records[0]["fixed_mae"])
    models = ", ".join(meta.get("models") or []) or "quick recipe"
    lines = [f"# Adaptive sigma vs fixed sigma (models: {models}; {meta['machine']})", "",
             f"`{meta['command']}`", "",
             f"Grid {', '.join(sigmas)}; default rule `{meta['default_rule']}`.  MAE = mean |LID - d| "
             "over held-out points; ratio = MAE / oracle MAE, averaged over manifolds.", ""]
    for key, title in (("dsm", f"DSM, K = {meta['n_noise']} draws, {records[0]['points']} points"),
                       ("flipd", "FLIPD, Hutchinson trace with 8 probes")):
        rs = [r if key == "dsm" else r.get("flipd") for r in records]
        if any(p is None for p in rs):
            continue
        if key == "flipd":
            title += f", {rs[0]['points']} points"
        s = summary[key]
        cols = " | ".join(f"{r['manifold']} (d={r['d']})" for r in records)
        lines += [f"## {title}", "", f"| MAE | {cols} | mean | ratio to oracle |",
                  "|---" * (len(names) + 3) + "|"]
        for sg in sigmas:
            ratio = np.mean([p["fixed_mae"][sg] / p["oracle_mae"] for p in rs])
            lines.append(f"| fixed sigma={sg} | " + " | ".join(f"{p['fixed_mae'][sg]:.3f}" for p in rs)
                         + f" | {np.mean([p['fixed_mae'][sg] for p in rs]):.3f} | {ratio:.3f} |")
        lines.append("| **oracle** (best fixed, sigma) | " + " | ".join(
            f"{p['oracle_mae']:.3f} ({p['oracle_sigma']:g})" for p in rs)
            + f" | {s['oracle_mae_mean']:.3f} | 1 |")
        for rule in CURVE_RULES:
            lines.append(f"| **auto: {rule}** (median sigma) | " + " | ".join(
                f"{p['auto'][rule]['mae']:.3f} ({p['auto'][rule]['sigma_median']:g})" for p in rs)
                + f" | {s[f'{rule}_mae_mean']:.3f} | {s[f'{rule}_ratio_to_oracle_mean']:.3f} |")
        lines.append("")
    if "agreement" in summary:
        lines += ["## Agreement rule (DSM vs error bundle, K = n draws)", "",
                  "| | " + " | ".join(names) + " | mean |", "|---" * (len(names) + 2) + "|"]
        for field, label in (("mae", "agreement"), ("default_rule_mae_same_points", "default rule"),
                             ("oracle_mae_same_points", "oracle")):
            vals = [r["agreement"][field] for r in records]
            lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {np.mean(vals):.3f} |")
        lines.append(f"\n({records[0]['agreement']['points']} points per manifold.)\n")
    lines += ["## Training-loss LID per sigma bucket vs estimated mean LID (held-out)", "",
              "| manifold | " + " | ".join(f"{b['sigma_mid']:.3g}" for b in records[0]["loss_buckets"][::3])
              + " |", "|---" * (len(records[0]["loss_buckets"][::3]) + 1) + "|"]
    for r in records:
        lines.append(f"| {r['manifold']} (train / est) | " + " | ".join(
            f"{b['train_loss_lid']:.2f} / {b['estimated_mean_lid']:.2f}" for b in r["loss_buckets"][::3])
            + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
