"""``scorelid estimate``: per-point LID of a point file under a trained denoiser.

    scorelid estimate --model runs/model --data X.npy --method dsm --sigma 0.05 --out lid.csv

Writes one row per input point, in input order, with columns ``index, lid, method, sigma, flag``;
``.csv`` or ``.parquet`` by the suffix of ``--out``, written atomically.  ``flag`` marks values to
distrust (``scorelid.runtime.guards.lid_flags``): ``nonfinite`` (the model returned NaN/inf for that point:
``lid`` is NaN), ``<method><0`` or ``<method>>n`` (outside ``[0, n]``, e.g. FLIPD at a badly chosen
sigma), else empty.  A finished ``--out`` is not overwritten without ``--force``.

Checked before any work (one line, exit 2): the data file parses, its points are finite (the first
bad row is named) and have the model's dimension; ``--sigma`` is > 0 and inside the noise range the
model was trained on (``--any-sigma`` allows extrapolating); ``--n-noise`` is enough for the method
(``normal_bundle`` needs ``K >= n``).  Out of memory, the batch size is halved and the final size
printed.

Adaptive sigma: ``--sigma auto`` picks, per point, the level of the grid ``--sigmas`` (default
``scorelid.sigma.select.DEFAULT_GRID``) where its LID curve is flat, by ``--rule``; rows then carry
the chosen ``sigma`` and a ``flatness`` column (``|dLID/dlog sigma|`` there, LID units per e-fold).
``--sigmas a:b:k`` without ``--sigma`` writes the per-point LID curve instead: one row per (point,
level), columns ``index, sigma, lid, method`` (see ``scorelid curve``, which adds a plot).

Long runs resume: points are processed in chunks of ``--chunk`` points, each saved at once to
``OUT.parts/``; rerunning the same command after an interruption computes only the missing chunks
(the parts directory is removed once the output is written).  Under ``torchrun`` the chunks are
shared among the processes (``scorelid.runtime.distributed``) and rank 0 writes the output; per-point
results do not depend on the number of processes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from scorelid.cli.common import (
    OUT_SUFFIXES,
    add_estimation_options,
    add_force,
    data_digest,
    refuse_overwrite,
    write_table,
)
from scorelid.cli.train import check_finite
from scorelid.runtime.io import load_points

__all__ = ["add_parser", "run"]



def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from scorelid.estimators import METHODS

    p = sub.add_parser("estimate", help="per-point LID under a trained denoiser",
                       description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model directory written by `scorelid train`")
    p.add_argument("--data", required=True, help="points: .npy, .npz, .csv or .parquet [N, n]")
    p.add_argument("--method", default="dsm", choices=sorted(METHODS))
    p.add_argument("--sigma", type=_sigma_arg, default=None,
                   help="noise level in the data's units (default 0.05), or 'auto': per point, the level "
                        "of --sigmas where its LID curve is flat")
    p.add_argument("--sigmas", default=None,
                   help="levels 'a:b:k' (k log-spaced from a to b) or 'a,b,c': the grid searched by "
                        "--sigma auto; alone, write the per-point LID curve (one row per point and level)")
    p.add_argument("--rule", default=None, help="sigma rule for --sigma auto (scorelid.sigma.select.RULES; "
                   "default min_log_slope)")
    p.add_argument("--out", required=True, help="output table (.csv or .parquet)")
    add_estimation_options(p)
    add_force(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from scorelid import estimate, load_denoiser
    from scorelid.runtime.distributed import barrier, finish_chunked, init_distributed, run_chunked

    if Path(args.out).suffix.lower() not in OUT_SUFFIXES:
        raise ValueError(f"--out must end in one of {OUT_SUFFIXES}, got {Path(args.out).name!r}")
    if args.chunk < 1:
        raise ValueError(f"--chunk must be >= 1, got {args.chunk}")
    refuse_overwrite(args.out, getattr(args, "force", False))
    for flag in ("n_noise", "batch_size", "n_probes"):
        v = getattr(args, flag, None)
        if v is not None and v < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {v}")
    if args.sigma == "auto" or args.sigmas is not None or args.rule is not None:
        from scorelid.cli.curve import run_estimate_sigmas

        return run_estimate_sigmas(args)
    if args.sigma is None:
        args.sigma = 0.05
    info = init_distributed(args.device)
    model = load_denoiser(args.model, device=info.device, arch=args.arch)
    x = load_points(args.data)
    if x.ndim != 2 or x.shape[1] != model.n:
        raise ValueError(f"{args.data}: points have shape {x.shape}, but the model {args.model} "
                         f"was trained on vectors of dimension {model.n}")
    check_finite(x, args.data)
    check_sigma(args.sigma, model, args.model, allow_outside=getattr(args, "any_sigma", False))
    if args.method == "normal_bundle" and args.n_noise is not None and args.n_noise < model.n:
        raise ValueError(f"--method normal_bundle needs --n-noise >= n = {model.n} (the data's dimension), "
                         f"got {args.n_noise}")
    options = {k: getattr(args, k) for k in ("trace", "n_probes") if getattr(args, k) is not None}
    if options and args.method not in ("flipd", "ism"):
        raise ValueError(f"--trace/--n-probes apply to flipd and ism, not {args.method}")

    xt = torch.from_numpy(np.ascontiguousarray(x)).to(info.device)
    batch = {"size": args.batch_size, "reduced": False}  # carried across chunks once memory ran out

    def compute(sl: slice) -> np.ndarray:
        import warnings

        from scorelid.runtime.guards import BatchSizeWarning, NonFiniteWarning

        idx = torch.arange(sl.start, sl.stop)
        stats: dict = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonFiniteWarning)  # counted in the flags, summed up below
            warnings.simplefilter("ignore", BatchSizeWarning)  # reported below
            out = estimate(model, xt[sl], args.method, args.sigma, n_noise=args.n_noise, seed=args.seed,
                           batch_size=batch["size"], indices=idx, stats=stats, **options).numpy()
        if stats["oom_retries"]:
            print(f"scorelid estimate: out of memory; batch size reduced to {stats['batch_size']}",
                  file=sys.stderr)
        batch["reduced"] = batch["reduced"] or stats["oom_retries"] > 0
        batch["size"] = stats["batch_size"]
        return out

    job = {"data": data_digest(x), "model": (Path(args.model) / "model.safetensors").stat().st_mtime_ns,
           "method": args.method, "sigma": args.sigma, "n_noise": args.n_noise, "seed": args.seed,
           **options}
    parts = Path(f"{args.out}.parts")
    lid = run_chunked(compute, len(x), parts, job, info, chunk=args.chunk,
                      progress=not args.no_progress, desc=args.method)
    if lid is not None:  # rank 0
        from scorelid.runtime.guards import lid_flags

        N = len(lid)
        flags = lid_flags(lid, model.n, args.method)
        write_table(args.out, {"index": np.arange(N), "lid": lid, "method": [args.method] * N,
                               "sigma": np.full(N, float(args.sigma)), "flag": flags})
        finish_chunked(parts, info)
        ok = np.isfinite(lid)
        mean = f"{lid[ok].mean():.3f}" if ok.any() else "nan"
        print(f"{args.method} sigma={args.sigma}: mean LID {mean} over {int(ok.sum())} points -> {args.out}",
              file=sys.stderr)
        _report_flags(flags, model.n)
        if batch["reduced"]:
            print(f"final batch size {batch['size']} (out of memory at larger sizes)", file=sys.stderr)
    barrier(info)  # every rank returns once the output exists
    return 0


def check_sigma(sigma: float, model, where: str, allow_outside: bool = False) -> None:
    """``ValueError`` unless ``sigma`` is finite, > 0 and (unless ``allow_outside``) inside the
    log-uniform noise range ``[sigma_min, sigma_max]`` ``model`` was trained on (when recorded)."""
    import math

    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"--sigma must be finite and > 0, got {sigma}")
    train = (getattr(model, "config", None) or {}).get("train") or {}
    lo, hi = train.get("sigma_min"), train.get("sigma_max")
    if allow_outside or train.get("sigma_dist", "loguniform") != "loguniform" or lo is None or hi is None:
        return
    if not lo <= sigma <= hi:
        raise ValueError(f"--sigma {sigma:g} is outside the noise range the model {where} was trained on "
                         f"[{lo:g}, {hi:g}]; pass --any-sigma to extrapolate")


def _report_flags(flags: list[str], n: int) -> None:
    """One stderr line per kind of flagged point (counts), if any."""
    from collections import Counter

    for flag, count in sorted(Counter(f for f in flags if f).items()):
        why = "the model returned NaN or inf: lid is NaN" if flag == "nonfinite" else f"outside [0, n={n}]"
        print(f"warning: {count} of {len(flags)} points flagged {flag!r} ({why})", file=sys.stderr)


def _sigma_arg(text: str) -> float | str:
    """``--sigma``: a number or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None
