"""``scorelid curve``: per-point LID curves across noise levels, the chosen sigma, and a plot.

    scorelid curve --model runs/model --data X.npy --sigmas 0.005:0.3:12 --out curve.csv

Writes one row per (point, level), points in input order and levels increasing, with columns
``index, sigma, lid, method, chosen`` (``chosen`` is 1 at the level ``--rule`` picks for that
point, see ``scorelid.sigma.select``), ``.csv`` or ``.parquet`` by the suffix of ``--out``; and a
PNG (``--plot``, default ``OUT`` with suffix ``.png``) of LID against sigma: the mean and median
over points, the 10-90% and 25-75% bands, and the chosen sigma marked.

The same machinery serves ``scorelid estimate --sigma auto`` (one row per point with the chosen
``sigma``, its ``flatness`` and the ``flag`` column of ``scorelid estimate``) and ``scorelid
estimate --sigmas a:b:k`` (the curve table without ``chosen``). Every level must lie in the noise
range the model was trained on unless ``--any-sigma`` is given. Curves are computed in resumable
chunks of ``--chunk`` points (``OUT.parts/``, shared among ``torchrun`` processes); the choice of
sigma is made on the assembled curves, so the ``dataset`` rule sees every point whatever the
chunking.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from scorelid.cli.common import OUT_SUFFIXES, add_estimation_options, data_digest, model_stamp, write_table
from scorelid.runtime.io import load_points

__all__ = ["add_parser", "compute_curves", "curve_table", "run"]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from scorelid.estimators import METHODS
    from scorelid.sigma import DEFAULT_RULE, RULES

    p = sub.add_parser("curve", help="LID against sigma per point, the chosen sigma, and a plot",
                       description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model directory written by `scorelid train`")
    p.add_argument("--data", required=True, help="points: .npy, .npz, .csv or .parquet [N, n]")
    p.add_argument("--method", default="dsm", choices=sorted(METHODS))
    p.add_argument("--sigmas", default=None,
                   help="levels: 'a:b:k' (k log-spaced from a to b) or 'a,b,c' (default: from the "
                        "model's smallest trained level to the data's spread, 6 per decade; "
                        "scorelid.sigma.range.auto_grid)")
    p.add_argument("--rule", choices=RULES, default=DEFAULT_RULE, help="how the chosen sigma is picked")
    p.add_argument("--out", required=True, help="output table (.csv or .parquet)")
    p.add_argument("--plot", default=None, help="PNG of the curves (default: OUT with suffix .png)")
    add_estimation_options(p)
    p.set_defaults(func=run)
    return p


def grid(spec: str | None, model: Any = None, x: np.ndarray | None = None):
    """The ``--sigmas`` grid as a ``[S]`` float64 tensor; ``None`` before the inputs are loaded when
    ``spec`` is None, then the grid that follows the model and the data (``auto_grid``)."""
    from scorelid.sigma import parse_sigmas
    from scorelid.sigma.range import auto_grid

    if spec is None:
        return None if model is None else auto_grid(model, x)[0]
    try:
        return parse_sigmas(spec)
    except ValueError as exc:
        raise ValueError(f"--sigmas: {exc}") from None


def compute_curves(
    args: argparse.Namespace,
    model: Any,
    x: np.ndarray,
    info: Any,
    sigmas,
    options: dict[str, Any],
    with_error_bundle: bool,
    desc: str,
) -> np.ndarray | None:
    """Per-point curves ``[N, C, S]`` (``C = 2`` with the error-bundle curve, else 1), computed in
    resumable chunks under ``OUT.parts/``; the array on rank 0, ``None`` on other ranks.

    ``args`` supplies ``model, out, method, n_noise, seed, batch_size, chunk, no_progress``.
    """
    import torch

    from scorelid.runtime.distributed import run_chunked
    from scorelid.sigma.curve import lid_curve  # looked up per call (tests replace it)

    xt = torch.from_numpy(np.ascontiguousarray(x)).to(info.device)
    kw = {"n_noise": args.n_noise, "seed": args.seed, "batch_size": args.batch_size}

    def compute(sl: slice) -> np.ndarray:
        idx = torch.arange(sl.start, sl.stop)
        c = [lid_curve(model, xt[sl], sigmas, args.method, indices=idx, **kw, **options)]
        if with_error_bundle:
            c.append(lid_curve(model, xt[sl], sigmas, "error_bundle", indices=idx, **kw))
        return torch.stack(c).permute(2, 0, 1).numpy()  # [P, C, S]

    job = {"data": data_digest(x), "model": model_stamp(args.model),
           "method": args.method, "sigmas": [float(s) for s in sigmas], "eb": with_error_bundle,
           "n_noise": args.n_noise, "seed": args.seed, **options}
    return run_chunked(compute, len(x), Path(f"{args.out}.parts"), job, info, chunk=args.chunk,
                       progress=not args.no_progress, desc=desc)


def select_levels(curves: np.ndarray, sigmas, rule: str, model: Any, n: int):
    """``(index [N], flatness [N], plateaus)`` of the level ``rule`` picks on curves ``[N, C, S]`` of
    points with ``n`` coordinates (``scorelid.sigma.select.select_with_plateaus``, above the model's
    error floor)."""
    import torch

    from scorelid.sigma.range import error_floor
    from scorelid.sigma.select import select_with_plateaus

    c = torch.from_numpy(curves[:, 0, :].T.copy())
    eb = torch.from_numpy(curves[:, 1, :].T.copy()) if curves.shape[1] > 1 else None
    idx, flat, found = select_with_plateaus(c, sigmas, rule, n, floor=error_floor(model), eb_curve=eb)
    return idx.numpy(), flat.numpy(), found


def plateau_text(found: list) -> str:
    """A point's plateaus as ``"sigma:lid:width;..."`` (smallest scale first; "" for none)."""
    return ";".join(p.as_text() for p in found)


