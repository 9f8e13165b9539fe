"""DSM on ONNX models: a pretrained terrain model nobody here trained, and ONNX vs PyTorch for ours.

Part 1 (needs ``pip install adaptive-terrain-diffusion``; skipped cleanly without it).  The package
bundles an EDM-style *consistency* UNet as ONNX (``noisy [B,1,128,128]``, ``sigma [B]``,
``difficulty [B]`` in [0, 1] -> ``denoised``; heightfields in its model space [-1, 1]).  We load it
with ``scorelid.load_denoiser(FILE, extra={"difficulty": label})`` and run DSM (forward passes only)
on terrains the model generated itself (its one-step sampler from sigma=80, one difficulty label
each) and, as a contrast, on off-manifold points (white noise of the same per-pixel scale),
at a few noise levels.  A consistency model returns the endpoint of the probability-flow ODE, not
the posterior mean, so the reading is not the paper's estimator: see docs/onnx.md.

Part 2: ONNX Runtime vs PyTorch for the same scorelid model (an ``EDMDenoiser`` MLP with random
weights on R^64, exported with ``scorelid.adapters.onnx.export_onnx``): DSM over ``--points`` points,
points/s of each, and the largest per-point difference.

    python benchmarks/onnx_terrain.py                 # ~2 min on 2 shared cores
    python benchmarks/onnx_terrain.py --skip-terrain  # part 2 only

Prints tables; writes ``benchmarks/results/onnx_terrain.json``.
"""

from __future__ import annotations

import argparse
import importlib.resources
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def terrain_model_path() -> Path | None:
    """The bundled ONNX file of adaptive-terrain-diffusion, or ``None`` when it is not installed."""
    if importlib.util.find_spec("terrain_diffusion") is None:
        return None

    res = importlib.resources.files("terrain_diffusion").joinpath(
        "weights/terrain_consistency_unet_difficulty100.onnx")
    return Path(str(res)) if res.is_file() else None


