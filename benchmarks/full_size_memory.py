"""Peak memory and time of DSM vs FLIPD at full model size on the CPU (issue 16, item 4).

The paper's case for DSM: ``K`` forward passes under ``torch.inference_mode`` need the memory of one
forward pass, while FLIPD's Jacobian trace needs an autograd graph (reverse mode) or tangents beside
every activation (forward mode).  The paper reports DSM at about 60% of FLIPD's peak on SD3.5.
This benchmark measures our ratio with the *real* network configurations and random weights
(memory and time do not depend on trained values):

* ``sd35-medium``: ``SD3Transformer2DModel`` with the configuration of
  ``stabilityai/stable-diffusion-3.5-medium`` (``transformer/config.json``; 2.5B parameters), through
  ``scorelid.adapters.FlowDenoiser``;
* ``sd2``: ``UNet2DConditionModel`` with the configuration of ``stabilityai/stable-diffusion-2``
  (``unet/config.json``; 865M parameters; v-prediction, scaled-linear DDPM schedule), through
  ``scorelid.adapters.VPDenoiser``.

One image, at a reduced resolution (``--latent``: latent side, default 16 for SD3.5 and 32 for SD2,
i.e. 128 and 256 pixel images) so that the 2-core CPU finishes; the text conditioning is a random
tensor of the real width and ``--text-tokens`` tokens (SD3.5: 77 instead of CLIP's 77 plus T5's 256,
for time; SD2: its 77).  Phases, each in a fresh subprocess (peak RSS only ever rises within a
process):

* ``dsm``: ``scorelid.estimate(method="dsm", n_noise=K, batch_size=1)``: K forwards, one row each;
* ``flipd``: ``scorelid.estimate(method="flipd", trace="hutchinson", n_probes=1, ad=AD)``: one
  Jacobian-vector (forward mode) or vector-Jacobian (reverse mode) product.

Memory: ``scorelid.bench.meter.measure`` (RSS sampled every 5 ms, completed by ``ru_maxrss``) of the
phase, minus the RSS after the model and inputs were built and glibc returned the build's freed
pages (``malloc_trim``): what the method needs on top of the weights.
The process's whole peak is recorded too.  Time: the phase's wall seconds (first call,
no warm-up; the machine is shared, so the load average is recorded).

    python benchmarks/full_size_memory.py                       # both models, ~10 min on 2 cores
    python benchmarks/full_size_memory.py --models sd2 --latent 32 --dtype float32
    python benchmarks/full_size_memory.py --models tiny-sd3,tiny-sd2 --out /tmp/smoke.json  # seconds

Writes ``benchmarks/results/full_size_memory.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

MIB = 2**20

# stabilityai/stable-diffusion-3.5-medium, transformer/config.json (diffusers SD3Transformer2DModel)
SD35_MEDIUM = dict(
    sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64,
    num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536,
    pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=384,
    dual_attention_layers=tuple(range(13)), qk_norm="rms_norm",
)
# stabilityai/stable-diffusion-2, unet/config.json (diffusers UNet2DConditionModel; 768-v model)
SD2 = dict(
    sample_size=96, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True,
    freq_shift=0, down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                    "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1,
    mid_block_scale_factor=1, act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=1024,
    attention_head_dim=(5, 10, 20, 20), dual_cross_attention=False, use_linear_projection=True,
)

MODELS = {
    # kind, network config, latent channels, default latent side, text tokens, text width
    "sd35-medium": ("flow", SD35_MEDIUM, 16, 16, 77, 4096),
    "sd2": ("vp", SD2, 4, 32, 77, 1024),
    # tiny shapes of the same classes, for the smoke test
    "tiny-sd3": ("flow", dict(sample_size=8, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8,
                              num_attention_heads=2, joint_attention_dim=16, caption_projection_dim=16,
                              pooled_projection_dim=16, out_channels=4, pos_embed_max_size=16,
                              dual_attention_layers=(0,), qk_norm="rms_norm"), 4, 8, 5, 16),
    "tiny-sd2": ("vp", dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
                            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
                            cross_attention_dim=16, attention_head_dim=(2, 4), norm_num_groups=8,
                            use_linear_projection=True), 4, 8, 5, 16),
}
DTYPES = ("float32", "bfloat16", "float16")


def build_denoiser(name: str, latent: int, dtype_name: str, seed: int = 0):
    """``(D, x, params)``: the model with random weights (built on the meta device, then filled with
    ``N(0, 0.02)``: a full-size random init would take minutes), one random latent ``x``."""
    import torch
    from diffusers import SD3Transformer2DModel, UNet2DConditionModel

    from scorelid.adapters import FlowDenoiser, VPDenoiser

    kind, config, channels, _, tokens, width = MODELS[name]
    dtype = getattr(torch, dtype_name)
    cls = SD3Transformer2DModel if kind == "flow" else UNet2DConditionModel
    with torch.device("meta"):
        net = cls(**config).to(dtype)
    net = net.to_empty(device="cpu")  # allocated in its dtype: no float32 copy to free later
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in [*net.parameters(), *net.buffers()]:
            if p.is_floating_point():
                p.normal_(0, 0.02, generator=g)
        for m in net.modules():  # norms start at the identity, as after a real init
            if isinstance(m, torch.nn.LayerNorm | torch.nn.GroupNorm) and m.weight is not None:
                m.weight.fill_(1)
                if m.bias is not None:
                    m.bias.zero_()
    net = net.eval().requires_grad_(False)
    params = sum(p.numel() for p in net.parameters())
    text = torch.randn(1, tokens, width, generator=g)
    if kind == "flow":
        cond = {"encoder_hidden_states": text,
                "pooled_projections": torch.randn(1, config["pooled_projection_dim"], generator=g)}
        D = FlowDenoiser(net, cond, dtype=dtype)
    else:  # SD2's scheduler: scaled-linear betas 0.00085..0.012 over 1000 steps, v-prediction
        betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
        D = VPDenoiser(net, torch.cumprod(1 - betas, 0), "v_prediction", {"encoder_hidden_states": text},
                       dtype=dtype)
    x = torch.randn(1, channels, latent, latent, generator=g)
    return D, x, params


def run_phase(D, x, phase: str, n_noise: int, ad: str, sigma: float = 0.5) -> dict:
    """One measured phase on the built model: DSM (K forwards) or FLIPD (Hutchinson, one probe)."""
    import scorelid
    from scorelid.bench.meter import measure

    if phase == "dsm":
        fn = lambda: scorelid.estimate(D, x, "dsm", sigma, n_noise=n_noise, batch_size=1)  # noqa: E731
    else:
        fn = lambda: scorelid.estimate(D, x, "flipd", sigma, batch_size=1, trace="hutchinson",  # noqa: E731
                                       n_probes=1, ad=ad)
    m = measure(fn)
    return {"lid": float(m.value[0]), "seconds": m.seconds,
            "phase_mib": None if m.peak_mem_bytes is None else m.peak_mem_bytes / MIB}


def child(args: argparse.Namespace) -> dict:
    """Build the model, run one phase, return its figures (runs in its own process)."""
    import resource

    import psutil
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    D, x, params = build_denoiser(args.model, args.latent, args.dtype)
    build_s = time.perf_counter() - t0
    _release_free_memory()  # else the phase reuses the build's freed pages and its RSS growth hides
    base = psutil.Process().memory_info().rss / MIB
    row = run_phase(D, x, args.phase, args.n_noise, args.ad)
    return {"model": args.model, "phase": args.phase, "dtype": args.dtype, "latent": args.latent,
            "params": params, "base_mib": base, "build_s": build_s,
            "process_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "load_avg": os.getloadavg()[0], "n_noise": args.n_noise,
            "ad": args.ad if args.phase == "flipd" else None, **row}


def _release_free_memory() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``), so that the phase's RSS growth is
    what it allocates rather than what the build left free."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def measure_in_subprocess(model: str, phase: str, latent: int, dtype: str, n_noise: int, ad: str,
                          threads: int, timeout: float) -> dict:
    """``child`` in a fresh interpreter; a failure (out of memory, unsupported AD) is a row with ``error``."""
    cmd = [sys.executable, __file__, "--child", "--models", model, "--phase", phase, "--latent", str(latent),
           "--dtype", dtype, "--n-noise", str(n_noise), "--ad", ad, "--threads", str(threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"model": model, "phase": phase, "dtype": dtype, "latent": latent, "ad": ad,
                "error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return {"model": model, "phase": phase, "dtype": dtype, "latent": latent, "ad": ad, "error": err}
    return json.loads(lines[-1])


def summarize(rows: list[dict]) -> list[dict]:
    """One line per (model, latent, dtype): DSM and FLIPD phase memory, their ratio, seconds."""
    out = []
    keys = sorted({(r["model"], r["latent"], r["dtype"]) for r in rows})
    for model, latent, dtype in keys:
        by = {r["phase"]: r for r in rows if (r["model"], r["latent"], r["dtype"]) == (model, latent, dtype)
              and "error" not in r}
        dsm, flipd = by.get("dsm"), by.get("flipd")
        ratio = (dsm["phase_mib"] / flipd["phase_mib"]) if dsm and flipd and flipd["phase_mib"] else None
        peak_ratio = (dsm["process_peak_mib"] / flipd["process_peak_mib"]) if dsm and flipd else None
        out.append({"model": model, "latent": latent, "dtype": dtype,
                    "params": (dsm or flipd or {}).get("params"),
                    "dsm_mib": dsm and dsm["phase_mib"], "flipd_mib": flipd and flipd["phase_mib"],
                    "ratio": ratio, "dsm_peak_mib": dsm and dsm["process_peak_mib"],
                    "flipd_peak_mib": flipd and flipd["process_peak_mib"], "peak_ratio": peak_ratio,
                    "dsm_s": dsm and dsm["seconds"], "flipd_s": flipd and flipd["seconds"],
                    "flipd_ad": flipd and flipd["ad"], "n_noise": dsm and dsm["n_noise"]})
    return out


def table(summary: list[dict]) -> str:
    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    head = ("| model | params | resolution (latent) | dtype | DSM MiB | FLIPD MiB | ratio "
            "| process peak DSM / FLIPD MiB | DSM s | FLIPD s |")
    lines = [head, "|" + "---|" * 10]
    for s in summary:
        side = s["latent"] * 8
        lines.append(
            f"| {s['model']} | {f(s['params'] and s['params'] / 1e9, '.2f')}B | {side}x{side} "
            f"({s['latent']}x{s['latent']}) | {s['dtype']} | {f(s['dsm_mib'], '.0f')} "
            f"(K={s['n_noise']}) | {f(s['flipd_mib'], '.0f')} ({s['flipd_ad']}) | {f(s['ratio'], '.2f')} | "
            f"{f(s['dsm_peak_mib'], '.0f')} / {f(s['flipd_peak_mib'], '.0f')} | {f(s['dsm_s'], '.1f')} | "
            f"{f(s['flipd_s'], '.1f')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="sd35-medium,sd2", help=f"comma-separated, of {sorted(MODELS)}")
    p.add_argument("--latent", type=int, default=None, help="latent side (default: per model)")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help="default: bfloat16 for sd35-medium (fp32 weights alone are 10 GB), float32 otherwise")
    p.add_argument("--n-noise", type=int, default=2, help="DSM noise draws K (one forward each)")
    p.add_argument("--ad", choices=("forward", "reverse"), default="reverse",
                   help="FLIPD's Jacobian-vector product; the other is tried when it fails")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timeout", type=float, default=420, help="seconds per phase")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "full_size_memory.json"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--phase", choices=("dsm", "flipd"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.model = args.models
        args.dtype = args.dtype or "float32"
        print(json.dumps(child(args)), flush=True)
        return 0

    rows, t0 = [], time.perf_counter()
    for model in args.models.split(","):
        latent = args.latent or MODELS[model][3]
        dtype = args.dtype or ("bfloat16" if model == "sd35-medium" else "float32")
        for phase in ("dsm", "flipd"):
            row = measure_in_subprocess(model, phase, latent, dtype, args.n_noise, args.ad, args.threads,
                                        args.timeout)
            if phase == "flipd" and "error" in row:  # the other mode, if this one does not run
                other = "forward" if args.ad == "reverse" else "reverse"
                print(f"{model} flipd ad={args.ad} failed ({row['error']}); trying ad={other}",
                      file=sys.stderr)
                row = measure_in_subprocess(model, phase, latent, dtype, args.n_noise, other, args.threads,
                                            args.timeout)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    summary = summarize(rows)
    result = {"benchmark": "full_size_memory", "rows": rows, "summary": summary,
              "seconds_total": time.perf_counter() - t0, "threads": args.threads,
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
              "torch": _version("torch"), "diffusers": _version("diffusers")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(table(summary))
    print(f"written to {args.out} ({result['seconds_total']:.0f} s)")
    return 0


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
