"""Peak memory of ``scorelid estimate`` against the number of points: does it stream?

Usage::

    python benchmarks/streaming_memory.py --label after              # 100k and 800k points, npy + parquet
    python benchmarks/streaming_memory.py --label before --points 100000 800000 --formats npy parquet

Trains a tiny MLP denoiser for a few steps (the model's size is not the point), writes ``N`` points
of an 8-dimensional subspace of ``R^64`` (float32) as ``.npy`` and as ``.parquet`` (64 float32
columns written by pandas, in row groups of 65536 rows: format ``parquet``; or with pandas' default
row groups, up to 1Mi rows, i.e. one row group here: format ``parquet-default``), and runs, as a
user would, in a fresh process each time::

    python -m scorelid estimate --model M --data X.npy --method dsm --sigma 0.05 --n-noise 1 \\
        --chunk 4096 --out lid.parquet --no-progress

Peak resident memory is the child's maximum resident set size by ``/usr/bin/time -f %M`` (not
``os.wait4``: see ``_run``), which counts every page of a memory-mapped file that was touched.
The check of issue 16: ``peak(800k) <= 1.25 * peak(100k) + 50 MB`` for each input format, with
the output rows in input order (the ``index`` column is checked to be ``0..N-1``).  Streaming
reads a parquet file a row group at a time at best (pyarrow holds a dictionary-encoded column chunk
whole), so ``parquet-default`` shows what one 800k-row group costs.  ``PYTHONPATH=<another
checkout>/src`` measures another version of scorelid.  Prints a table and merges the records under
``--label`` into ``--out`` (JSON), so that a "before" and an "after" measurement sit side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "streaming_memory.json"


def _points(num: int, n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((n, d)))
    out = np.empty((num, n), dtype=np.float32)
    for s in range(0, num, 100_000):  # in blocks: the benchmark itself stays small
        e = min(s + 100_000, num)
        out[s:e] = (rng.standard_normal((e - s, d)) @ basis.T).astype(np.float32)
    return out


def _write(x: np.ndarray, path: Path) -> None:
    if path.suffix == ".npy":
        np.save(path, x)
        return
    import pandas as pd

    groups = {} if path.stem.endswith("-default") else {"row_group_size": 65536}
    pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])]).to_parquet(path, index=False, **groups)


def _run(cmd: list[str]) -> tuple[int, float, int, str]:
    """(exit code, seconds, peak RSS in bytes, stderr tail) of one child process.

    Measured by ``/usr/bin/time -f %M``: the ``ru_maxrss`` this process would get from ``os.wait4``
    starts at *this* process's resident size (Linux keeps the high-water mark of the memory image
    an ``exec`` replaces, and ``subprocess`` forks this process), which would add the benchmark's
    own memory to every figure.
    """
    t0 = time.perf_counter()
    with tempfile.NamedTemporaryFile(suffix=".rss") as rss, tempfile.TemporaryFile() as err:
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd], stdout=subprocess.DEVNULL,
                              stderr=err, env=dict(os.environ, OMP_NUM_THREADS="1"))
        seconds = time.perf_counter() - t0
        err.seek(0)
        tail = err.read().decode(errors="replace")[-2000:]
        peak_kib = int(Path(rss.name).read_text().split()[-1])
    return proc.returncode, seconds, peak_kib * 1024, tail


def _check_order(out: Path, num: int) -> bool:
    import pyarrow.parquet as pq

    index = pq.read_table(out, columns=["index"])["index"].to_numpy()
    return len(index) == num and bool((index == np.arange(num)).all())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", required=True, help="name of this measurement (e.g. before, after)")
    ap.add_argument("--points", type=int, nargs="+", default=[100_000, 800_000])
    ap.add_argument("--formats", nargs="+", default=["npy", "parquet", "parquet-default"],
                    choices=["npy", "parquet", "parquet-default"])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--work", default=None, help="scratch directory (default: a temporary one)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)

    import torch

    from scorelid import train_denoiser

    work = Path(args.work or tempfile.mkdtemp(prefix="scorelid-stream-"))
    work.mkdir(parents=True, exist_ok=True)
    model = work / "model"
    if not (model / "model.safetensors").exists():
        torch.set_num_threads(1)
        train_denoiser(torch.from_numpy(_points(2000, args.n, 8, 0)), steps=20, width=32, depth=1,
                       batch_size=64, progress=False, out_dir=model)
    records = []
    for num in args.points:
        x = None
        for fmt in args.formats:  # every file first: nothing of it in this process while measuring
            data = work / (f"x{num}-default.parquet" if fmt == "parquet-default" else f"x{num}.{fmt}")
            if not data.exists():
                x = _points(num, args.n, 8, 1) if x is None else x
                _write(x, data)
        del x
        for fmt in args.formats:
            data = work / (f"x{num}-default.parquet" if fmt == "parquet-default" else f"x{num}.{fmt}")
            out = work / f"lid{num}-{fmt}.parquet"
            out.unlink(missing_ok=True)
            cmd = [sys.executable, "-m", "scorelid", "estimate", "--model", str(model), "--data", str(data),
                   "--method", "dsm", "--sigma", "0.05", "--n-noise", "1", "--chunk", str(args.chunk),
                   "--out", str(out), "--no-progress"]
            code, seconds, rss, tail = _run(cmd)
            if code != 0:
                print(tail, file=sys.stderr)
                raise SystemExit(f"scorelid estimate failed ({code}) on {data}")
            ordered = _check_order(out, num)
            records.append({"points": num, "n": args.n, "format": fmt, "peak_rss_mb": round(rss / 1e6, 1),
                            "seconds": round(seconds, 1), "rows_in_input_order": ordered,
                            "data_mb": round(data.stat().st_size / 1e6, 1)})
            print(f"{args.label:>8} {fmt:>8} {num:>8} points: peak RSS {rss / 1e6:7.1f} MB, "
                  f"{seconds:6.1f} s, rows in order: {ordered}", flush=True)
    checks = {}
    for fmt in args.formats:
        rss = {r["points"]: r["peak_rss_mb"] for r in records if r["format"] == fmt}
        if len(rss) >= 2:
            lo, hi = min(rss), max(rss)
            limit = 1.25 * rss[lo] + 50
            checks[fmt] = {"small": lo, "large": hi, "limit_mb": round(limit, 1), "ok": rss[hi] <= limit}
    print("\n| label | format | points | peak RSS (MB) | seconds |\n|---|---|---|---|---|")
    for r in records:
        print(f"| {args.label} | {r['format']} | {r['points']} | {r['peak_rss_mb']} | {r['seconds']} |")
    for fmt, c in checks.items():
        print(f"{fmt}: peak({c['large']}) <= 1.25 * peak({c['small']}) + 50 MB = {c['limit_mb']} MB: "
              f"{c['ok']}")

    path = Path(args.out)
    results = json.loads(path.read_text()) if path.exists() else {}
    results[args.label] = {"records": records, "checks": checks, "chunk": args.chunk,
                           "python": platform.python_version(), "torch": torch.__version__,
                           "date": time.strftime("%Y-%m-%d")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
