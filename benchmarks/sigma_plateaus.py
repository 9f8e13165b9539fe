"""Per-point plateaus and the data-following grid of ``sigma="auto"`` (issue: per-point noise scale).

Part 1, closed forms (exact posterior means, no training): mixtures of Gaussians on subspaces whose
pieces differ in scale by 100x, exactly and with a model error of 1% of each piece's scale.  Per-point
assignment (the piece dimension nearest a point's LID is its own) for the old default grid
(0.005..0.3) and the data-following grid (``scorelid.sigma.range.auto_grid``), under the rules
``min_log_slope`` and ``plateau``, at K = 8 and 32 draws, with the best fixed sigma of the grid.

Part 2, trained models: for every ``<manifold>__mlp`` model of a finished ``scorelid bench`` run
(``--bench DIR``, e.g. ``runs/quick``), the DSM curve on 1000 held-out points (seed 1) on the profile's
grid and on ``auto_grid``; MAE of each rule against the best fixed sigma of the same grid (the oracle,
chosen knowing the truth), and of the counterfactual ``lowest_in_plateau`` (see there).  With
``--train KEY=VALUE ...`` instead of ``--bench``, the models are the quick recipe with those changes
trained here on 2,000 points of each of ``--manifolds`` (a recipe probe, docs/training.md):

    .venv/bin/python benchmarks/sigma_plateaus.py --no-closed-forms --manifolds nonlinear \
        --train steps=6000 lr=0.001 --n-noise 64 --out runs/probe.json

    .venv/bin/python benchmarks/sigma_plateaus.py --bench runs/quick \
        --out benchmarks/results/sigma_plateaus.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from scorelid.bench.profiles import get_profile
from scorelid.data import MANIFOLDS, GaussianSubspaceMixture, manifold
from scorelid.data.analytic import BiasedMixture
from scorelid.denoiser import Denoiser
from scorelid.runtime.io import atomic_write_json
from scorelid.sigma import DEFAULT_GRID, lid_curve, select
from scorelid.sigma.plateaus import MIN_WIDTH, find_plateaus
from scorelid.sigma.range import auto_grid, error_floor
from scorelid.training.checkpoint import load_denoiser
from scorelid.training.config import QUICK
from scorelid.training.loop import train_denoiser

CASES = {  # dims, ambient n, scales
    "wide6-narrow10-flat2": ([6, 10, 2], 24, [1.0, 0.01, 1.0]),
    "3-and-thin8": ([3, 8], 16, [1.0, 0.01]),
    "four-scales": ([1, 5, 12, 3], 32, [1.0, 0.01, 0.1, 0.03]),
    "thin4-wide4-mid9": ([4, 4, 9], 20, [0.01, 1.0, 0.1]),
}
RULES = ("min_log_slope", "plateau")


def assignment(lid: torch.Tensor, d: torch.Tensor, dims: list[int]) -> float:
    pieces = torch.tensor(sorted(set(dims)), dtype=torch.float64)
    return float((pieces[(lid[:, None] - pieces[None]).abs().argmin(1)] == d).double().mean())


def closed_forms(points: int) -> list[dict]:
    rows = []
    for name, (dims, n, scales) in CASES.items():
        m = GaussianSubspaceMixture(dims, n, scales=scales, seed=1)
        x, d = m.sample(points, seed=2)
        d = d.double()
        for error in (0.0, 0.01):
            D = BiasedMixture.relative(m, error) if error else m
            grids = {"old 0.005..0.3": torch.tensor(DEFAULT_GRID, dtype=torch.float64),
                     "auto": auto_grid(D, x)[0]}
            for K in (8, 32):
                for gname, s in grids.items():
                    curve = lid_curve(D, x, s, "dsm", n_noise=K, seed=0)
                    row = {"case": name, "model_error": error, "K": K, "grid": gname, "levels": len(s),
                           "lo": float(s[0]), "hi": float(s[-1]),
                           "best_fixed": max(assignment(c, d, dims) for c in curve)}
                    for rule in RULES:
                        idx, _ = select(curve, s, rule)
                        row[rule] = assignment(curve.gather(0, idx[None])[0], d, dims)
                    rows.append(row)
                    print(f"{name:22s} err={error:<5g} K={K:<3d} {gname:15s} " + " ".join(
                        f"{r}={row[r]:.3f}" for r in RULES) + f" fixed={row['best_fixed']:.3f}", flush=True)
    return rows


def lowest_in_plateau(curve: torch.Tensor, sigmas: torch.Tensor, floor: float | None) -> torch.Tensor:
    """A counterfactual rule, not in the library: per point, the *lowest* reading inside the plateau
    ``plateau`` chooses (its first one at least ``MIN_WIDTH`` decades wide, else its first), the
    curve's minimum where it has none.  Model error only adds to DSM at small sigma, so this reads
    the least contaminated level of the plateau, and also wherever curvature pulls the curve below
    d: it asks whether picking the crossing of the two biases can be done without the truth."""
    out = curve.min(0).values.clone()
    for i, found in enumerate(find_plateaus(curve, sigmas, floor=floor)):
        wide = [p for p in found if p.width >= MIN_WIDTH - 1e-9] or found
        if wide:
            out[i] = curve[wide[0].start: wide[0].stop + 1, i].min()
    return out


def bench_models(bench: Path) -> tuple[torch.Tensor, Iterator[tuple[str, Denoiser]]]:
    """The profile's sigma grid and the ``<manifold>__mlp`` models of a finished bench run."""
    grid = torch.tensor(json.loads((bench / "bench.json").read_text())["profile"].get(
        "auto_sigmas", DEFAULT_GRID), dtype=torch.float64)
    dirs = sorted((bench / "models").glob("*__mlp"))
    return grid, ((m.name.split("__")[0], load_denoiser(m)) for m in dirs)


