"""Load a diffusers model (local directory or hub id) as a VE denoiser; never guesses.

Families are told apart by ``model_index.json``'s ``_class_name`` (one module per family:
``sd`` for SD 1.x/2.x and SD3/3.5, ``sdxl``, ``flux``, ``pixart``, ``pixel``); each becomes a
``VPDenoiser`` (discrete VP schedule, epsilon or v prediction) or a ``FlowDenoiser`` (flow
matching) on the space LID is measured in: the unpacked VAE latent ``[C, H, W]``, or the image
itself for pixel-space models.  Only the parts needed are loaded: the VAE, the network and the
scheduler's config.  The text encoders are loaded only to encode a prompt that is not cached yet;
encoded prompts are cached as safetensors (``cache_dir``, default ``$SCORELID_CACHE_DIR`` or
``~/.cache/scorelid``) under a key made from the resolved directory, its ``model_index.json``, the
image size and the prompt; later runs read the cache and never touch the text encoders (they may
even be deleted).  No classifier-free guidance is used anywhere: a guided prediction is not a
posterior mean.
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

from scorelid.adapters.family import FLOW_SCHEDULERS, VP_SCHEDULERS, FamilySpec
from scorelid.adapters.flow import FlowDenoiser
from scorelid.adapters.flux import FLUX
from scorelid.adapters.hub import resolve_model
from scorelid.adapters.pixart import PIXART_ALPHA, PIXART_SIGMA
from scorelid.adapters.pixel import PIXEL, PixelCodec
from scorelid.adapters.sd import SD2, SD3
from scorelid.adapters.sdxl import SDXL
from scorelid.adapters.vae import LatentCodec
from scorelid.adapters.vp import VPDenoiser
from scorelid.errors import ModelLoadError, ScoreLIDError
from scorelid.runtime.io import atomic_path

__all__ = [
    "DTYPES", "FAMILIES", "LoadedModel", "PromptEncoder", "empty_prompt_conditioning", "family_spec",
    "load_model", "model_family", "prompt_conditioning",
]

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FAMILIES = (SD2, SD3, SDXL, FLUX, PIXART_ALPHA, PIXART_SIGMA, PIXEL)


@dataclass
class LoadedModel:
    """A model ready for LID: its denoiser on the VE scale and the codec to the measured space.

    Attributes:
        family: ``"sd2"``, ``"sd3"``, ``"sdxl"``, ``"flux"``, ``"pixart"``, ``"pixart-sigma"`` or ``"ddpm"``.
        denoiser: ``VPDenoiser`` or ``FlowDenoiser``; its ``conditioning`` is the current prompt's.
        codec: the VAE (kept in float32, so every precision sees the same latents), or the identity
            ``PixelCodec`` of pixel-space models.
        image_size: pixels per side the images are brought to.
        dtype, quant: the network's precision, as named on the command line.
        conditioning_cache: the safetensors file holding the current prompt's conditioning.
        prompt: the prompt the denoiser is conditioned on (``use_prompt`` changes it).
        guidance: FLUX guidance-distilled models' guidance value (None where the model takes none).
        name: what the model was asked for by (a directory or a hub id); ``path`` is the directory.
    """

    family: str
    denoiser: VPDenoiser | FlowDenoiser
    codec: LatentCodec | PixelCodec
    image_size: int
    dtype: str
    quant: str
    path: Path
    conditioning_cache: Path | None = None
    info: dict = field(default_factory=dict)
    encoder: PromptEncoder | None = None
    prompt: str = ""
    guidance: float | None = None
    name: str = ""
    revision: str | None = None

    @property
    def network(self) -> nn.Module:
        net = getattr(self.denoiser, "unet", None) or self.denoiser.transformer
        return getattr(net, "net", net)

    def use_prompt(self, prompt: str) -> None:
        """Condition the denoiser on ``prompt`` (encoded once, then cached in memory and on disk)."""
        if prompt == self.prompt:
            return
        cond, file = self.encoder(prompt)
        device = self.codec.device
        self.denoiser.conditioning = {k: v.to(device) for k, v in cond.items()}
        self.prompt, self.conditioning_cache = prompt, file


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
    """The family name of the diffusers directory ``path`` (``sd2``, ``sd3``, ``sdxl``, ``flux``, ...)."""
    return family_spec(Path(path)).name


def family_spec(path: Path) -> FamilySpec:
    """The family of ``path`` by ``model_index.json``'s ``_class_name`` (without one: by component)."""
    index = _read_index(path)
    cls = index.get("_class_name")
    for spec in FAMILIES:
        if cls in spec.pipelines:
            if not _listed(index, spec.network):
                raise ModelLoadError(f"{path}: model_index.json of a {cls} does not list its "
                                     f"'{spec.network}' component")
            return spec
    if cls:
        known = ", ".join(p for f in FAMILIES for p in f.pipelines[:1])
        raise ModelLoadError(f"{path}: unknown model family {cls!r} (model_index.json _class_name); "
                             f"supported: {known}")
    if _listed(index, "transformer"):
        return SD3
    if _listed(index, "unet"):
        return SD2
    raise ModelLoadError(f"{path}: model_index.json lists neither a 'unet' nor a 'transformer'")


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


