"""``scorelid bench``: the manifold benchmark (Table 1) and the scaling study (Figure 2).

    scorelid bench --profile quick --out runs/quick [--manifolds hypersphere hyperball] [--jobs 2]
    scorelid bench --profile paper --out runs/paper --device cuda
    scorelid bench --scaling --out runs/scaling [--dims 4 8 16 32 64] [--device cuda]
    scorelid bench --real --out runs/real          # = scorelid real --out runs/real (digits, patches)

Writes ``DIR/results.json``, ``results.csv``, ``report.md`` and PNG figures.  An interrupted run
resumes when the same command is run again (finished units are skipped, trained models reused,
an interrupted training continues from its last checkpoint).  A *finished* directory (one holding
``results.json``; ``scaling.json`` for ``--scaling``) is refused unless ``--force`` is given; with
``--force`` the run is repeated in place, reusing finished units unless ``--no-resume`` is also
given (``--force --no-resume`` recomputes everything).  ``--scaling`` writes ``DIR/scaling.json``,
``scaling.csv`` (in ``DIR/scaling/``), ``scaling.md`` and ``scaling.png``.  ``--jobs N`` trains
up to ``N`` missing models at once (one process each, CPU) before estimating: same numbers, sooner.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scorelid.cli.common import add_force, refuse_overwrite

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="benchmark LID estimators on manifolds with known dimension",
                       description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick",  # checked by get_profile: one error line, not usage
                   help="quick (default): MLP on CPU in minutes; paper: MLP + DiT at the paper's sizes (GPU)")
    p.add_argument("--out", required=True, help="results directory")
    p.add_argument("--manifolds", nargs="+", default=None, help="subset of the five manifolds")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="recompute finished units instead of skipping them")
    p.add_argument("--resume", dest="resume", action="store_true", help="skip finished units (default)")
    p.add_argument("--scaling", action="store_true", help="run the scaling study (Figure 2) instead")
    p.add_argument("--real", action="store_true",
                   help="run the real-data benchmark instead (digits, image patches; = scorelid real)")
    p.add_argument("--dims", type=int, nargs="+", default=None,
                   help="scaling: intrinsic dimensions (n = 4d); default 4..64 on CPU, 4..1024 on CUDA")
    p.add_argument("--steps", type=int, default=None, help="scaling: training steps (default: the recipe's)")
    p.add_argument("--jobs", type=int, default=1,
                   help="train up to this many models at once, one process each, before estimating "
                        "(CPU; default 1). Same models and numbers, sooner where cores are free")
    add_force(p)
    p.set_defaults(func=run, resume=True)
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from scorelid.bench.profiles import get_profile

    if args.real:
        return _run_real(args)
    get_profile(args.profile)  # ValueError naming the known profiles
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available on this machine")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a directory")
    refuse_overwrite(out / ("scaling.json" if args.scaling else "results.json"), args.force)
    t0 = time.perf_counter()
    if args.scaling:
        from scorelid.bench.scaling import CPU_DIMS, GPU_DIMS, run_scaling

        prof = get_profile(args.profile)
        recipe = dict(prof.recipes["mlp"])
        if args.steps is not None:
            if args.steps < 1:
                raise ValueError(f"--steps must be >= 1, got {args.steps}")
            recipe["steps"] = args.steps
        dims = args.dims or (GPU_DIMS if args.device.startswith("cuda") else CPU_DIMS)
        run_scaling(args.out, dims, recipe=recipe, seed=args.seed, device=args.device, resume=args.resume,
                    num_threads=prof.num_threads)
        print(f"scaling study written to {args.out}/scaling.md ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr)
        return 0
    from scorelid.bench.runner import run_bench

    prof = get_profile(args.profile, args.manifolds)
    run_bench(prof, args.out, seed=args.seed, device=args.device, resume=args.resume, train_jobs=args.jobs)
    print(f"results in {args.out}/results.json, report {args.out}/report.md "
          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return 0


def _run_real(args: argparse.Namespace) -> int:
    """``--real``: the real-data benchmark with its default sizes, via ``scorelid real``."""
    from scorelid.cli import real

    if args.scaling:
        raise ValueError("--real and --scaling are different benchmarks: choose one")
    parser = argparse.ArgumentParser(prog="scorelid bench --real")
    real.add_parser(parser.add_subparsers(dest="command"))
    argv = ["real", "--out", args.out, "--seed", str(args.seed)] + (["--force"] if args.force else [])
    return real.run(parser.parse_args(argv))
