"""Load a local diffusers directory as a VE denoiser over VAE latents; never touches the network.

Only the parts needed are loaded: the VAE, the UNet or transformer, and the scheduler's config.
The text encoders are loaded once, to compute the empty-prompt conditioning, which is cached as
safetensors (``cache_dir``, default ``$SCORELID_CACHE_DIR`` or ``~/.cache/scorelid``) under a key
made from the resolved directory and its ``model_index.json``; later runs read the cache and
never touch the text encoders (they may even be deleted).

Families are told apart by ``model_index.json``: a ``transformer`` component means flow matching
(SD3/SD3.5, ``FlowDenoiser``), a ``unet`` means a VP schedule (SD 1.x/2.x, ``VPDenoiser``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from scorelid.adapters.flow import FlowDenoiser
from scorelid.adapters.vae import LatentCodec
from scorelid.adapters.vp import VPDenoiser
from scorelid.errors import ModelLoadError, ScoreLIDError
from scorelid.runtime.io import atomic_path

__all__ = ["DTYPES", "LoadedModel", "empty_prompt_conditioning", "load_model", "model_family"]

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_TEXT_PARTS = {
    "sd2": ("text_encoder", "tokenizer"),
    "sd3": ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "text_encoder_3", "tokenizer_3"),
}


@dataclass
class LoadedModel:
    """A model ready for LID: its denoiser on the VE latent scale and the VAE codec.

    Attributes:
        family: ``"sd2"`` (VP UNet) or ``"sd3"`` (flow-matching transformer).
        denoiser: ``VPDenoiser`` or ``FlowDenoiser``.
        codec: the VAE (kept in float32, so every precision sees the same latents).
        image_size: pixels per side the model was built for.
        dtype, quant: the network's precision, as named on the command line.
        conditioning_cache: the safetensors file holding the empty-prompt conditioning.
    """

    family: str
    denoiser: VPDenoiser | FlowDenoiser
    codec: LatentCodec
    image_size: int
    dtype: str
    quant: str
    path: Path
    conditioning_cache: Path | None = None
    info: dict = field(default_factory=dict)

    @property
    def network(self) -> nn.Module:
        return self.denoiser.unet if self.family == "sd2" else self.denoiser.transformer


def _read_index(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"model directory not found: {path}")
    if not path.is_dir():
        raise NotADirectoryError(f"model must be a diffusers directory, got a file: {path}")
    index = path / "model_index.json"
    if not index.is_file():
        raise FileNotFoundError(f"{path} is not a diffusers directory: model_index.json is missing")
    try:
        return json.loads(index.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{index}: not valid JSON ({exc})") from None


def model_family(path: str | os.PathLike) -> str:
    """``"sd3"`` (transformer + flow matching) or ``"sd2"`` (UNet + VP schedule)."""
    index = _read_index(Path(path))
    if _listed(index, "transformer"):
        return "sd3"
    if _listed(index, "unet"):
        return "sd2"
    raise ValueError(f"{path}: model_index.json lists neither a 'unet' nor a 'transformer'")


def _listed(index: dict, name: str) -> bool:
    v = index.get(name)
    return isinstance(v, list | tuple) and len(v) == 2 and v[0] is not None


def _require(path: Path, part: str, config: str, weights: bool = True) -> None:
    d = path / part
    if not d.is_dir():
        raise FileNotFoundError(f"{path}: component '{part}' is missing (no folder {part}/)")
    if not (d / config).is_file():
        raise FileNotFoundError(f"{path}: component '{part}' is incomplete ({part}/{config} is missing)")
    if weights and not any(d.glob("*.safetensors")) and not any(d.glob("*.bin")):
        raise FileNotFoundError(f"{path}: component '{part}' has no weights ({part}/*.safetensors)")


@contextmanager
def _loading(path: Path, part: str) -> Iterator[None]:
    """Name the component when diffusers, transformers or safetensors fail on its files.

    Damaged or foreign files surface there as ``RuntimeError`` (weights of other shapes than the
    config), ``TypeError`` (a foreign config), ``SafetensorError`` (truncated weights), ...: a
    ``ModelLoadError`` (a ``ValueError``) says which part of ``path`` could not be loaded.
    ``OSError`` passes unchanged (diffusers' messages already name the file).
    """
    try:
        yield
    except (OSError, ScoreLIDError):
        raise
    except Exception as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelLoadError(f"{path}: cannot load component '{part}' (damaged or foreign files): "
                             f"{type(exc).__name__}: {why}".rstrip(": ")) from exc


def _cache_key(path: Path, family: str) -> str:
    """Key of the conditioning cache: the resolved directory and its ``model_index.json``.

    It must not depend on the text encoders' files, so that they can be absent later.  After
    replacing the text encoders in place, delete the cache file (or use another ``cache_dir``).
    """
    h = hashlib.sha256(f"{path.resolve()}|{family}|".encode())
    h.update((path / "model_index.json").read_bytes())
    return h.hexdigest()[:20]


def default_cache_dir() -> Path:
    return Path(os.environ.get("SCORELID_CACHE_DIR") or Path.home() / ".cache" / "scorelid")


def empty_prompt_conditioning(
    path: str | os.PathLike, cache_dir: str | os.PathLike | None = None
) -> tuple[dict[str, torch.Tensor], Path]:
    """The empty-prompt conditioning of the model at ``path`` (float32, leading dim 1) and its cache file.

    SD2: ``{"encoder_hidden_states": [1, 77, dim]}``; SD3: also ``"pooled_projections"`` ``[1, P]``.
    Computed with the pipeline's own ``encode_prompt`` the first time, then read from the cache.
    """
    from safetensors.torch import load_file, save_file

    path = Path(path)
    family = model_family(path)
    index = _read_index(path)
    parts = [p for p in _TEXT_PARTS[family] if _listed(index, p)]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    file = cache / f"empty-prompt-{family}-{_cache_key(path, family)}.safetensors"
    if file.is_file():
        return load_file(str(file)), file
    for p in parts:
        cfg = "config.json" if p.startswith("text_encoder") else "tokenizer_config.json"
        _require(path, p, cfg, weights=p.startswith("text_encoder"))
    if family == "sd2" and "text_encoder" not in parts:
        raise FileNotFoundError(
            f"{path}: component 'text_encoder' is missing (needed once for the conditioning)"
        )
    with _loading(path, "text_encoder"):
        cond = _encode_empty(path, family)
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(file) as tmp:
        tensors = {k: v.contiguous() for k, v in cond.items()}
        save_file(tensors, str(tmp), metadata={"model": str(path.resolve())})
    return cond, file


@torch.inference_mode()
def _encode_empty(path: Path, family: str) -> dict[str, torch.Tensor]:
    from diffusers import StableDiffusion3Pipeline, StableDiffusionPipeline

    if family == "sd3":
        pipe = StableDiffusion3Pipeline.from_pretrained(
            str(path), transformer=None, vae=None, local_files_only=True, torch_dtype=torch.float32
        )
        emb, _, pooled, _ = pipe.encode_prompt("", "", "", device="cpu", do_classifier_free_guidance=False)
        return {"encoder_hidden_states": emb.float(), "pooled_projections": pooled.float()}
    pipe = StableDiffusionPipeline.from_pretrained(
        str(path), unet=None, vae=None, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False, local_files_only=True, torch_dtype=torch.float32,
    )
    emb, _ = pipe.encode_prompt("", "cpu", 1, False)
    return {"encoder_hidden_states": emb.float()}


def load_model(
    path: str | os.PathLike,
    dtype: str = "fp32",
    quant: str = "none",
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    below_range: str = "error",
    snap: bool = False,
) -> LoadedModel:
    """Load the diffusers directory ``path`` (local files only) for LID estimation.

    Args:
        dtype: network precision ``"fp32"``, ``"fp16"`` or ``"bf16"`` (the VAE stays float32).
        quant: weight-only quantization ``"none"``, ``"int8"`` or ``"int4"`` (optimum-quanto).
        below_range, snap: noise-level policy (see ``scorelid.adapters.schedule``); ``snap``
            applies to VP models only.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, FlowMatchEulerDiscreteScheduler

    from scorelid.adapters.quantize import quantize_weights

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    path = Path(path)
    family = model_family(path)
    net_part = "transformer" if family == "sd3" else "unet"
    _require(path, "vae", "config.json")
    _require(path, net_part, "config.json")
    _require(path, "scheduler", "scheduler_config.json", weights=False)
    cond, cache_file = empty_prompt_conditioning(path, cache_dir)
    torch_dtype = DTYPES[dtype]
    with _loading(path, "vae"):
        vae = AutoencoderKL.from_pretrained(str(path), subfolder="vae", local_files_only=True)
    vae = vae.to(device).eval()
    sched_cfg = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    if family == "sd3":
        from diffusers import SD3Transformer2DModel

        with _loading(path, net_part):
            net = SD3Transformer2DModel.from_pretrained(str(path), subfolder=net_part, local_files_only=True)
        net = quantize_weights(net.to(device=device, dtype=torch_dtype).eval().requires_grad_(False), quant)
        with _loading(path, "scheduler"):
            sched = FlowMatchEulerDiscreteScheduler.from_config(sched_cfg)
        den = FlowDenoiser(
            net, {k: v.to(device) for k, v in cond.items()},
            num_train_timesteps=sched.config.num_train_timesteps, s_min=float(sched.sigma_min),
            below_range=below_range, dtype=torch_dtype,
        )
    else:
        from diffusers import UNet2DConditionModel

        with _loading(path, net_part):
            net = UNet2DConditionModel.from_pretrained(str(path), subfolder=net_part, local_files_only=True)
        net = quantize_weights(net.to(device=device, dtype=torch_dtype).eval().requires_grad_(False), quant)
        with _loading(path, "scheduler"):
            sched = DDPMScheduler.from_config(sched_cfg)  # any DDPM-family config gives the betas
        den = VPDenoiser(
            net, sched.alphas_cumprod, prediction_type=sched.config.prediction_type,
            conditioning={k: v.to(device) for k, v in cond.items()}, below_range=below_range, snap=snap,
            dtype=torch_dtype,
        )
    den.exit_inference_mode = quant != "none"
    codec = LatentCodec(vae)
    size = int(net.config.sample_size) * codec.scale_factor
    return LoadedModel(
        family, den, codec, size, dtype, quant, path, cache_file,
        info={"scheduler": sched_cfg.get("_class_name"), "network": type(net).__name__},
    )