def _cache_key(path: Path, family: str, extra: str = "") -> str:
    """Key of the conditioning cache: the resolved directory, its ``model_index.json`` and ``extra``.

    It must not depend on the text encoders' files, so that they can be absent later.  After
    replacing the text encoders in place, delete the cache file (or use another ``cache_dir``).
    """
    h = hashlib.sha256(f"{path.resolve()}|{family}|{extra}".encode())
    h.update((path / "model_index.json").read_bytes())
    return h.hexdigest()[:20]


def default_cache_dir() -> Path:
    return Path(os.environ.get("SCORELID_CACHE_DIR") or Path.home() / ".cache" / "scorelid")


def _cache_file(path: Path, spec: FamilySpec, prompt: str, image_size: int, cache: Path) -> Path:
    if prompt == "" and spec.name in ("sd2", "sd3"):  # the file name of earlier versions
        return cache / f"empty-prompt-{spec.name}-{_cache_key(path, spec.name)}.safetensors"
    key = _cache_key(path, spec.name, f"{image_size}|{prompt}")
    return cache / f"prompt-{spec.name}-{key}.safetensors"


class PromptEncoder:
    """Prompt -> conditioning tensors (float32, leading dim 1) of one model, cached on disk.

    The text encoders are loaded on the first prompt that is not in the cache, then kept.
    """

    def __init__(self, path: Path, spec: FamilySpec, image_size: int, cache_dir: str | os.PathLike | None):
        self.path, self.spec, self.image_size = path, spec, int(image_size)
        self.cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._encode = None
        self._memo: dict[str, tuple[dict[str, torch.Tensor], Path | None]] = {}

    def __call__(self, prompt: str) -> tuple[dict[str, torch.Tensor], Path | None]:
        from safetensors.torch import load_file, save_file

        if prompt in self._memo:
            return self._memo[prompt]
        if self.spec.make_encoder is None:
            if prompt:
                raise ValueError(f"{self.path}: a {self.spec.name} model is unconditional; "
                                 "it takes no prompt or captions")
            self._memo[prompt] = ({}, None)
            return self._memo[prompt]
        file = _cache_file(self.path, self.spec, prompt, self.image_size, self.cache)
        if file.is_file():
            cond = load_file(str(file))
        else:
            if self._encode is None:
                index = _read_index(self.path)
                if not _listed(index, "text_encoder"):
                    raise FileNotFoundError(f"{self.path}: component 'text_encoder' is missing "
                                            "(needed once for the conditioning)")
                for p in self.spec.text_parts:
                    if _listed(index, p):
                        cfg = "config.json" if p.startswith("text_encoder") else "tokenizer_config.json"
                        _require(self.path, p, cfg, weights=p.startswith("text_encoder"))
                with _loading(self.path, "text_encoder"):
                    self._encode = self.spec.make_encoder(self.path, self.image_size)
            with _loading(self.path, "text_encoder"):
                cond = self._encode(prompt)
            self.cache.mkdir(parents=True, exist_ok=True)
            with atomic_path(file) as tmp:
                tensors = {k: v.contiguous() for k, v in cond.items()}
                save_file(tensors, str(tmp), metadata={"model": str(self.path.resolve()), "prompt": prompt})
        self._memo[prompt] = (cond, file)
        return cond, file


def _image_size(path: Path, spec: FamilySpec) -> int:
    net_cfg = json.loads((path / spec.network / "config.json").read_text())
    scale = 1
    if spec.latent:
        vae_cfg = json.loads((path / "vae" / "config.json").read_text())
        scale = 2 ** (len(vae_cfg.get("block_out_channels", [0] * 4)) - 1)
    return spec.image_size(net_cfg, scale)


def empty_prompt_conditioning(
    path: str | os.PathLike, cache_dir: str | os.PathLike | None = None
) -> tuple[dict[str, torch.Tensor], Path]:
    """The empty-prompt conditioning of the model at ``path`` (float32, leading dim 1) and its cache file.

    SD2: ``{"encoder_hidden_states": [1, 77, dim]}``; SD3: also ``"pooled_projections"`` ``[1, P]``.
    Computed with the pipeline's own ``encode_prompt`` the first time, then read from the cache.
    """
    return prompt_conditioning(path, "", cache_dir)


