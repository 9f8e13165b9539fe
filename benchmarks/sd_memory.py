"""Peak memory and throughput of DSM vs FLIPD on an SD3-style flow-matching transformer.

Memory and speed do not depend on trained weights, so the transformer has random weights (seed 0)
and random latents; the empty-prompt conditioning is a random tensor of the real shape.

Phases, each measured in a fresh subprocess (peak memory only ever rises within a process):

* ``forward``: one bare denoiser call on ``--batch-size`` rows (the reference for throughput);
* ``dsm``: ``scorelid.estimate(method="dsm", n_noise=K)`` with ``--batch-size`` rows per call;
* ``flipd-hutchinson``: FLIPD with ``--n-probes`` Rademacher probes (all probes of a point in one
  vmapped JVP, or one backward each in reverse mode), same rows per call;
* ``flipd-exact``: FLIPD with the exact trace (``n`` JVPs per image; only the ``small`` config).

Memory: CUDA ``max_memory_allocated``; CPU ``ru_maxrss``.  ``peak_mib`` is the process peak,
``work_mib`` the peak minus the memory after the model and inputs were built (so ``work_mib`` is
what the method itself needs on top of the weights).  Throughput: images/s over ``--images``
images after one warm-up call, best of ``--repeats`` (the machine may be shared: the load average
at the end of each phase is recorded), and rows/s (denoiser rows = noise samples for DSM) for
``forward`` and ``dsm``.

Usage::

    python benchmarks/sd_memory.py --config small --device cpu --out benchmarks/results/sd_memory_cpu.json
    python benchmarks/sd_memory.py --config sd35-medium --device cuda --precisions fp32,fp16,bf16,bf16+int8 \
        --out benchmarks/results/sd_memory_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {
    # Stable Diffusion 3.5 medium's transformer (2.5B parameters), 1024x1024 images -> 128x128 latents
    "sd35-medium": {
        "transformer": dict(
            sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=24,
            attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
            caption_projection_dim=1536, pooled_projection_dim=2048, pos_embed_max_size=384,
            qk_norm="rms_norm", dual_attention_layers=tuple(range(13)),
        ),
        "latent": (16, 128, 128), "text_tokens": 77 + 256,
    },
    # a small SD3.5-medium-shaped model that runs on 2 CPU cores
    "small": {
        "transformer": dict(
            sample_size=16, patch_size=2, in_channels=16, out_channels=16, num_layers=4,
            attention_head_dim=32, num_attention_heads=4, joint_attention_dim=256,
            caption_projection_dim=128, pooled_projection_dim=128, pos_embed_max_size=16,
            qk_norm="rms_norm", dual_attention_layers=(0, 1),
        ),
        "latent": (16, 16, 16), "text_tokens": 77 + 77,
    },
}
PHASES = ("forward", "dsm", "flipd-hutchinson", "flipd-exact")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> dict:
    """Build the model, run one phase, return its measurements."""
    import torch

    import scorelid
    from scorelid.adapters import DTYPES, FlowDenoiser
    from scorelid.adapters.quantize import quantize_weights

    torch.set_num_threads(args.threads)
    from diffusers import SD3Transformer2DModel

    cfg = CONFIGS[args.config]
    dtype_name, _, quant = args.precision.partition("+")
    quant = quant or "none"
    dev = torch.device(args.device)
    torch.manual_seed(0)
    net = SD3Transformer2DModel(**cfg["transformer"])
    net = net.to(device=dev, dtype=DTYPES[dtype_name]).eval().requires_grad_(False)
    quantize_weights(net, quant)
    g = torch.Generator().manual_seed(1)
    cond = {
        "encoder_hidden_states": torch.randn(1, cfg["text_tokens"], cfg["transformer"]["joint_attention_dim"],
                                             generator=g).to(dev),
        "pooled_projections": torch.randn(
            1, cfg["transformer"]["pooled_projection_dim"], generator=g
        ).to(dev),
    }
    D = FlowDenoiser(net, cond, dtype=DTYPES[dtype_name])
    D.exit_inference_mode = quant != "none"
    x = torch.randn(args.images, *cfg["latent"], generator=g).to(dev)
    ad = "reverse" if quant != "none" else args.ad
    sigma = args.sigma

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def run(n: int):
        xs = x[:n]
        if args.phase == "forward":
            with torch.inference_mode():
                y = xs[:1].expand(args.batch_size, *xs.shape[1:]).contiguous()
                for _ in range(n):
                    D(y, sigma)
            return
        if args.phase == "dsm":
            scorelid.estimate(D, xs, "dsm", sigma, n_noise=args.n_noise, batch_size=args.batch_size)
        elif args.phase == "flipd-hutchinson":
            scorelid.estimate(D, xs, "flipd", sigma, batch_size=args.batch_size, trace="hutchinson",
                              n_probes=args.n_probes, ad=ad)
        else:
            scorelid.estimate(D, xs, "flipd", sigma, batch_size=args.batch_size, trace="exact", ad=ad)

    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev) / 2**20
    else:
        base = _rss_mib()
    n_warm = 1
    run(n_warm)
    sync()
    times = []
    for _ in range(args.repeats):  # best of R: the machine is shared, the minimum is the least disturbed
        t0 = time.perf_counter()
        run(args.images)
        sync()
        times.append(time.perf_counter() - t0)
    sec = min(times)
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else _rss_mib()
    params = sum(p.numel() for p in net.parameters())
    if args.phase == "forward":
        rows = args.images * args.batch_size
        imgs = float("nan")
    else:
        imgs = args.images / sec
        rows = args.images * (args.n_noise if args.phase == "dsm" else 1)
    return {
        "config": args.config, "device": args.device, "precision": args.precision, "phase": args.phase,
        "batch_size": args.batch_size, "n_noise": args.n_noise, "n_probes": args.n_probes, "ad": ad,
        "images": args.images, "seconds": sec, "seconds_all": times, "images_per_s": imgs,
        "rows_per_s": rows / sec if args.phase in ("forward", "dsm") else float("nan"),
        "peak_mib": peak, "base_mib": base, "work_mib": peak - base, "params": params,
        "load_avg": [round(v, 2) for v in os.getloadavg()],  # the machine may be shared: say how busy
    }


def table(rows: list[dict]) -> str:
    head = "| precision | phase | images/s | rows/s | peak MiB | work MiB | DSM/this peak | DSM/this work |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    by = {(r["precision"], r["phase"]): r for r in rows}
    for r in rows:
        dsm = by.get((r["precision"], "dsm"))
        ratio = f"{dsm['peak_mib'] / r['peak_mib']:.2f}" if dsm and "flipd" in r["phase"] else ""
        wratio = f"{dsm['work_mib'] / r['work_mib']:.2f}" if dsm and "flipd" in r["phase"] else ""
        lines.append(
            f"| {r['precision']} | {r['phase']} | {r['images_per_s']:.3g} | {r['rows_per_s']:.3g} | "
            f"{r['peak_mib']:.0f} | {r['work_mib']:.0f} | {ratio} | {wratio} |"
        )
    lines.append("")
    lines.append("| precision | DSM rows/s | forward rows/s | DSM / forward |")
    lines.append("|---|---|---|---|")
    for prec in dict.fromkeys(r["precision"] for r in rows):
        d, f = by.get((prec, "dsm")), by.get((prec, "forward"))
        if d and f:
            lines.append(f"| {prec} | {d['rows_per_s']:.3g} | {f['rows_per_s']:.3g} | "
                         f"{d['rows_per_s'] / f['rows_per_s']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="small")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precisions", default="fp32,bf16,fp32+int8")
    p.add_argument("--phases", default="forward,dsm,flipd-hutchinson")
    p.add_argument("--batch-size", type=int, default=8, help="denoiser rows per call")
    p.add_argument("--images", type=int, default=4, help="images timed per phase (after 1 warm-up)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the fastest is reported")
    p.add_argument("--n-noise", type=int, default=8)
    p.add_argument("--n-probes", type=int, default=8)
    p.add_argument("--ad", default="auto", choices=("auto", "forward", "reverse"))
    p.add_argument("--sigma", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="results JSON (a .md table is written beside it)")
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--precision", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.phase:
        print("RESULT " + json.dumps(child(args)))
        return 0
    rows = []
    for prec in args.precisions.split(","):
        for phase in args.phases.split(","):
            if phase not in PHASES:
                raise SystemExit(f"unknown phase {phase!r}; choose from {PHASES}")
            cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]),
                   "--phase", phase, "--precision", prec]
            env = {**os.environ, "PYTHONWARNINGS": "ignore"}
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                print(f"{prec} {phase}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            r = json.loads(line[0][7:])
            rows.append(r)
            print(f"{prec:10s} {phase:17s} {r['images_per_s']:.3g} img/s  {r['rows_per_s']:.3g} rows/s  "
                  f"peak {r['peak_mib']:.0f} MiB  work {r['work_mib']:.0f} MiB", flush=True)
    md = table(rows)
    loads = [r["load_avg"][0] for r in rows if "load_avg" in r]
    if loads:
        md += f"\n\n1-minute load average during the phases: {min(loads):.1f}-{max(loads):.1f} " \
              f"on {os.cpu_count()} CPU cores"
    print(md)
    if args.out:
        out = Path(args.out)
        from scorelid.runtime.io import atomic_write_json, atomic_write_text

        settings = {k: v for k, v in vars(args).items() if k not in ("phase", "precision")}
        atomic_write_json(out, {"args": settings, "rows": rows})
        atomic_write_text(out.with_suffix(".md"), md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
