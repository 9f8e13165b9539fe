"""``scorelid export``: write a trained scorelid denoiser to one ONNX file, to serve it without PyTorch.

    scorelid export --model DIR --out FILE.onnx [--force] [--check-points 64]

The graph takes ``noisy`` ``[B, n]`` (float32) and ``sigma`` ``[B]`` (float32, the data's units) and
returns ``denoised`` ``[B, n]``, with a dynamic batch dimension; the weights are inside the file and
the model's config (training noise range included) in its metadata.  ``scorelid estimate --model
FILE.onnx`` and ``scorelid.load_denoiser(FILE.onnx)`` run it with onnxruntime (forward-only
methods: dsm, error_bundle, normal_bundle).  After writing, onnxruntime is run on a random batch
(points ``mean + scale * N(0, I)``, noise levels log-uniform over the training range) and compared
with PyTorch: the max abs difference is printed, and a difference above ``--tol`` times the
outputs' largest magnitude (at least 1) removes the file and fails.  Needs the ``onnx`` extra.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from scorelid.cli.common import add_force, refuse_overwrite

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export a trained denoiser to ONNX (forward-only serving)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model directory written by scorelid train")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--check-points", type=int, default=64, help="points in the onnxruntime-vs-PyTorch check")
    p.add_argument("--tol", type=float, default=1e-4, help="relative tolerance of that check")
    p.add_argument("--seed", type=int, default=0, help="seed of the check's random batch")
    add_force(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from scorelid.adapters.onnx import OnnxDenoiser, compare_onnx, export_onnx
    from scorelid.training.checkpoint import load_denoiser

    out = Path(args.out)
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"--out must end in .onnx, got {out.name!r}")
    if Path(args.model).suffix.lower() == ".onnx":
        raise ValueError(f"--model {args.model} is already an ONNX file; give a scorelid model directory")
    if args.check_points < 1:
        raise ValueError(f"--check-points must be >= 1, got {args.check_points}")
    refuse_overwrite(out, args.force)
    model = load_denoiser(args.model).float()
    export_onnx(model, out, (model.n,), config=model.config, opset=args.opset)

    x, sigma = _check_batch(model, args.check_points, args.seed)
    D = OnnxDenoiser(out)
    with torch.inference_mode():
        scale = max(1.0, float(model(x, sigma).abs().max()))
    diff = compare_onnx(model, D, x, sigma)
    size = out.stat().st_size / 2**20
    print(f"exported {args.model} -> {out} ({size:.2f} MiB, dynamic batch); onnxruntime vs PyTorch on "
          f"{args.check_points} random points: max abs diff {diff:.3g}", file=sys.stderr)
    if not diff <= args.tol * scale:
        out.unlink(missing_ok=True)
        raise RuntimeError(f"onnxruntime differs from PyTorch by {diff:.3g} (> {args.tol:g} x {scale:.3g}); "
                           f"{out} removed")
    return 0


def _check_batch(model, points: int, seed: int):
    """Random points around the training data and log-uniform noise levels over its training range."""
    import torch

    g = torch.Generator().manual_seed(seed)
    scale = float(model.scale)
    x = model.mean + scale * torch.randn(points, model.n, generator=g)
    train = (model.config or {}).get("train") or {}
    lo, hi = train.get("sigma_min", 0.01 * scale), train.get("sigma_max", scale)
    u = torch.rand(points, generator=g)
    sigma = torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    return x.float(), sigma.float()