def prompt_conditioning(
    path: str | os.PathLike, prompt: str = "", cache_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
) -> tuple[dict[str, torch.Tensor], Path | None]:
    """The conditioning of ``prompt`` for the model at ``path`` and its cache file (None: unconditional)."""
    path = Path(path)
    spec = family_spec(path)
    size = image_size or _image_size(path, spec)
    return PromptEncoder(path, spec, size, cache_dir)(prompt)


def load_model(
    path: str | os.PathLike,
    dtype: str = "fp32",
    quant: str = "none",
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    below_range: str = "error",
    snap: bool = False,
    prompt: str = "",
    revision: str | None = None,
    guidance: float | None = None,
    image_size: int | None = None,
) -> LoadedModel:
    """Load a diffusers model for LID estimation: a local directory or a hub id (``org/name``).

    Args:
        path: a local diffusers directory, or a hub id resolved through the Hugging Face cache
            (``HF_HOME``; with ``HF_HUB_OFFLINE`` set nothing is downloaded).
        dtype: network precision ``"fp32"``, ``"fp16"`` or ``"bf16"`` (the VAE stays float32).
        quant: weight-only quantization ``"none"``, ``"int8"`` or ``"int4"`` (optimum-quanto).
        below_range, snap: noise-level policy (see ``scorelid.adapters.schedule``); ``snap``
            applies to VP models only.
        prompt: the conditioning prompt (default the empty prompt); ``use_prompt`` changes it.
        revision: hub revision (branch, tag or commit) of a hub id.
        guidance: FLUX guidance-distilled models (``guidance_embeds=True``) only: the guidance
            value given to the network (default 3.5, the pipeline's).
        image_size: pixels per side (default: the size the model was built for).
    """
    from diffusers import AutoencoderKL, DDPMScheduler, FlowMatchEulerDiscreteScheduler

    from scorelid.adapters.quantize import quantize_weights

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    name = os.fspath(path)
    path = resolve_model(path, revision)
    spec = family_spec(path)
    if spec.latent:
        _require(path, "vae", "config.json")
    _require(path, spec.network, "config.json")
    _require(path, "scheduler", "scheduler_config.json", weights=False)
    sched_cfg = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    sched_cls = sched_cfg.get("_class_name")
    allowed = VP_SCHEDULERS if spec.kind == "vp" else FLOW_SCHEDULERS
    if sched_cls not in allowed:
        raise ModelLoadError(f"{path}: unsupported scheduler {sched_cls!r} for a {spec.name} model "
                             f"(supported: {', '.join(allowed)})")
    size = int(image_size) if image_size else _image_size(path, spec)
    encoder = PromptEncoder(path, spec, size, cache_dir)
    cond, cache_file = encoder(prompt)
    torch_dtype = DTYPES[dtype]
    if spec.latent:
        with _loading(path, "vae"):
            vae = AutoencoderKL.from_pretrained(str(path), subfolder="vae", local_files_only=True)
        codec = LatentCodec(vae.to(device).eval())
    import diffusers

    with _loading(path, spec.network):
        net = getattr(diffusers, spec.network_class).from_pretrained(
            str(path), subfolder=spec.network, local_files_only=True)
    if not spec.latent:
        codec = PixelCodec(net.config.in_channels, device)
    net = quantize_weights(net.to(device=device, dtype=torch_dtype).eval().requires_grad_(False), quant)
    opts = {"guidance": guidance}
    wrapped = spec.wrap(net, opts) if spec.wrap is not None else net
    cond = {k: v.to(device) for k, v in cond.items()}
    if spec.kind == "flow":
        with _loading(path, "scheduler"):
            sched = FlowMatchEulerDiscreteScheduler.from_config(sched_cfg)
        den = FlowDenoiser(
            wrapped, cond, num_train_timesteps=spec.timestep_scale or sched.config.num_train_timesteps,
            s_min=float(sched.sigma_min), below_range=below_range, dtype=torch_dtype,
        )
    else:
        with _loading(path, "scheduler"):
            sched = DDPMScheduler.from_config(sched_cfg)  # any DDPM-family config gives the betas
        pred = sched_cfg.get("prediction_type", "epsilon")
        if pred not in ("epsilon", "v_prediction"):
            raise ModelLoadError(f"{path}: unsupported prediction_type {pred!r} of scheduler {sched_cls!r} "
                                 "(epsilon and v_prediction are supported)")
        den = VPDenoiser(wrapped, sched.alphas_cumprod, prediction_type=pred, conditioning=cond,
                         below_range=below_range, snap=snap, dtype=torch_dtype)
    den.exit_inference_mode = quant != "none"
    return LoadedModel(
        spec.name, den, codec, size, dtype, quant, path, cache_file,
        info={"scheduler": sched_cls, "network": type(net).__name__},
        encoder=encoder, prompt=prompt, guidance=getattr(wrapped, "guidance", None), name=name,
        revision=revision,
    )
