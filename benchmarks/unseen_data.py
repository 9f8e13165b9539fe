"""The default recipe on curved data nobody tuned for (issue: accuracy moonshot).

Each case is a union of cubes, tori and spheres pushed through smooth random networks
(``scorelid.data.embedded``), ambient dimension 16 to 1024, or (``PRODUCTS``, named ``prod:...``)
a product of such pieces, each in its own coordinates, columns shuffled.  Per case: train the default
``ScoreLID(random_state=0).fit(X)`` on ``N`` points (seed 0), then per-point LID of 500 held-out
points (seed 1) with the methods listed, against scikit-dimension's MLE and TwoNN (k = 50, the
training points as the reference pool).  Prints a table and writes JSON + markdown.

    .venv/bin/python benchmarks/unseen_data.py --out benchmarks/results/unseen_data
    .venv/bin/python benchmarks/unseen_data.py --cases issue --methods dsm normal_bundle
    .venv/bin/python benchmarks/unseen_data.py --cases issue --cli      # also scorelid train + estimate

``--cli`` also runs the command-line path on each case, as a user would (``scorelid train --data
X.npy --out M`` then ``scorelid estimate --model M --data Xe.npy --out lid.csv``, every option at
its default) and reports its MAE and wall time beside the library's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scorelid import ScoreLID
from scorelid.data.embedded import embedded
from scorelid.estimators.baselines import baseline_lid
from scorelid.runtime.io import atomic_write_json, atomic_write_text

#: name -> (specs, ambient n, training points)
CASES: dict[str, tuple[list[tuple[str, int]], int, int]] = {
    "issue": ([("cube", 4), ("cube", 10)], 48, 7000),
    "torus3_n16": ([("torus", 3)], 16, 3000),
    "sphere6+cube2_n32": ([("sphere", 6), ("cube", 2)], 32, 5000),
    "cube8_n128": ([("cube", 8)], 128, 5000),
    "torus2+sphere5+cube12_n256": ([("torus", 2), ("sphere", 5), ("cube", 12)], 256, 9000),
    "cube6+sphere3_n1024": ([("cube", 6), ("sphere", 3)], 1024, 4000),
}

#: products: name -> blocks ``[(specs, block n), ...]``; each block is an independent draw of
#: ``embedded(specs, ..., structure_seed=b + 1)`` in its own coordinates, the blocks' columns are
#: shuffled together (a fixed permutation), and a point's dimension is the sum of its blocks'.
PRODUCTS: dict[str, tuple[list[tuple[list[tuple[str, int]], int]], int]] = {
    "prod:torus2*sphere5*cube12_n96": ([([("torus", 2)], 16), ([("sphere", 5)], 32), ([("cube", 12)], 48)],
                                       5000),
    "prod:4*sphere3_n64": ([([("sphere", 3)], 16)] * 4, 5000),
    "prod:torus2*(cube2|sphere4)_n48": ([([("torus", 2)], 24), ([("cube", 2), ("sphere", 4)], 24)], 5000),
}


def case_points(name: str, num: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``[num, n]`` of case ``name`` (a union of ``CASES`` or a product of ``PRODUCTS``) and
    each point's true dimension ``[num]``; ``seed`` draws the points."""
    if name in CASES:
        specs, n, _ = CASES[name]
        return embedded(specs, num, n=n, seed=seed)
    blocks, _ = PRODUCTS[name]
    xs, ds = zip(*(embedded(specs, num, n=nb, seed=1000 * seed + b, structure_seed=b + 1)
                   for b, (specs, nb) in enumerate(blocks)), strict=True)
    x = torch.cat(xs, dim=1)
    perm = np.random.default_rng(12345).permutation(x.shape[1])
    return x[:, perm].contiguous(), torch.stack(ds).sum(0)


def _size(name: str) -> tuple[int, int]:
    """``(ambient n, training points)`` of a case."""
    if name in CASES:
        return CASES[name][1], CASES[name][2]
    blocks, num = PRODUCTS[name]
    return sum(nb for _, nb in blocks), num


def _summary(lid: np.ndarray, d: np.ndarray) -> dict:
    return {"mae": float(np.abs(lid - d).mean()),
            "mean_by_d": {int(k): float(lid[d == k].mean()) for k in np.unique(d)}}