def curve_table(curve: np.ndarray, sigmas, method: str, chosen: np.ndarray | None = None) -> dict:
    """Long-format columns of a ``[N, S]`` curve: ``index, sigma, lid, method`` (+ ``chosen`` 0/1)."""
    N, S = curve.shape
    s = np.asarray(sigmas, dtype=np.float64)
    cols: dict[str, Any] = {"index": np.repeat(np.arange(N), S), "sigma": np.tile(s, N),
                            "lid": curve.reshape(-1), "method": [method] * (N * S)}
    if chosen is not None:
        mark = np.zeros((N, S), dtype=np.int64)
        mark[np.arange(N), chosen] = 1
        cols["chosen"] = mark.reshape(-1)
    return cols


def check_grid(sigmas, model: Any, where: str, allow_outside: bool) -> None:
    """``ValueError`` unless every level lies in the log-uniform noise range ``[sigma_min,
    sigma_max]`` the model was trained on (when recorded), as ``scorelid estimate --sigma`` demands;
    ``allow_outside`` (``--any-sigma``) skips the check."""
    train = (getattr(model, "config", None) or {}).get("train") or {}
    lo, hi = train.get("sigma_min"), train.get("sigma_max")
    if allow_outside or train.get("sigma_dist", "loguniform") != "loguniform" or lo is None or hi is None:
        return
    bad = [s for s in sigmas.tolist() if not lo * (1 - 1e-9) <= s <= hi * (1 + 1e-9)]
    if bad:
        levels = ", ".join(f"{s:.4g}" for s in bad)
        raise ValueError(f"--sigmas: {len(bad)} of {sigmas.numel()} levels ({levels}) lie outside the noise "
                         f"range the model {where} was trained on [{lo:g}, {hi:g}]; choose a grid inside it "
                         "or pass --any-sigma to extrapolate")


def load_inputs(args: argparse.Namespace, info: Any):
    """The model and the points of ``args`` (checked: vectors of the model's dimension, finite)."""
    from scorelid import load_denoiser
    from scorelid.cli.train import check_finite

    model = load_denoiser(args.model, device=info.device, arch=args.arch)
    x = load_points(args.data)
    if x.ndim != 2 or x.shape[1] != model.n:
        raise ValueError(f"{args.data}: points have shape {x.shape}, but the model {args.model} "
                         f"was trained on vectors of dimension {model.n}")
    check_finite(x, args.data)
    return model, x


def method_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {k: getattr(args, k) for k in ("trace", "n_probes") if getattr(args, k) is not None}
    if options and args.method not in ("flipd", "ism"):
        raise ValueError(f"--trace/--n-probes apply to flipd and ism, not {args.method}")
    return options


