"""One estimate in a fresh Python process, for a clean peak-memory figure.

In one long-lived process the allocator keeps memory freed by an earlier phase and hands it to
the next one without raising the resident set size, so the phase that runs *first* pays for
allocations that later phases get for free (on the CPU, ``scorelid.bench.meter`` then reports a
lower bound).  The scaling study compares DSM with FLIPD by peak memory, so on the CPU each of its
estimates runs here, in a fresh interpreter: load the saved denoiser and the points, warm up on a
few points (imports, first-call allocations: not the phase's own need), then run
``scorelid.estimate`` inside ``measure`` ``repeats`` times: the peak memory is the first run's
(later runs reuse what the allocator kept), the time the fastest run's (on a shared machine the
least disturbed one); every run gives the same LIDs (seeded noise).

    python -m scorelid.bench.isolated JOB.json

``JOB.json``: ``{"model": DIR, "points": X.npy, "method": ..., "sigma": ..., "options": {...},
"seed": ..., "device": ..., "num_threads": int | null, "repeats": int, "out": PREFIX}``; writes ``PREFIX.npy``
(the ``[N]`` LIDs, float64) and ``PREFIX.json`` (``seconds``, ``peak_mem_bytes``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scorelid.bench.meter import Measurement

__all__ = ["measure_isolated"]

_WARMUP_POINTS = 4


def measure_isolated(model_dir: str | Path, x: torch.Tensor, method: str, sigma: float,
                     options: dict[str, Any], *, seed: int = 0, device: str | torch.device = "cpu",
                     num_threads: int | None = None, repeats: int = 1) -> Measurement:
    """``estimate(load_denoiser(model_dir), x, method, sigma, seed=seed, **options)`` in a fresh
    process; returns ``Measurement(lid [N] float64, seconds, peak_mem_bytes)`` (seconds: the fastest
    of ``repeats`` runs; peak memory: the first run's).

    Raises ``RuntimeError`` with the child's last error line if it fails.
    """
    with tempfile.TemporaryDirectory(prefix="scorelid-iso-") as tmp:
        t = Path(tmp)
        np.save(t / "x.npy", x.detach().cpu().numpy())
        job = {"model": str(model_dir), "points": str(t / "x.npy"), "method": method, "sigma": float(sigma),
               "options": options, "seed": int(seed), "device": str(device), "num_threads": num_threads,
               "repeats": int(repeats), "out": str(t / "res")}
        (t / "job.json").write_text(json.dumps(job))
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run([sys.executable, "-m", "scorelid.bench.isolated", str(t / "job.json")],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            lines = [s for s in proc.stderr.strip().splitlines() if s.strip()]
            why = lines[-1] if lines else f"exit status {proc.returncode}"
            raise RuntimeError(f"isolated {method} estimate failed: {why}")
        res = json.loads((t / "res.json").read_text())
        lid = torch.from_numpy(np.load(t / "res.npy"))
    return Measurement(lid, float(res["seconds"]), res["peak_mem_bytes"])


def _main(job_path: str) -> None:
    from scorelid.bench.meter import measure
    from scorelid.estimators import estimate
    from scorelid.training.checkpoint import load_denoiser

    job = json.loads(Path(job_path).read_text())
    if job.get("num_threads"):
        torch.set_num_threads(int(job["num_threads"]))
    device = torch.device(job["device"])
    D = load_denoiser(job["model"], device=device)
    x = torch.from_numpy(np.load(job["points"])).to(device)
    opts = job["options"]
    estimate(D, x[:_WARMUP_POINTS], job["method"], job["sigma"], seed=job["seed"], **opts)  # warm-up
    runs = [measure(lambda: estimate(D, x, job["method"], job["sigma"], seed=job["seed"], **opts), device)
            for _ in range(max(1, int(job.get("repeats", 1))))]
    np.save(job["out"] + ".npy", runs[0].value.double().cpu().numpy())
    res = {"seconds": min(m.seconds for m in runs), "peak_mem_bytes": runs[0].peak_mem_bytes,
           "all_seconds": [m.seconds for m in runs]}
    Path(job["out"] + ".json").write_text(json.dumps(res))


if __name__ == "__main__":
    _main(sys.argv[1])
