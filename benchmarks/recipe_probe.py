"""Probe a change of the quick recipe on one benchmark manifold: train, then DSM MAE on held-out points.

Trains ``QUICK_RECIPE`` with the overrides given as JSON on 2,000 points (seed 0) of a manifold
(``--d``/``--n`` change its dimensions; ``Mn1_Nonlinear`` with ``d`` = 2, 8, 32 has 1, 4, 16
independent 2-d pieces), one thread, and prints the DSM MAE (mean LID) on 400 held-out points
(seed 1) with K = 16 draws at sigma 0.02 / 0.05 / 0.1, and the training seconds.  The figures of
docs/training.md ("Antithetic noise") and docs/benchmarks.md ("Why `nonlinear` ...") come from it:

    .venv/bin/python benchmarks/recipe_probe.py nonlinear '{"lr": 0.001}'
    .venv/bin/python benchmarks/recipe_probe.py nonlinear '{"antithetic": false, "lr": 0.002}' --d 8 --n 32
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from scorelid import estimate, train_denoiser
from scorelid.data import manifold
from scorelid.data.manifolds import MANIFOLDS
from scorelid.training.loop import QUICK_RECIPE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("manifold", choices=sorted(MANIFOLDS))
    ap.add_argument("overrides", nargs="?", default="{}", help="JSON object of QUICK_RECIPE overrides")
    ap.add_argument("--d", type=int, default=None)
    ap.add_argument("--n", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    over = json.loads(args.overrides)
    xtr, _ = manifold(args.manifold, 2000, seed=0, d=args.d, n=args.n)
    xev, d_true = manifold(args.manifold, 400, seed=1, d=args.d, n=args.n)
    recipe = {**QUICK_RECIPE, **over, "num_threads": 1}
    steps = recipe.pop("steps")
    t0 = time.perf_counter()
    D = train_denoiser(xtr, steps=steps, seed=0, progress=False, **recipe)
    seconds = time.perf_counter() - t0
    cells = []
    with torch.no_grad():
        for s in (0.02, 0.05, 0.1):
            lid = estimate(D, xev, "dsm", s, n_noise=16, seed=0).double()
            cells.append(f"σ={s}: {float((lid - d_true).abs().mean()):.2f} ({float(lid.mean()):.2f})")
    print(f"{args.manifold} d={int(d_true[0])} n={xev.shape[1]} {json.dumps(over)} train {seconds:.0f} s | "
          + " | ".join(cells))


if __name__ == "__main__":
    main()