def run(args: argparse.Namespace) -> int:
    from scorelid.runtime.distributed import barrier, finish_chunked, init_distributed
    from scorelid.sigma.plot import plot_lid_curves

    if Path(args.out).suffix.lower() not in OUT_SUFFIXES:
        raise ValueError(f"--out must end in one of {OUT_SUFFIXES}, got {Path(args.out).name!r}")
    plot = Path(args.plot) if args.plot else Path(args.out).with_suffix(".png")
    if plot.suffix.lower() != ".png":
        raise ValueError(f"--plot must end in .png, got {plot.name!r}")
    if args.chunk < 1:
        raise ValueError(f"--chunk must be >= 1, got {args.chunk}")
    sigmas = grid(args.sigmas)
    if sigmas is not None and sigmas.numel() < 3:
        raise ValueError(f"--sigmas: choosing sigma needs at least 3 levels, got {sigmas.numel()}")
    options = method_options(args)
    info = init_distributed(args.device)
    model, x = load_inputs(args, info)
    sigmas = grid(args.sigmas, model, x)
    check_grid(sigmas, model, args.model, args.any_sigma)
    curves = compute_curves(args, model, x, info, sigmas, options, args.rule == "agreement", args.method)
    if curves is not None:  # rank 0
        idx, _, found = select_levels(curves, sigmas, args.rule, model, n=x.shape[1])
        write_table(args.out, curve_table(curves[:, 0, :], sigmas.numpy(), args.method, idx))
        plot_lid_curves({f"{args.method}, {len(x)} points ({Path(args.data).name})": {
            "sigmas": sigmas.numpy(), "curve": curves[:, 0, :].T, "sigma": sigmas.numpy()[idx],
            "plateaus": found, "label": "mean"}}, str(plot))
        finish_chunked(Path(f"{args.out}.parts"), info)
        mean = curves[:, 0, :].mean(0)
        print(f"{args.method} mean LID by sigma ({len(x)} points; chosen by {args.rule}: median sigma "
              f"{float(np.median(sigmas.numpy()[idx])):.4g}):", file=sys.stderr)
        for s, m in zip(sigmas.tolist(), mean.tolist(), strict=True):
            print(f"  sigma={s:<10.4g} mean LID {m:.3f}", file=sys.stderr)
        print(f"-> {args.out}, {plot}", file=sys.stderr)
    barrier(info)
    return 0


def run_estimate_sigmas(args: argparse.Namespace) -> int:
    """``scorelid estimate`` with ``--sigma auto`` (one row per point: chosen ``sigma``, ``flatness``)
    or with ``--sigmas`` alone (the per-point curve, one row per point and level)."""
    from scorelid.estimators import resolve_method
    from scorelid.runtime.distributed import barrier, finish_chunked, init_distributed
    from scorelid.runtime.guards import lid_flags
    from scorelid.sigma import DEFAULT_RULE, RULES

    auto = args.sigma == "auto"
    if not auto and args.sigma is not None:
        raise ValueError("--sigma NUMBER and --sigmas do not go together: give one level, or --sigma auto "
                         "with --sigmas as the grid searched, or --sigmas alone for the per-point curve")
    if args.rule is not None and not auto:
        raise ValueError("--rule applies to --sigma auto only")
    rule = args.rule or DEFAULT_RULE
    if rule not in RULES:
        raise ValueError(f"--rule: unknown sigma rule {rule!r}; choose one of {RULES}")
    sigmas = grid(args.sigmas)
    if auto and sigmas is not None and sigmas.numel() < 3:
        raise ValueError(f"--sigmas: choosing sigma needs at least 3 levels, got {sigmas.numel()}")
    options = method_options(args)
    info = init_distributed(args.device)
    model, x = load_inputs(args, info)
    args.method = resolve_method(args.method, model.n, args.n_noise)  # scorelid estimate's default: auto
    sigmas = grid(args.sigmas, model, x)
    check_grid(sigmas, model, args.model, getattr(args, "any_sigma", False))
    curves = compute_curves(args, model, x, info, sigmas, options, auto and rule == "agreement",
                            f"{args.method}@auto" if auto else f"{args.method} curve")
    if curves is not None:  # rank 0
        N = len(x)
        if auto:
            idx, flat, found = select_levels(curves, sigmas, rule, model, n=x.shape[1])
            lid = curves[np.arange(N), 0, idx]
            chosen = sigmas.numpy()[idx]
            write_table(args.out, {"index": np.arange(N), "lid": lid, "method": [args.method] * N,
                                   "sigma": chosen, "flatness": flat,
                                   "flag": lid_flags(lid, model.n, args.method),
                                   "plateaus": [plateau_text(f) for f in found]})
            print(f"{args.method} sigma=auto ({rule}, {sigmas.numel()} levels "
                  f"{float(sigmas[0]):.4g}..{float(sigmas[-1]):.4g}): mean LID {lid.mean():.3f}, median "
                  f"sigma {float(np.median(chosen)):.4g}, median flatness {float(np.median(flat)):.3g} "
                  f"over {N} points -> {args.out}", file=sys.stderr)
        else:
            write_table(args.out, curve_table(curves[:, 0, :], sigmas.numpy(), args.method))
            print(f"{args.method} LID curve at {sigmas.numel()} levels over {N} points -> {args.out}",
                  file=sys.stderr)
        finish_chunked(Path(f"{args.out}.parts"), info)
    barrier(info)
    return 0
