"""The normal bundle on curved manifolds: the gap floor and K = 2n (issue: accuracy; docs/estimators.md).

For every ``<manifold>__mlp`` model of a finished ``scorelid bench`` run (``--bench DIR``), the
normal-bundle MAE at sigma = 0.05 on the first 250 held-out points (seed 1), as the bench's row
computes it, under three settings: before (K = n, largest log-gap over all singular values), the gap
floor alone (K = n), and now (gap floor, K = 2n, the default).

    .venv/bin/python benchmarks/normal_bundle.py --bench runs/quick \
        --out benchmarks/results/normal_bundle.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import scorelid
import scorelid.estimators.bundles as bundles
from scorelid.data import manifold
from scorelid.runtime.io import atomic_write_json
from scorelid.training.checkpoint import load_denoiser

SETTINGS = (("before: K=n, no gap floor", 0.0, 1), ("gap floor, K=n", 1e-3, 1),
            ("now: gap floor, K=2n", 1e-3, 2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", required=True)
    ap.add_argument("--out", default="benchmarks/results/normal_bundle.json")
    ap.add_argument("--points", type=int, default=250)
    args = ap.parse_args()
    rows, floor0 = [], bundles.GAP_FLOOR
    for mdir in sorted(Path(args.bench, "models").glob("*__mlp")):
        name = mdir.name.split("__")[0]
        model = load_denoiser(mdir)
        x, d = manifold(name, 1000, seed=1)
        x, d = x[: args.points], d[: args.points].double()
        row = {"manifold": name, "n": int(x.shape[1]), "d": int(d[0])}
        for label, floor, mult in SETTINGS:
            bundles.GAP_FLOOR = floor
            t0 = time.perf_counter()
            lid = scorelid.estimate(model, x, "normal_bundle", 0.05, n_noise=mult * x.shape[1], seed=0)
            row[label] = float((lid - d).abs().mean())
            row[f"{label} seconds"] = time.perf_counter() - t0
        bundles.GAP_FLOOR = floor0
        rows.append(row)
        print(f"{name:15s} " + "  ".join(f"{lab}: {row[lab]:.2f}" for lab, _, _ in SETTINGS), flush=True)
    avg = {lab: sum(r[lab] for r in rows) / len(rows) for lab, _, _ in SETTINGS}
    print("average         " + "  ".join(f"{lab}: {v:.2f}" for lab, v in avg.items()))
    command = f"python benchmarks/normal_bundle.py --bench {args.bench} --points {args.points}"
    atomic_write_json(args.out, {"rows": rows, "average": avg, "command": command})


if __name__ == "__main__":
    main()