def run_case(name: str, methods: list[str], n_eval: int, params: dict, models: str | None = None) -> dict:
    n, num = _size(name)
    x, _ = case_points(name, num, seed=0)
    xe, de = case_points(name, n_eval, seed=1)
    de = de.numpy()
    specs = CASES[name][0] if name in CASES else PRODUCTS[name][0]
    row = {"case": name, "specs": specs, "n": n, "n_train": num, "n_eval": n_eval, "params": params}
    saved = Path(models, name) if models else None
    t0 = time.perf_counter()
    if saved is not None and (saved / "scorelid_estimator.json").is_file():
        est = ScoreLID.load(saved)  # fit_s is then the load time
    else:
        est = ScoreLID(random_state=0, **params).fit(x.numpy())
        if saved is not None:
            est.save(saved)
    row["fit_s"] = time.perf_counter() - t0
    # the training's own wall time (also when loaded): fit_s adds the in-sample estimate of every
    # training point, which for the normal bundle (2n forward passes a point) can dominate
    row["train_s"] = (getattr(est.denoiser_, "history", None) or {}).get("seconds")
    row["chosen"] = getattr(est, "chosen_", None)
    for method in methods:
        t0 = time.perf_counter()
        n_noise = None if method == "normal_bundle" else 8  # the bundle needs K >= n: its default, 2n
        lid = est.set_params(method=method, n_noise=n_noise).predict(xe.numpy())
        row[method] = {**_summary(lid, de), "s": time.perf_counter() - t0}
    for base in ("mle", "twonn"):
        lid = baseline_lid(xe, base, k=50, reference=x).numpy()
        row[base] = _summary(lid, de)
    return row


def run_cli(name: str, n_eval: int) -> dict:
    """``scorelid train`` + ``scorelid estimate`` with every option at its default, in a temp dir."""
    import pandas as pd

    _, num = _size(name)
    x, _ = case_points(name, num, seed=0)
    xe, de = case_points(name, n_eval, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/x.npy", x.numpy())
        np.save(f"{tmp}/xe.npy", xe.numpy())
        cli = [sys.executable, "-m", "scorelid"]
        t0 = time.perf_counter()
        subprocess.run([*cli, "train", "--data", f"{tmp}/x.npy", "--out", f"{tmp}/m", "--no-progress"],
                       check=True, capture_output=True)
        t1 = time.perf_counter()
        done = subprocess.run([*cli, "estimate", "--model", f"{tmp}/m", "--data", f"{tmp}/xe.npy", "--out",
                               f"{tmp}/lid.csv", "--no-progress"], check=True, capture_output=True, text=True)
        t2 = time.perf_counter()
        table = pd.read_csv(f"{tmp}/lid.csv")
    lid = table["lid"].to_numpy()
    return {**_summary(lid, de.numpy()), "train_s": t1 - t0, "estimate_s": t2 - t1,
            "method": str(table["method"][0]), "sigma": float(table["sigma"][0]),
            "said": done.stderr.strip().splitlines()[-1:]}


def _table(rows: list[dict], methods: list[str]) -> str:
    cols = [*methods, "mle", "twonn"]
    head = " | ".join(f"{c} MAE" for c in cols)
    out = [f"| case | n | N | fit s (train s) | {head} | means by d (first method) |",
           "|---" * (len(cols) + 5) + "|"]
    for r in rows:
        means = ", ".join(f"{k}: {v:.2f}" for k, v in r[methods[0]]["mean_by_d"].items())
        train = f" ({r['train_s']:.0f})" if r.get("train_s") is not None else ""
        out.append(f"| {r['case']} | {r['n']} | {r['n_train']} | {r['fit_s']:.0f}{train} | "
                   + " | ".join(f"{r[c]['mae']:.2f}" for c in cols) + f" | {means} |")
    avg = {c: np.mean([r[c]["mae"] for r in rows]) for c in cols}
    out.append("| **average** | | | | " + " | ".join(f"**{avg[c]:.2f}**" for c in cols) + " | |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=list(CASES), help=f"of {[*CASES, *PRODUCTS]}")
    ap.add_argument("--methods", nargs="*", default=["normal_bundle", "dsm"])
    ap.add_argument("--n-eval", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", nargs="*", default=[], help="ScoreLID parameters key=value (Python literals)")
    ap.add_argument("--out", default=None, help="writes OUT.json and OUT.md")
    ap.add_argument("--cli", action="store_true", help="also scorelid train + estimate at their defaults")
    ap.add_argument("--models", default=None, help="save fitted estimators to MODELS/CASE (reused if there)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import ast
    params = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in args.set)}
    rows = []
    for name in args.cases:
        rows.append(run_case(name, args.methods, args.n_eval, params, args.models))
        r = rows[-1]
        if args.cli:
            r["cli"] = run_cli(name, args.n_eval)
            print(name, "cli:", {k: r["cli"][k] for k in ("mae", "mean_by_d", "train_s", "method", "sigma")})
        maes = {m: round(r[m]["mae"], 2) for m in [*args.methods, "mle", "twonn"]}
        print(name, f"fit {r['fit_s']:.0f} s", maes, {m: r[m]["mean_by_d"] for m in args.methods}, flush=True)
    table = _table(rows, args.methods)
    print(table)
    if args.out:
        atomic_write_json(Path(args.out + ".json"), rows)
        atomic_write_text(Path(args.out + ".md"), table + "\n")


if __name__ == "__main__":
    main()
