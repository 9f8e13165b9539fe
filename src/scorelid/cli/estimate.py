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

Adaptive sigma: ``--sigma auto`` picks, per point, the level of the grid ``--sigmas`` (default: from
the model's smallest trained level to the data's spread, ``scorelid.sigma.range.auto_grid``) where
its LID curve is flat, by ``--rule``; rows then carry
the chosen ``sigma`` and a ``flatness`` column (``|dLID/dlog sigma|`` there, LID units per e-fold).
``--sigmas a:b:k`` without ``--sigma`` writes the per-point LID curve instead: one row per (point,
level), columns ``index, sigma, lid, method`` (see ``scorelid curve``, which adds a plot).

Memory does not grow with the number of points: ``--data`` is read a chunk at a time
(``scorelid.runtime.points``: ``.npy`` by file offset, ``.parquet`` by record batches, bounded by its
largest row group; ``.npz`` and ``.csv`` are loaded whole), the finiteness check and the resume
fingerprint are computed in one pass over blocks, and rows are appended to ``--out`` in input order
as chunks finish (a temporary file renamed at the end; parquet: one row group per chunk).

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
    TableWriter,
    add_estimation_options,
    add_force,
    model_stamp,
    refuse_overwrite,
)
from scorelid.runtime.points import open_points

__all__ = ["add_parser", "run"]



def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from scorelid.estimators import METHODS

    p = sub.add_parser("estimate", help="per-point LID under a trained denoiser",
                       description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model directory written by `scorelid train`")
    p.add_argument("--data", required=True, help="points: .npy, .npz, .csv or .parquet [N, n]")
    p.add_argument("--method", default="auto", choices=["auto", *sorted(METHODS)],
                   help="LID estimator; auto (default): the normal bundle up to n = 1024 coordinates "
                        "(unless --n-noise < n), dsm otherwise (scorelid.estimators.resolve_method)")
    p.add_argument("--sigma", type=_sigma_arg, default=None,
                   help="noise level in the data's units (default: 5%% of the training data's scale, "
                        "0.05 for a model that does not record it), or 'auto': per point, the level "
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
    info = init_distributed(args.device)
    model = load_denoiser(args.model, device=info.device, arch=args.arch)
    resolve_defaults(args, model)
    points = open_points(args.data)
    if len(points.shape) != 1 or points.shape[0] != model.n:
        raise ValueError(f"{args.data}: points have shape {points.full_shape}, but the model {args.model} "
                         f"was trained on vectors of dimension {model.n}")
    digest = points.scan(args.data)  # finite, and the content's fingerprint: one pass, in blocks
    check_sigma(args.sigma, model, args.model, allow_outside=getattr(args, "any_sigma", False))
    if args.method == "normal_bundle" and args.n_noise is not None and args.n_noise < model.n:
        raise ValueError(f"--method normal_bundle needs --n-noise >= n = {model.n} (the data's dimension), "
                         f"got {args.n_noise}")
    options = {k: getattr(args, k) for k in ("trace", "n_probes") if getattr(args, k) is not None}
    if options and args.method not in ("flipd", "ism"):
        raise ValueError(f"--trace/--n-probes apply to flipd and ism, not {args.method}")

    batch = {"size": args.batch_size, "reduced": False}  # carried across chunks once memory ran out

    def compute(sl: slice) -> np.ndarray:
        import warnings

        from scorelid.runtime.guards import BatchSizeWarning, NonFiniteWarning

        idx = torch.arange(sl.start, sl.stop)
        stats: dict = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonFiniteWarning)  # counted in the flags, summed up below
            warnings.simplefilter("ignore", BatchSizeWarning)  # reported below
            x = torch.from_numpy(points.read(sl.start, sl.stop)).to(info.device)
            out = estimate(model, x, args.method, args.sigma, n_noise=args.n_noise, seed=args.seed,
                           batch_size=batch["size"], indices=idx, stats=stats, **options).numpy()
        if stats["oom_retries"]:
            print(f"scorelid estimate: out of memory; batch size reduced to {stats['batch_size']}",
                  file=sys.stderr)
        batch["reduced"] = batch["reduced"] or stats["oom_retries"] > 0
        batch["size"] = stats["batch_size"]
        return out

    job = {"data": digest, "model": model_stamp(args.model),
           "method": args.method, "sigma": args.sigma, "n_noise": args.n_noise, "seed": args.seed,
           **options}
    parts = Path(f"{args.out}.parts")
    summary = _Summary(model.n, args.method)
    if info.is_main:  # rows go to the output as chunks finish, in input order
        with TableWriter(args.out) as table:
            def write(start: int, lid: np.ndarray) -> None:
                k = len(lid)
                flags = summary.add(lid)
                table.append({"index": np.arange(start, start + k), "lid": lid, "method": [args.method] * k,
                              "sigma": np.full(k, float(args.sigma)), "flag": flags})

            run_chunked(compute, len(points), parts, job, info, chunk=args.chunk,
                        progress=not args.no_progress, desc=args.method, sink=write)
        finish_chunked(parts, info)
        print(f"{args.method} sigma={args.sigma}: mean LID {summary.mean()} over {summary.finite} points "
              f"-> {args.out}", file=sys.stderr)
        _report_flags(summary.flags, summary.total, model.n)
        if batch["reduced"]:
            print(f"final batch size {batch['size']} (out of memory at larger sizes)", file=sys.stderr)
    else:
        run_chunked(compute, len(points), parts, job, info, chunk=args.chunk, progress=False,
                    desc=args.method)
    barrier(info)  # every rank returns once the output exists
    return 0


class _Summary:
    """What the final report needs, gathered chunk by chunk: flags' counts, the mean of finite LIDs."""

    def __init__(self, n: int, method: str) -> None:
        from collections import Counter

        self.n, self.method = n, method
        self.flags: Counter[str] = Counter()
        self.total = self.finite = 0
        self.sum = 0.0

    def add(self, lid: np.ndarray) -> list[str]:
        """Count one chunk's points; return their flags (``scorelid.runtime.guards.lid_flags``)."""
        from scorelid.runtime.guards import lid_flags

        flags = lid_flags(lid, self.n, self.method)
        self.flags.update(f for f in flags if f)
        ok = np.isfinite(lid)
        self.total += len(lid)
        self.finite += int(ok.sum())
        self.sum += float(np.sum(lid[ok], dtype=np.float64))
        return flags

    def mean(self) -> str:
        return f"{self.sum / self.finite:.3f}" if self.finite else "nan"


def resolve_defaults(args: argparse.Namespace, model) -> None:
    """``--method auto`` -> the method for the model's dimension; no ``--sigma`` -> 5% of the scale of
    the model's training data (``default_sigma``; 0.05 for a model that does not record it)."""
    from scorelid.estimators import resolve_method
    from scorelid.training.config import default_sigma

    args.method = resolve_method(args.method, model.n, args.n_noise)
    if args.sigma is None:
        scale = getattr(model, "scale", None)
        args.sigma = default_sigma(float(scale)) if scale is not None else 0.05


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


def _report_flags(counts, total: int, n: int) -> None:
    """One stderr line per kind of flagged point (``counts``: flag -> number of points), if any."""
    for flag, count in sorted(counts.items()):
        why = "the model returned NaN or inf: lid is NaN" if flag == "nonfinite" else f"outside [0, n={n}]"
        print(f"warning: {count} of {total} points flagged {flag!r} ({why})", file=sys.stderr)


def _sigma_arg(text: str) -> float | str:
    """``--sigma``: a number or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None
