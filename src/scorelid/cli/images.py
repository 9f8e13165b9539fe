"""``scorelid images``: per-image LID of a folder of images under a diffusers model (directory or hub id).

Conditioning: ``--prompt TEXT`` for all images or ``--captions FILE`` for one per image (the empty
prompt by default); recorded in every row.  No classifier-free guidance is used.

    scorelid images --model DIR --images DIR_OR_GLOB --methods dsm,flipd --sigma 0.05 --out lid.parquet

Runs unchanged under ``torchrun`` (``torchrun --nproc_per_node=N -m scorelid images ...``): batches
of ``--batch-size`` images are shared among the processes (``scorelid.images.run.run_images``), rank 0
loads the model first (so the empty-prompt conditioning is computed and cached once) and writes
the output; per-image results do not depend on the number of processes.  A finished ``--out`` is
not overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import sys

from scorelid.cli.common import add_force, refuse_overwrite

__all__ = ["add_parser", "run"]


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "images",
        help="LID of images with a pretrained Stable Diffusion model (local diffusers directory)",
        description="VAE-encode images and estimate the LID of each latent with DSM, FLIPD, ... "
        "Sigma is on the variance-exploding scale for every model.  Resumes an interrupted run.",
    )
    p.add_argument("--model", required=True,
                   help="local diffusers directory or hub id org/name (SD 1.x/2.x, SDXL, SD3/3.5, FLUX.1, "
                   "PixArt, pixel-space DDPM/DDIM); hub ids resolve through the Hugging Face cache")
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) of a hub id")
    cond = p.add_mutually_exclusive_group()
    cond.add_argument("--prompt", default="", help="conditioning prompt for every image (default: empty)")
    cond.add_argument("--captions", default=None,
                      help="csv/parquet with each image's path and caption (columns path, caption)")
    p.add_argument("--guidance", type=float, default=None,
                   help="FLUX.1-dev-like models (guidance_embeds): guidance value fed to the network "
                   "(default 3.5); not classifier-free guidance")
    p.add_argument("--image-size", type=int, default=None, help="pixels per side (default: the model's)")
    p.add_argument("--images", required=True, help="folder of images (recursive) or a glob pattern")
    p.add_argument("--out", required=True, help="result table, .parquet or .csv")
    p.add_argument("--methods", default="dsm,flipd", help="comma-separated: dsm, flipd, ism, ...")
    p.add_argument("--sigma", type=_floats, default=[0.05], help="VE noise level(s), comma-separated")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32", help="network precision")
    p.add_argument("--quant", choices=("none", "int8", "int4"), default="none",
                   help="weight-only quantization (optimum-quanto); FLIPD then uses reverse-mode AD")
    p.add_argument("--device", default="cpu")
    p.add_argument("--n-noise", type=int, default=8, help="noise draws per image for DSM")
    p.add_argument("--trace", choices=("hutchinson", "exact"), default="hutchinson",
                   help="FLIPD trace (exact costs one JVP per latent coordinate)")
    p.add_argument("--n-probes", type=int, default=8, help="Hutchinson probes for FLIPD")
    p.add_argument("--ad", choices=("auto", "forward", "reverse"), default="auto",
                   help="Jacobian mode for FLIPD (auto: forward, reverse for quantized models)")
    p.add_argument("--batch-size", type=int, default=4, help="images per batch (one resume chunk)")
    p.add_argument("--max-rows", type=int, default=16, help="rows per network call")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--below-range", choices=("error", "extrapolate"), default="error",
                   help="sigma below the smallest trained level: refuse, or extrapolate the timestep")
    p.add_argument("--snap", action="store_true",
                   help="VP models: use the nearest trained timestep (and its sigma), not interpolation")
    p.add_argument("--cache-dir", default=None, help="where encoded prompts are cached")
    add_force(p)
    p.add_argument("--overwrite", dest="force", action="store_true", help=argparse.SUPPRESS)  # old name
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from scorelid.adapters import load_model
    from scorelid.estimators import METHODS
    from scorelid.images.run import ImageRun, find_images, read_captions, run_images
    from scorelid.runtime.distributed import all_ok, init_distributed

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {sorted(METHODS)}")
    ad = "reverse" if args.quant != "none" and args.ad == "auto" else args.ad
    if args.quant != "none" and ad == "forward":
        raise ValueError("quantized layers have no forward-mode derivatives: use --ad reverse")
    settings = ImageRun(
        methods=methods, sigmas=args.sigma, n_noise=args.n_noise, seed=args.seed,
        batch_size=args.batch_size, max_rows=args.max_rows, trace=args.trace,
        n_probes=args.n_probes, ad=ad,
    )
    refuse_overwrite(args.out, args.force)  # before loading anything (every rank sees the same file)
    paths = find_images(args.images)
    prompts = read_captions(args.captions, paths) if args.captions else args.prompt
    first = prompts if isinstance(prompts, str) else (prompts[0] if prompts else "")
    info = init_distributed(args.device)
    model, error = None, None
    for loading_ranks in ((0,), range(1, info.world_size)):  # rank 0 first: it fills the cache
        try:
            if info.rank in loading_ranks:
                model = load_model(
                    args.model, dtype=args.dtype, quant=args.quant, device=info.device,
                    cache_dir=args.cache_dir, below_range=args.below_range, snap=args.snap,
                    prompt=first, revision=args.revision, guidance=args.guidance, image_size=args.image_size,
                )
        except Exception as exc:  # reported to every rank
            error = exc
        all_ok(info, error)
    if info.is_main:
        for s in settings.sigmas:
            lvl = model.denoiser.resolve(s)
            note = " (extrapolated below the trained range)" if lvl.extrapolated else ""
            print(f"sigma={s:g}: sigma_used={lvl.sigma_used:.6g} timestep={lvl.timestep:.4f}{note}",
                  file=sys.stderr)
    df = run_images(model, paths, args.out, settings, force=args.force, progress=not args.no_progress,
                    info=info, prompts=prompts)
    if df is not None:  # rank 0
        n = df["path"].nunique() if len(df) else 0
        print(f"wrote {len(df)} rows for {n} images to {args.out}")
    return 0
