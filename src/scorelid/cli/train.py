"""``scorelid train``: train a denoiser on a point file and save it to a directory.

    scorelid train --data X.npy --arch mlp --steps 2000 --out runs/model [--resume]

Settings start from a recipe, a ``scorelid.training.config.TrainConfig`` (``--recipe auto`` by
default: ``auto_recipe``, ``QUICK`` with its noise range put on the data's scale, and a line saying
what it chose; ``quick``: ``QUICK`` as it is; ``cpu-dit``: ``CPU_DIT``; ``paper``: ``PAPER[arch]``);
flags given explicitly override it.  Writes ``DIR/config.json`` and ``DIR/model.safetensors`` (load with
``scorelid.load_denoiser(DIR)``), periodic resumable checkpoints in ``DIR/checkpoints/``, and
``DIR/lid_by_sigma.csv``: the in-sample mean DSM-LID per noise-level bucket over the last 20% of
training, also printed as a table.

Interruptions.  Checkpoints are written atomically every ``--checkpoint-every`` steps; rerunning
the same command after Ctrl-C, SIGTERM or ``kill -9`` resumes from the newest one (``--resume`` is
implied while the run is unfinished) and ends with bit-identical weights to an uninterrupted run.
A finished model (``DIR/model.safetensors``) is not overwritten without ``--force``; ``--resume`` on
a finished run reloads it and rewrites the same files.  A checkpoint made with other settings or
data, or a damaged one, is refused; ``--force`` removes the finished model and such checkpoints
and starts over (a compatible unfinished checkpoint is still resumed: same settings, same result,
so a forced run that is interrupted resumes when the same command is given again).

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
from typing import TYPE_CHECKING, Any

from scorelid.cli.common import add_force
from scorelid.runtime.io import atomic_write_text, load_points

if TYPE_CHECKING:
    from scorelid.training.config import TrainConfig

__all__ = ["add_parser", "check_finite", "lid_by_sigma_csv", "run"]

# flags that override a TrainConfig setting or network option of the same name
_FLAGS = ("steps", "batch_size", "lr", "seed", "width", "depth", "hidden", "heads", "patch", "skip",
          "sigma_min", "sigma_max", "ema_decay")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a denoiser on data (DSM loss)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="training points: .npy, .npz, .csv or .parquet [N, n]")
    p.add_argument("--out", required=True, help="output directory for the model and checkpoints")
    p.add_argument("--arch", choices=("mlp", "dit"), default=None, help="network (default: the recipe's)")
    p.add_argument("--recipe", choices=("auto", "quick", "cpu-dit", "paper"), default="auto",
                   help="starting settings (default auto: the quick recipe put on the data's scale; "
                        "quick: a CPU-sized MLP, noise range in the data's units as given; cpu-dit: a "
                        "small DiT, slower; paper: the paper's sizes, for a GPU)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in --out (implied while the run is unfinished)")
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
    add_force(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
    return p


def _say_resuming(ck: Path, step: int) -> None:
    """Printed once the checkpoint is known to fit the command (not before a refusal)."""
    print(f"resuming from {ck} at step {step}", file=sys.stderr)


def _settings(args: argparse.Namespace, x: Any = None) -> TrainConfig:
    """The recipe with the flags given; ``ValueError`` naming a flag that does not apply or cannot train.

    ``--recipe auto`` (the default) is ``auto_recipe(x)``: the quick recipe on the scale of the
    points ``x``; what it chose is printed.
    """
    from scorelid.training.config import CPU_DIT, PAPER, QUICK, auto_recipe

    if args.recipe == "paper":
        base = PAPER[args.arch or "mlp"]
    else:
        base = CPU_DIT if args.recipe == "cpu-dit" else QUICK
        if args.arch and args.arch != base.arch:
            # the recipe's network options belong to its architecture: drop them
            base = base.replace(arch=args.arch, net={})
        if args.recipe == "auto" and x is not None:
            base, _ = auto_recipe(x, base)
    flags = {flag: getattr(args, flag) for flag in _FLAGS if getattr(args, flag) is not None}
    arch_opts = {"mlp": ("width", "depth"), "dit": ("hidden", "heads", "depth", "patch")}[base.arch]
    for k in ("width", "hidden", "heads", "patch"):
        if k in flags and k not in arch_opts:
            raise ValueError(f"--{k} does not apply to --arch {base.arch}")
    _check_settings({**base.to_kwargs(), **flags}, args)
    return base.replace(**flags)


def _check_settings(settings: dict[str, Any], args: argparse.Namespace) -> None:
    """``ValueError`` naming the flag for settings that cannot train (before anything is written)."""
    for k in ("steps", "batch_size", "width", "depth", "hidden", "heads", "patch"):
        v = settings.get(k)
        if v is not None and v < 1:
            raise ValueError(f"--{k.replace('_', '-')} must be >= 1, got {v}")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    if not settings.get("lr", 1.0) > 0:
        raise ValueError(f"--lr must be > 0, got {settings['lr']}")
    if "ema_decay" in settings and not 0 <= settings["ema_decay"] < 1:
        raise ValueError(f"--ema-decay must be in [0, 1), got {settings['ema_decay']}")
    lo, hi = settings.get("sigma_min"), settings.get("sigma_max")
    if lo is not None and hi is not None and not 0 < lo < hi:
        raise ValueError(f"need 0 < --sigma-min < --sigma-max, got {lo:g}, {hi:g}")


def check_finite(x, path) -> None:
    """``ValueError`` naming the file and the first row with NaN or inf values."""
    from scorelid.runtime.guards import check_points_finite

    check_points_finite(x, str(path))


def lid_by_sigma_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text of ``history["lid_by_sigma"]`` rows."""
    cols = ("sigma_lo", "sigma_hi", "sigma_mid", "mean_lid", "count")
    lines = [",".join(cols)]
    lines += [",".join(repr(float(r[c])) if c != "count" else str(int(r[c])) for c in cols) for r in rows]
    return "\n".join(lines) + "\n"