def terrain_dsm(path: Path, n_points: int, sigmas: list[float], n_noise: int, threads: int,
                seed: int) -> dict:
    """DSM of the terrain model on its own samples and on white noise, per sigma."""
    import numpy as np
    import torch
    from terrain_diffusion.generator import TerrainGenerator

    import scorelid

    gen = TerrainGenerator(path, device="cpu")
    rng = np.random.default_rng(seed)
    difficulty = np.linspace(10, 90, n_points).round().astype(int)  # one label per terrain
    labels, _ = gen._difficulty_labels(difficulty, n_points, rng)
    t0 = time.perf_counter()
    x = torch.from_numpy(gen._sample_native(labels, generator=rng, batch_size=n_points))  # [N,1,128,128]
    gen_s = time.perf_counter() - t0
    noise = torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32)) * x.std()
    rows = []
    for i, label in enumerate(labels):  # the label is a fixed extra input: one session per label
        D = scorelid.load_denoiser(path, extra={"difficulty": float(label)}, threads=threads)
        for sigma in sigmas:
            for kind, pts in (("generated", x[i : i + 1]), ("white noise", noise[i : i + 1])):
                if kind == "white noise" and sigma != sigmas[len(sigmas) // 2]:
                    continue  # the contrast at one level only (time)
                t0 = time.perf_counter()
                lid = float(scorelid.estimate(D, pts, "dsm", sigma, n_noise=n_noise, seed=seed)[0])
                rows.append({"point": i, "difficulty": int(difficulty[i]), "kind": kind, "sigma": sigma,
                             "dsm": lid, "seconds": time.perf_counter() - t0})
                print(f"  terrain {i} ({kind}, difficulty {difficulty[i]}) sigma={sigma:g}: DSM {lid:.1f}",
                      file=sys.stderr, flush=True)
    return {"model": str(path.name), "metadata": D.metadata, "ambient_dim": int(x[0].numel()),
            "n_noise": n_noise, "generation_s": gen_s, "rows": rows,
            "sample_std": float(x.std()), "providers": list(D.providers)}


def throughput(points: int, n: int, n_noise: int, threads: int) -> dict:
    """DSM points/s of one EDMDenoiser through PyTorch and through ONNX Runtime, and their difference."""
    import torch

    import scorelid
    from scorelid.adapters.onnx import OnnxDenoiser, export_onnx
    from scorelid.nn.precond import build_denoiser

    torch.manual_seed(0)
    model = build_denoiser({"arch": "mlp", "n": n, "sigma_data": 0.5}).eval().requires_grad_(False)
    x = torch.randn(points, n)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "m.onnx", (n,), config=model.config)
        D = OnnxDenoiser(path, threads=threads)
        out = {}
        for name, den in (("pytorch", model), ("onnxruntime", D)):
            scorelid.estimate(den, x[:64], "dsm", 0.1, n_noise=n_noise)  # warm-up
            best = float("inf")
            for _ in range(2):
                t0 = time.perf_counter()
                lid = scorelid.estimate(den, x, "dsm", 0.1, n_noise=n_noise)
                best = min(best, time.perf_counter() - t0)
            out[name] = {"seconds": best, "points_per_s": points / best, "lid": lid}
    diff = float((out["pytorch"]["lid"] - out["onnxruntime"]["lid"]).abs().max())
    mean = float(out["pytorch"]["lid"].mean())
    for v in out.values():
        v.pop("lid")
    return {"n": n, "points": points, "n_noise": n_noise, "torch_threads": torch.get_num_threads(),
            "ort_threads": threads, "params": sum(p.numel() for p in model.parameters()),
            "max_abs_diff": diff, "mean_lid": mean, **out}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--terrains", type=int, default=4, help="generated terrains (part 1)")
    p.add_argument("--sigmas", default="0.05,0.2,1.0", help="noise levels (model space, part 1)")
    p.add_argument("--n-noise", type=int, default=2, help="DSM draws per terrain (part 1)")
    p.add_argument("--points", type=int, default=20000, help="points (part 2)")
    p.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-terrain", action="store_true")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "onnx_terrain.json"))
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    result: dict = {"benchmark": "onnx_terrain", "load_avg_start": os.getloadavg()[0]}
    path = None if args.skip_terrain else terrain_model_path()
    if path is None:
        why = "--skip-terrain" if args.skip_terrain else "adaptive-terrain-diffusion is not installed"
        print(f"part 1 skipped: {why}", file=sys.stderr)
        result["terrain"] = {"skipped": why}
    else:
        sigmas = [float(s) for s in args.sigmas.split(",")]
        result["terrain"] = terrain_dsm(path, args.terrains, sigmas, args.n_noise, args.threads, args.seed)
        print(terrain_table(result["terrain"]))
    result["throughput"] = throughput(args.points, 64, 8, args.threads)
    print(throughput_table(result["throughput"]))
    result["load_avg_end"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"written to {args.out}")
    return 0


def terrain_table(t: dict) -> str:
    lines = [f"DSM of {t['model']} (ambient dimension {t['ambient_dim']}, K={t['n_noise']})",
             "| kind | sigma | mean DSM | min | max | terrains |", "|---|---|---|---|---|---|"]
    keys = sorted({(r["kind"], r["sigma"]) for r in t["rows"]})
    for kind, sigma in keys:
        v = [r["dsm"] for r in t["rows"] if (r["kind"], r["sigma"]) == (kind, sigma)]
        mean = sum(v) / len(v)
        lines.append(f"| {kind} | {sigma:g} | {mean:.1f} | {min(v):.1f} | {max(v):.1f} | {len(v)} |")
    return "\n".join(lines)


def throughput_table(t: dict) -> str:
    return "\n".join([
        f"DSM throughput, EDMDenoiser MLP ({t['params']} params) on R^{t['n']}, {t['points']} points, "
        f"K={t['n_noise']}",
        "| runtime | threads | points/s | seconds |", "|---|---|---|---|",
        f"| PyTorch | {t['torch_threads']} | {t['pytorch']['points_per_s']:.0f} | "
        f"{t['pytorch']['seconds']:.2f} |",
        f"| ONNX Runtime | {t['ort_threads']} | {t['onnxruntime']['points_per_s']:.0f} | "
        f"{t['onnxruntime']['seconds']:.2f} |",
        f"max per-point |LID difference| {t['max_abs_diff']:.2g} (mean LID {t['mean_lid']:.2f})"])


if __name__ == "__main__":
    sys.exit(main())
