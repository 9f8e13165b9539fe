"""Why a normal-bundle reading is off: its reading per sigma and the tail of its spectrum, per piece.

For a model trained on a case of ``benchmarks/unseen_data.py`` (a saved ``ScoreLID`` directory, as
``unseen_data.py --models DIR`` writes, or a scorelid checkpoint directory), on held-out points of
that case (seed 1): the normal-bundle LID, mean per true dimension, at each sigma of ``--sigmas``;
and, at the estimator's own sigma, the smallest ``--tail`` singular values of each point's score
stack divided by its largest (``scorelid.estimators.bundles.normal_bundle_spectrum``), as the
median over the points of each piece.  A normal direction the model does not denoise sits among
the tangent ones in that tail; a tangent one it contracts sits between them and the normal ones.

    .venv/bin/python benchmarks/bundle_spectrum.py --model /tmp/n1k/base/cube6+sphere3_n1024 \
        --case cube6+sphere3_n1024 --out benchmarks/results/bundle_spectrum_n1024
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from unseen_data import case_points

from scorelid import estimate, load_denoiser
from scorelid.estimators.bundles import normal_bundle_spectrum
from scorelid.estimators.common import Context
from scorelid.runtime.io import atomic_write_json, atomic_write_text
from scorelid.sklearn import ScoreLID, point_seeds


def _load(path: Path) -> tuple[object, float]:
    """The denoiser and its default sigma (5% of its training data's scale)."""
    if (path / "scorelid_estimator.json").is_file():
        est = ScoreLID.load(path)
        return est.denoiser_, float(est.sigma_)
    D = load_denoiser(path)
    return D, float(ScoreLID.from_denoiser(D).sigma_)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a saved ScoreLID or a scorelid checkpoint directory")
    ap.add_argument("--case", required=True, help="a case of benchmarks/unseen_data.py")
    ap.add_argument("--points", type=int, default=60, help="held-out points (seed 1)")
    ap.add_argument("--sigmas", type=float, nargs="*", default=None,
                    help="levels to read (default: 0.25, 0.5, 1, 2 and 4 times the default sigma)")
    ap.add_argument("--tail", type=int, default=14, help="smallest singular values to show")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="writes OUT.json and OUT.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    D, sigma = _load(Path(args.model))
    x, d = case_points(args.case, args.points, seed=1)
    n, dn = x.shape[1], d.numpy()
    idx = point_seeds(x.numpy())
    sigmas = args.sigmas or [round(f * sigma, 6) for f in (0.25, 0.5, 1, 2, 4)]
    t0 = time.perf_counter()
    readings = []
    for s in sigmas:
        lid = estimate(D, x, "normal_bundle", s, indices=idx).numpy()
        readings.append({"sigma": s, "mae": float(np.abs(lid - dn).mean()),
                         "mean_by_d": {int(k): float(lid[dn == k].mean()) for k in np.unique(dn)}})
        print(f"sigma {s:.4g}: MAE {readings[-1]['mae']:.2f}, by d {readings[-1]['mean_by_d']}", flush=True)
    sv = normal_bundle_spectrum(D, x, sigma, idx, Context(2 * n, 0, 4096))
    tail = (sv / sv[:, :1])[:, -args.tail:].numpy()
    spectra = {int(k): [float(v) for v in np.median(tail[dn == k], axis=0)] for k in np.unique(dn)}
    for k, v in spectra.items():
        print(f"d={k}: smallest {args.tail} singular values / largest (median): "
              + " ".join(f"{u:.3g}" for u in v))
    out = {"model": args.model, "case": args.case, "n": n, "points": args.points, "sigma": sigma,
           "readings": readings, "tail_at_sigma": spectra, "seconds": time.perf_counter() - t0}
    if args.out:
        atomic_write_json(f"{args.out}.json", out)
        lines = [f"# Normal-bundle spectrum: {args.case}", "",
                 f"Model: `{args.model}`; {args.points} held-out points; default sigma {sigma:g}.", "",
                 "| sigma | MAE | mean by d |", "|---|---|---|"]
        lines += [f"| {r['sigma']:g} | {r['mae']:.2f} | " + ", ".join(f"{k}: {v:.2f}" for k, v in
                  r["mean_by_d"].items()) + " |" for r in readings]
        lines += ["", f"Smallest {args.tail} singular values over the largest at sigma {sigma:g} "
                  "(median per piece):", ""]
        lines += [f"- d = {k}: " + " ".join(f"{u:.3g}" for u in v) for k, v in spectra.items()]
        atomic_write_text(f"{args.out}.md", "\n".join(lines) + "\n")
        print(json.dumps({"written": f"{args.out}.json"}))


if __name__ == "__main__":
    main()