def _training_points(path: str):
    """The points of ``--data``: vectors ``[N, n]``, finite, at least 2 (else ``ValueError``)."""
    x = load_points(path)
    if x.ndim != 2:
        raise ValueError(f"{path}: training needs vectors [N, n], got shape {x.shape}")
    check_finite(x, path)
    if x.shape[0] < 2:
        raise ValueError(f"{path}: training needs at least 2 points, got {x.shape[0]}")
    return x


def _resume_from(out: Path, args: argparse.Namespace, finished: bool) -> bool:
    """Whether to resume from ``out``'s checkpoint (an unfinished run, or ``--resume``); refuses a
    finished model without ``--force``/``--resume`` and a damaged checkpoint without ``--force``."""
    from scorelid.training.checkpoint import latest_train_state, load_train_state

    force = getattr(args, "force", False)
    if finished and not (force or args.resume):
        raise FileExistsError(f"{out} already holds a finished model; pass --force to retrain it "
                              "(or --resume to reload it)")
    try:
        ck = latest_train_state(out)  # unfinished (or --resume): continue from it
        if ck is not None:
            load_train_state(ck)  # readable? (a damaged checkpoint is named here, before any work)
        resume = ck is not None
    except ValueError as exc:
        if not force:
            raise ValueError(f"{exc}; pass --force to start over") from exc
        resume = False  # a damaged checkpoint: --force starts over
    if finished and not force and not resume:
        raise FileExistsError(f"{out} holds a finished model but no training checkpoint to reload; "
                              "pass --force to retrain it")
    return resume


def run(args: argparse.Namespace) -> int:
    from scorelid.runtime.distributed import init_distributed
    from scorelid.training.loop import train_denoiser

    x = _training_points(args.data)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a directory")
    force = getattr(args, "force", False)
    finished = (out / "model.safetensors").is_file()
    resume = _resume_from(out, args, finished)
    config = _settings(args, x)
    info = init_distributed(args.device)
    if config.batch_size % info.world_size:
        raise ValueError(f"--batch-size {config.batch_size} must be a multiple of the number of "
                         f"processes ({info.world_size})")
    if force and finished and info.is_main:
        for name in ("model.safetensors", "config.json", "lid_by_sigma.csv"):
            (out / name).unlink(missing_ok=True)  # --force: the old finished model goes first
    if info.is_main:
        from scorelid.training.config import describe_recipe, recipe_summary

        chosen = recipe_summary(config, x)  # its steps are a factorised model's own length
        if args.recipe == "auto":
            print(f"scorelid train: {describe_recipe(chosen)}", file=sys.stderr)
        print(f"training {config.arch} on {x.shape[0]} points of dimension {x.shape[1]} "
              f"for {chosen['steps']} steps -> {out}"
              + (f" on {info.world_size} processes" if info.active else ""), file=sys.stderr)
    def fit(resume: bool):
        return train_denoiser(x, device=info.device, out_dir=out, resume=resume,
                              checkpoint_every=args.checkpoint_every,
                              progress=not args.no_progress and info.is_main, dist=info,
                              on_resume=_say_resuming if info.is_main else None, config=config)

    model = None
    try:
        model = fit(resume)
    except ValueError as exc:
        if not (resume and "other settings" in str(exc)):
            raise
        if not force:
            raise ValueError(f"{exc}; or pass --force to start over") from exc
        if info.is_main:
            print("the checkpoint was made with other settings or data: starting over (--force)",
                  file=sys.stderr)
    if model is None:
        model = fit(False)
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
