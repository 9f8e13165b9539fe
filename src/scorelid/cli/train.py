"""``scorelid train``: train a denoiser on a point file and save it to a directory.

    scorelid train --data X.npy --arch mlp --steps 2000 --out runs/model [--resume]

Settings start from a recipe (``--recipe quick`` by default: ``scorelid.train.QUICK_RECIPE``;
``paper``: ``PAPER_RECIPE[arch]``); flags given explicitly override it.  Writes ``DIR/config.json``
and ``DIR/model.safetensors`` (load with ``scorelid.load_denoiser(DIR)``), periodic resumable
checkpoints in ``DIR/checkpoints/``, and ``DIR/lid_by_sigma.csv``: the in-sample mean DSM-LID per
noise-level bucket over the last 20% of training, also printed as a table.

Under ``torchrun`` (``torchrun --nproc_per_node=N -m scorelid train ...``, one node or several) it
trains data-parallel with DistributedDataParallel (gloo on CPU, NCCL with ``--device cuda``, each
process on ``cuda:LOCAL_RANK``): ``--batch-size`` is the global batch and must be a multiple of
the number of processes; the result is the single-process one up to float summation order.  Rank 0
writes the files and prints; a failing rank stops every rank with one line naming it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from scorelid.io import atomic_write_text, load_points

__all__ = ["add_parser", "check_finite", "lid_by_sigma_csv", "run"]

# flag -> train_denoiser keyword (architecture options are passed through as model kwargs)
_FLAGS = ("steps", "batch_size", "lr", "seed", "width", "depth", "hidden", "heads", "patch", "skip",
          "sigma_min", "sigma_max", "ema_decay")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a denoiser on data (DSM loss)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="training points: .npy, .npz, .csv or .parquet [N, n]")
    p.add_argument("--out", required=True, help="output directory for the model and checkpoints")
    p.add_argument("--arch", choices=("mlp", "dit"), default=None, help="network (default: the recipe's)")
    p.add_argument("--recipe", choices=("quick", "paper"), default="quick",
                   help="starting settings (default quick: CPU-sized)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--width", type=int, help="MLP width")
    p.add_argument("--depth", type=int, help="MLP blocks / DiT layers")
    p.add_argument("--hidden", type=int, help="DiT token width")
    p.add_argument("--heads", type=int, help="DiT attention heads")
    p.add_argument("--patch", type=int, help="DiT values per token")
    p.add_argument("--skip", choices=("edm", "wiener"))
    p.add_argument("--sigma-min", type=float)
    p.add_argument("--sigma-max", type=float)
    p.add_argument("--ema-decay", type=float)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
    return p


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    from scorelid.train import PAPER_RECIPE, QUICK_RECIPE

    if args.recipe == "paper":
        base = dict(PAPER_RECIPE[args.arch or "mlp"])
    else:
        base = dict(QUICK_RECIPE)
        if args.arch and args.arch != base["arch"]:
            # the quick recipe's network options belong to its architecture: drop them
            import inspect

            from scorelid.nn import ARCHS

            own = set(inspect.signature(ARCHS[base["arch"]].__init__).parameters)
            base = {k: v for k, v in base.items() if k not in own}
    if args.arch:
        base["arch"] = args.arch
    for flag in _FLAGS:
        v = getattr(args, flag)
        if v is not None:
            base[flag] = v
    arch_opts = {"mlp": ("width", "depth"), "dit": ("hidden", "heads", "depth", "patch")}[base["arch"]]
    for k in ("width", "hidden", "heads", "patch"):
        if k in base and k not in arch_opts:
            raise ValueError(f"--{k} does not apply to --arch {base['arch']}")
    return base


def check_finite(x, path) -> None:
    """``ValueError`` naming the file and the first rows with NaN or inf values."""
    import numpy as np

    bad = ~np.isfinite(x.reshape(x.shape[0], -1)).all(1)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise ValueError(f"{path}: {int(bad.sum())} rows have NaN or inf values, e.g. rows {rows}")


def lid_by_sigma_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text of ``history["lid_by_sigma"]`` rows."""
    cols = ("sigma_lo", "sigma_hi", "sigma_mid", "mean_lid", "count")
    lines = [",".join(cols)]
    lines += [",".join(repr(float(r[c])) if c != "count" else str(int(r[c])) for c in cols) for r in rows]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from scorelid.checkpoint import latest_train_state
    from scorelid.distributed import init_distributed
    from scorelid.train import train_denoiser

    x = load_points(args.data)
    if x.ndim != 2:
        raise ValueError(f"{args.data}: training needs vectors [N, n], got shape {x.shape}")
    check_finite(x, args.data)
    out = Path(args.out)
    if not args.resume and out.exists() and latest_train_state(out) is not None:
        raise ValueError(f"{out} already holds a training checkpoint; pass --resume to continue it "
                         "or choose another --out")
    settings = _settings(args)
    info = init_distributed(args.device)
    if settings["batch_size"] % info.world_size:
        raise ValueError(f"--batch-size {settings['batch_size']} must be a multiple of the number of "
                         f"processes ({info.world_size})")
    if info.is_main:
        print(f"training {settings['arch']} on {x.shape[0]} points of dimension {x.shape[1]} "
              f"for {settings['steps']} steps -> {out}"
              + (f" on {info.world_size} processes" if info.active else ""), file=sys.stderr)
    model = train_denoiser(x, device=info.device, out_dir=out, resume=args.resume,
                           checkpoint_every=args.checkpoint_every,
                           progress=not args.no_progress and info.is_main, dist=info, **settings)
    if not info.is_main:
        return 0  # rank 0 writes the table and reports
    rows = model.history["lid_by_sigma"]
    atomic_write_text(out / "lid_by_sigma.csv", lid_by_sigma_csv(rows))
    print(f"done in {model.history['seconds']:.1f} s; final loss {model.history['loss'][-1][1]:.4g}")
    print("in-sample mean DSM-LID by noise level (last 20% of steps):")
    print(f"{'sigma_lo':>10} {'sigma_hi':>10} {'mean_lid':>10} {'count':>8}")
    for r in rows:
        print(f"{r['sigma_lo']:10.4g} {r['sigma_hi']:10.4g} {r['mean_lid']:10.3f} {r['count']:8d}")
    print(f"model: {out}  (lid_by_sigma.csv written)")
    return 0
