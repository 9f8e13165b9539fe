"""Measure a training recipe on the five benchmark manifolds: DSM (and FLIPD) MAE and wall time.

Usage::

    python benchmarks/train_recipe.py                       # QUICK_RECIPE
    python benchmarks/train_recipe.py --set steps=3000 width=768 --manifolds clifford_torus
    python benchmarks/train_recipe.py --flipd --out runs/recipe.json

Trains on 2,000 points (seed 0) per manifold and estimates on 1,000 held-out points (seed 1000),
DSM with 8 noise draws at sigma 0.01/0.02/0.05 (optionally FLIPD, Hutchinson trace, 8 probes).
Prints a table of MAE per manifold and writes the records as JSON.

``--d``/``--n`` change the manifolds' dimensions (``Mn1_Nonlinear`` with ``d`` = 2, 8, 32 has 1, 4,
16 independent 2-d pieces).  The 2026-12-06 figures of docs/training.md ("Antithetic noise") and
docs/benchmarks.md ("The error is per piece") were measured as

    python benchmarks/train_recipe.py --manifolds nonlinear --set lr=0.001 [--d 8 --n 32] \
        --n-eval 400 --eval-seed 1 --n-noise 16 --noise-seed 0 --sigmas 0.02 0.05 0.1
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from scorelid import estimate
from scorelid.data import MANIFOLDS, manifold
from scorelid.runtime.io import atomic_write_json
from scorelid.training.loop import QUICK_RECIPE, train_denoiser

SIGMAS = (0.01, 0.02, 0.05)


def _value(v: str):
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", nargs="*", default=[], help="recipe overrides key=value (JSON values)")
    ap.add_argument("--manifolds", nargs="*", default=list(MANIFOLDS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-eval", type=int, default=1000)
    ap.add_argument("--n-noise", type=int, default=8)
    ap.add_argument("--flipd", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-seed", type=int, default=None, help="held-out seed (default: seed + 1000)")
    ap.add_argument("--noise-seed", type=int, default=1, help="the estimators' noise seed")
    ap.add_argument("--sigmas", type=float, nargs="+", default=list(SIGMAS))
    ap.add_argument("--d", type=int, default=None, help="intrinsic dimension (default: the manifold's)")
    ap.add_argument("--n", type=int, default=None, help="ambient dimension (default: the manifold's)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recipe = dict(QUICK_RECIPE)
    recipe.update({k: _value(v) for k, v in (s.split("=", 1) for s in args.set)})
    print("recipe:", recipe)
    records = []
    for name in args.manifolds:
        x, _ = manifold(name, args.n_train, seed=args.seed, d=args.d, n=args.n)
        eval_seed = args.seed + 1000 if args.eval_seed is None else args.eval_seed
        xe, d_true = manifold(name, args.n_eval, seed=eval_seed, d=args.d, n=args.n)
        d = int(d_true[0])
        t0 = time.perf_counter()
        model = train_denoiser(x, seed=args.seed, progress=False, **recipe)
        t_train = time.perf_counter() - t0
        row = {"manifold": name, "d": d, "train_s": t_train}
        for method in ("dsm", "flipd") if args.flipd else ("dsm",):
            opts = {"trace": "hutchinson", "n_probes": 8} if method == "flipd" else {}
            for s in args.sigmas:
                t0 = time.perf_counter()
                lid = estimate(model, xe, method, s, n_noise=args.n_noise, seed=args.noise_seed, **opts)
                row[f"{method}@{s}"] = float((lid - d).abs().mean())
                row[f"{method}@{s}_mean"] = float(lid.mean())
                row[f"{method}@{s}_s"] = time.perf_counter() - t0
        records.append(row)
        cols = [k for k in row if "@" in k and not k.endswith(("_s", "_mean"))]
        print(f"{name:15s} train {t_train:6.1f}s  " + "  ".join(
            f"{c} {row[c]:6.2f} ({row[c + '_mean']:.1f})" for c in cols), flush=True)
    cols = [k for k in records[0] if "@" in k and not k.endswith(("_s", "_mean"))]
    avg = {c: sum(r[c] for r in records) / len(records) for c in cols}
    total = sum(r["train_s"] for r in records)
    print(f"{'average':15s} train {total:6.1f}s  " + "  ".join(f"{c} {avg[c]:6.2f}" for c in cols))
    if args.out:
        atomic_write_json(args.out, {"recipe": recipe, "threads": args.threads, "records": records,
                                     "average": avg})


if __name__ == "__main__":
    main()
