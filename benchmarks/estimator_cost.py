"""Cost of DSM vs FLIPD (exact and Hutchinson) on a randomly initialised MLP denoiser.

For each ambient dimension n and method, a fresh subprocess builds the denoiser and the points,
then runs ``scorelid.estimate``: the first (cold) run gives the peak memory, the fastest of three
warm runs the time (the machine is shared; the minimum is the least disturbed figure).  Reported
per (n, method): time per point, peak memory, and both as ratios to DSM at the same n.
Points: ``--points`` (default 64), 16 at n > 1024 (exact FLIPD there costs n JVPs per point).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` minus the allocation before the run; on
CPU the peak resident set size during the cold run (sampled every 2 ms by a thread, psutil) minus
the RSS when it began (a warm run would reuse memory the allocator kept and show almost nothing).
Weights are random: memory and speed do not depend on trained values.

    python benchmarks/estimator_cost.py                       # n in {64, 256, 1024, 4096}, CPU
    python benchmarks/estimator_cost.py --device cuda --points 256
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

METHODS = {
    "dsm": {"method": "dsm", "n_noise": 8},
    "flipd_exact": {"method": "flipd", "trace": "exact"},
    "flipd_hutch": {"method": "flipd", "trace": "hutchinson", "n_probes": 8},
}


def measure(n: int, name: str, points: int, device: str, width: int, seed: int, repeats: int = 3) -> dict:
    """One (n, method) phase in this process; returns seconds and peak bytes."""
    import psutil
    import torch

    import scorelid
    from scorelid.nn import EDMDenoiser

    torch.manual_seed(seed)
    D = EDMDenoiser("mlp", n, net={"width": width, "depth": 4}).to(device).eval()
    x = torch.randn(points, n, generator=torch.Generator().manual_seed(seed)).to(device)
    opts = dict(METHODS[name])
    method = opts.pop("method")
    run = lambda: scorelid.estimate(D, x, method, 0.05, **opts)  # noqa: E731
    proc = psutil.Process()
    peak = [0]
    stop = threading.Event()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = proc.memory_info().rss
        peak[0] = base

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.002)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
    run()  # cold run: memory
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak_bytes = torch.cuda.max_memory_allocated() - base
    else:
        stop.set()
        thread.join()
        peak_bytes = max(peak[0], proc.memory_info().rss) - base
    seconds = float("inf")
    for _ in range(repeats):  # warm runs: the fastest is the least disturbed by other load
        t0 = time.perf_counter()
        run()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = min(seconds, time.perf_counter() - t0)
    return {"n": n, "method": name, "points": points, "seconds": seconds,
            "sec_per_point": seconds / points, "peak_mem_bytes": int(peak_bytes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", default="64,256,1024,4096")
    ap.add_argument("--points", type=int, default=64)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/estimator_cost.json")
    ap.add_argument("--one", nargs=2, metavar=("N", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:  # child process: one phase, JSON on stdout
        print(json.dumps(measure(int(args.one[0]), args.one[1], args.points, args.device, args.width,
                                 args.seed)))
        return
    from scorelid.runtime.io import atomic_write_json

    rows = []
    for n in [int(v) for v in args.dims.split(",")]:
        for name in METHODS:
            points = args.points if n <= 1024 else min(args.points, 16)
            cmd = [sys.executable, __file__, "--one", str(n), name, "--points", str(points),
                   "--device", args.device, "--width", str(args.width), "--seed", str(args.seed)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  measured n={n} {name}", file=sys.stderr)
    for r in rows:
        ref = next(d for d in rows if d["n"] == r["n"] and d["method"] == "dsm")
        r["time_ratio_to_dsm"] = r["sec_per_point"] / ref["sec_per_point"]
        r["mem_ratio_to_dsm"] = r["peak_mem_bytes"] / max(1, ref["peak_mem_bytes"])
    print(f"\n{'n':>6} {'method':<12} {'ms/point':>10} {'peak MiB':>9} {'time/DSM':>9} {'mem/DSM':>8}")
    for r in rows:
        mib = r["peak_mem_bytes"] / 2**20
        print(f"{r['n']:>6} {r['method']:<12} {1e3 * r['sec_per_point']:>10.2f} {mib:>9.1f} "
              f"{r['time_ratio_to_dsm']:>9.1f} {r['mem_ratio_to_dsm']:>8.2f}")
    meta = {"device": args.device, "points": args.points, "width": args.width, "sigma": 0.05,
            "dsm_n_noise": 8, "hutchinson_probes": 8}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, {"meta": meta, "rows": rows})
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
