"""Throughput of ``scorelid train`` and ``scorelid estimate`` against the number of torchrun processes.

Usage::

    python benchmarks/distributed_scaling.py                          # CPU: 1 and 2 gloo processes
    python benchmarks/distributed_scaling.py --nproc 1 2 4 8 --device cuda --points 400000 \\
        --train-steps 2000 --width 1024 --depth 6 --batch-size 512   # one node, NCCL

For every number of processes ``N`` it launches, as a user would,

    torchrun --nproc_per_node=N -m scorelid train --data X.npy --out DIR ...
    torchrun --nproc_per_node=N -m scorelid estimate --model M --data X.npy --out lid.csv ...

on points of a ``d``-sphere in ``R^n`` and measures:

* training steps/s over the training loop (``history["seconds"]`` written by the model: the loop
  alone, without process start-up; the global batch is ``--batch-size`` whatever ``N``), and the
  wall time of the whole command;
* estimation points/s, net of start-up: ``points / (t(points) - t(startup))`` where ``t(startup)``
  is the wall time of the same command on one chunk of points (start-up, model loading, process
  group, gather), measured for the same ``N``; plus the wall-clock rate of the whole command.

Scaling efficiency ``E(N) = throughput(N) / (N * throughput(1))`` (1: perfect).  Each timing is
the best of ``--repeats`` runs, taken in turn (1, 2, ..., 1, 2, ...) so that every process count
meets the same spells of outside load; the 1-minute load average before and after each is
recorded beside the figures.  Prints a table and writes the records and the machine's load to
``--out`` (JSON) and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scorelid.data import manifold
from scorelid.runtime.io import atomic_write_json, atomic_write_text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(nproc: int, args: list[str], threads: int) -> float:
    """Wall seconds of ``torchrun --nproc_per_node=nproc -m scorelid ARGS`` (raises if it fails)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           f"--master_port={_free_port()}", "-m", "scorelid", *args]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return wall


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="numbers of processes")
    ap.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, cuda:LOCAL_RANK)")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS per process")
    ap.add_argument("--d", type=int, default=2, help="sphere dimension")
    ap.add_argument("--n", type=int, default=16, help="ambient dimension")
    ap.add_argument("--points", type=int, default=20_000, help="points to estimate (and train on)")
    ap.add_argument("--train-steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=256, help="global training batch")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--method", default="dsm")
    ap.add_argument("--sigma", type=float, default=0.05)
    ap.add_argument("--n-noise", type=int, default=8)
    ap.add_argument("--chunk", type=int, default=1024, help="estimation chunk (points)")
    ap.add_argument("--repeats", type=int, default=1, help="best of R timings")
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/"
                                                "distributed_scaling_<device>.json)")
    args = ap.parse_args()
    if args.device.startswith("cuda") and max(args.nproc) > torch.cuda.device_count():
        raise SystemExit(f"--nproc {max(args.nproc)} needs that many GPUs; {torch.cuda.device_count()} found")
    if 1 not in args.nproc:
        raise SystemExit("--nproc must include 1 (the reference for the scaling efficiency)")
    out = Path(args.out or Path(__file__).parent / "results" / f"distributed_scaling_{args.device}.json")

    work = Path(tempfile.mkdtemp(prefix="scorelid-scaling-"))
    load_before = _load()
    rows = []
    try:
        x, _ = manifold("hypersphere", args.points, seed=0, d=args.d, n=args.n)
        data, small = work / "x.npy", work / "small.npy"
        np.save(data, np.asarray(x, dtype=np.float32))
        np.save(small, np.asarray(x, dtype=np.float32)[: args.chunk])
        common = ["--device", args.device, "--no-progress"]
        train_args = ["train", "--data", str(data), "--steps", str(args.train_steps), "--batch-size",
                      str(args.batch_size), "--width", str(args.width), "--depth", str(args.depth),
                      "--checkpoint-every", str(args.train_steps), *common]
        # the repeats go round the process counts (1, 2, 1, 2, ...) so that every count sees the
        # same spells of load from other users of a shared machine; each figure is the best of R
        counts = sorted(args.nproc)
        best = {N: {"loop": float("inf"), "wall": float("inf"), "small": float("inf"), "full": float("inf"),
                    "load": [], "all_full": [], "all_loop": []} for N in counts}
        model = None
        for r in range(args.repeats):
            for N in counts:
                b = best[N]
                b["load"].append(_load())
                run_dir = work / f"train-{N}-{r}"
                wall = _launch(N, [*train_args, "--out", str(run_dir)], args.threads)
                loop = json.loads((run_dir / "config.json").read_text())["history"]["seconds"]
                b["loop"], b["wall"] = min(b["loop"], loop), min(b["wall"], wall)
                b["all_loop"].append(loop)
                if model is None:
                    model = run_dir  # the estimation benchmark uses the first trained model
                else:
                    shutil.rmtree(run_dir)
                est = ["estimate", "--model", str(model), "--method", args.method, "--sigma",
                       str(args.sigma), "--n-noise", str(args.n_noise), "--chunk", str(args.chunk), *common]
                b["small"] = min(b["small"], _launch(N, [*est, "--data", str(small),
                                                         "--out", str(work / f"s{N}{r}.csv")], args.threads))
                full = _launch(N, [*est, "--data", str(data), "--out", str(work / f"f{N}{r}.csv")],
                               args.threads)
                b["full"] = min(b["full"], full)
                b["all_full"].append(full)
                b["load"].append(_load())
                print(f"repeat {r} N={N}: train loop {loop:.1f} s, estimate {b['full']:.1f} s, "
                      f"load {b['load'][-1]}", file=sys.stderr)
        for N in counts:
            b = best[N]
            t_full, t_small = b["full"], b["small"]
            rows.append({"nproc": N, "train_loop_s": b["loop"], "train_wall_s": b["wall"],
                         "train_steps_per_s": args.train_steps / b["loop"],
                         "est_wall_s": t_full, "est_startup_s": t_small,
                         # net of start-up; NaN when start-up jitter swamps the work (use more --points)
                         "est_points_per_s": ((args.points - args.chunk) / (t_full - t_small)
                                              if t_full > t_small else float("nan")),
                         "est_wall_points_per_s": args.points / t_full,
                         "load_avg_1min": [ld[0] for ld in b["load"]],
                         "train_loop_all_s": b["all_loop"], "est_wall_all_s": b["all_full"]})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rows[0]
    for r in rows:
        for key in ("train_steps_per_s", "est_points_per_s", "est_wall_points_per_s"):
            r[key.replace("_per_s", "_eff")] = r[key] / (r["nproc"] * base[key])

    head = ("| N | train steps/s | train eff. | train wall s | est. points/s (net) | est. eff. "
            "| est. wall s | est. startup s | est. points/s (wall) | wall eff. | load avg (1 min) |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(f"| {r['nproc']} | {r['train_steps_per_s']:.1f} | {r['train_steps_eff']:.2f} "
                     f"| {r['train_wall_s']:.1f} | {r['est_points_per_s']:.0f} | {r['est_points_eff']:.2f} "
                     f"| {r['est_wall_s']:.1f} | {r['est_startup_s']:.1f} | {r['est_wall_points_per_s']:.0f} "
                     f"| {r['est_wall_points_eff']:.2f} "
                     f"| {min(r['load_avg_1min']):.1f}-{max(r['load_avg_1min']):.1f} |")
    table = "\n".join(lines)
    print(table)
    machine = {"device": args.device, "cpu_count": os.cpu_count(), "torch": torch.__version__,
               "python": platform.python_version(), "load_avg_before": load_before, "load_avg_after": _load(),
               "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None}
    print(f"load average (1, 5, 15 min) before {machine['load_avg_before']}, "
          f"after {machine['load_avg_after']} on {machine['cpu_count']} cores")
    atomic_write_json(out, {"settings": vars(args), "machine": machine, "rows": rows})
    atomic_write_text(out.with_suffix(".md"), f"# Distributed scaling ({args.device})\n\n{table}\n\n"
                      f"Settings: {json.dumps(vars(args))}\n\nMachine: {json.dumps(machine)}\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
