"""``scorelid real``: the real-data benchmark (digits, natural-image patches, anomaly AUROC, UNet).

    scorelid real --out runs/real [--full] [--no-unet] [--threads 2]

Writes ``results.json``, ``summary.csv``, per-point CSVs, figures and ``real.md`` into ``--out``
(see ``scorelid.real.bench``).  Trained models are kept in ``--out/models`` and reused on a rerun;
an interrupted run resumes their training from its newest checkpoint.  A finished run
(``--out/results.json``) is not overwritten without ``--force``.
"""

from __future__ import annotations

import argparse

from scorelid.cli.common import add_force, refuse_overwrite

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("real", help="real-data benchmark: digits, image patches, anomaly AUROC, UNet",
                       description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--full", action="store_true", help="larger sizes and longer training")
    p.add_argument("--no-unet", action="store_true", help="skip the diffusers UNet part (the slowest)")
    p.add_argument("--sigma", type=float, default=None, help="noise level (pixels in [0, 1]); default 0.05")
    p.add_argument("--mlp-steps", type=int, default=None, help="MLP training steps")
    p.add_argument("--unet-steps", type=int, default=None, help="UNet training steps")
    p.add_argument("--n-patches", type=int, default=None, help="training patches")
    p.add_argument("--n-digits", type=int, default=None, help="training digits (default: all but held-out)")
    p.add_argument("--n-test", type=int, default=None, help="held-out digits (default 300)")
    p.add_argument("--n-ood", type=int, default=None, help="points per out-of-distribution set (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_force(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    import torch

    from scorelid.real.bench import RealConfig, run_real

    cfg = RealConfig.full() if args.full else RealConfig()
    over = {"sigma": args.sigma, "mlp_steps": args.mlp_steps, "unet_steps": args.unet_steps,
            "n_patches": args.n_patches, "n_digits": args.n_digits, "n_test": args.n_test,
            "n_ood": args.n_ood}
    for key, val in over.items():
        if val is not None and not val > 0:
            raise ValueError(f"--{key.replace('_', '-')} must be > 0, got {val}")
    cfg = dataclasses.replace(cfg, seed=args.seed, **{k: v for k, v in over.items() if v is not None})
    n_all = 1797  # scikit-learn's digits
    if cfg.n_test >= n_all - 2 * cfg.k:
        raise ValueError(f"--n-test {cfg.n_test} leaves too few training digits for the k={cfg.k} "
                         f"nearest-neighbour baselines (need --n-test < {n_all - 2 * cfg.k})")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a directory")
    refuse_overwrite(out / "results.json", getattr(args, "force", False))
    res = run_real(out, config=cfg, progress=not args.no_progress, unet=not args.no_unet)
    print((out / "real.md").read_text(encoding="utf-8"))
    print(f"wrote {out}/results.json, summary.csv, real.md and figures ({res['seconds']:.0f} s)")
    return 0