def recipe_models(names: list[str], changes: dict, n_train: int) -> Iterator[tuple[str, Denoiser]]:
    """The quick recipe with ``changes``, trained on ``n_train`` points (seed 0) of each manifold."""
    for name in names:
        x, _ = manifold(name, n_train, seed=0)
        t0 = time.perf_counter()
        model = train_denoiser(x, config=QUICK.replace(**changes), seed=0, progress=False)
        print(f"{name}: trained in {time.perf_counter() - t0:.0f} s ({changes or 'the quick recipe'})",
              flush=True)
        yield name, model.eval()


def trained(profile_grid: torch.Tensor, models: Iterable[tuple[str, Denoiser]], points: int,
            K: int) -> list[dict]:
    rows = []
    for name, model in models:
        x, d = manifold(name, points, seed=1)
        d = d.double()
        floor = error_floor(model)
        for gname, s in (("profile", profile_grid), ("auto", auto_grid(model, x)[0])):
            t0 = time.perf_counter()
            curve = lid_curve(model, x, s, "dsm", n_noise=K, seed=0)
            fixed = (curve - d).abs().mean(1)
            row = {"manifold": name, "d": int(d[0]), "grid": gname, "levels": len(s), "lo": float(s[0]),
                   "hi": float(s[-1]), "floor": floor, "oracle_mae": float(fixed.min()),
                   "oracle_sigma": float(s[int(fixed.argmin())]),
                   "mae_0.05": float((curve[int((s - 0.05).abs().argmin())] - d).abs().mean()),
                   "seconds": time.perf_counter() - t0}
            for rule in RULES:
                idx, _ = select(curve, s, rule, floor=floor)
                row[rule] = float((curve.gather(0, idx[None])[0] - d).abs().mean())
                row[f"{rule}_ratio"] = row[rule] / row["oracle_mae"]
            row["lowest_in_plateau"] = float((lowest_in_plateau(curve, s, floor) - d).abs().mean())
            row["lowest_in_plateau_ratio"] = row["lowest_in_plateau"] / row["oracle_mae"]
            rows.append(row)
            print(f"{name:10s} {gname:8s} ({len(s)} levels {float(s[0]):.3g}..{float(s[-1]):.3g}, floor "
                  f"{floor if floor is None else round(floor, 4)}): oracle {row['oracle_mae']:.3f} at "
                  f"{row['oracle_sigma']:.3g}; " + " ".join(
                      f"{r} {row[r]:.3f} ({row[r + '_ratio']:.2f}x)" for r in (*RULES, "lowest_in_plateau")),
                  flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/sigma_plateaus.json")
    ap.add_argument("--bench", default=None, help="a finished `scorelid bench` directory (part 2)")
    ap.add_argument("--points", type=int, default=600, help="points per closed-form mixture")
    ap.add_argument("--eval-points", type=int, default=1000)
    ap.add_argument("--n-noise", type=int, default=16, help="draws per point for the trained models")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-closed-forms", action="store_true", help="part 2 only")
    ap.add_argument("--train", nargs="*", metavar="KEY=VALUE", default=None,
                    help="instead of --bench: train the quick recipe with these changes (JSON values)")
    ap.add_argument("--manifolds", nargs="*", default=list(MANIFOLDS), help="with --train")
    ap.add_argument("--n-train", type=int, default=2000, help="with --train: training points")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    out = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}",
           "command": "python benchmarks/sigma_plateaus.py " + " ".join(
               f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False)),
           "closed_forms": [] if args.no_closed_forms else closed_forms(args.points)}
    if args.bench:
        out["trained"] = trained(*bench_models(Path(args.bench)), args.eval_points, args.n_noise)
    elif args.train is not None:
        changes = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.train)}
        grid = torch.tensor(get_profile("quick").auto_sigmas, dtype=torch.float64)
        out["trained"] = trained(grid, recipe_models(args.manifolds, changes, args.n_train), args.eval_points,
                                 args.n_noise)
    out["wall_s"] = time.perf_counter() - t0
    atomic_write_json(args.out, out)
    print(f"-> {args.out} ({out['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
