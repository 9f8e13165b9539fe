"""Tiny random diffusers pipelines for tests, built without the model hub.

``build_sd2(root, prediction_type)`` and ``build_sd3(root)`` write a complete diffusers directory
(``save_pretrained``) with offline tokenizers, a tiny VAE (scale factor 2), a tiny UNet or SD3
transformer and the scheduler, and return its path.  Images are 16 x 16 pixels, latents 8 x 8.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

__all__ = [
    "IMAGE_SIZE", "build_ddpm", "build_flux", "build_pixart", "build_sd2", "build_sd3", "build_sdxl",
    "cached",
    "clip_tokenizer", "t5_tokenizer", "write_images",
]

IMAGE_SIZE = 16  # pixels; latents are IMAGE_SIZE // 2


def _byte_symbols() -> list[str]:
    """GPT-2 byte-level alphabet (the 256 symbols CLIP's BPE works on)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def clip_tokenizer(folder: Path):
    """An offline CLIP BPE tokenizer (byte symbols, a few merges)."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    syms = _byte_symbols()
    merges = ["a b", "c d", "ab c</w>"]
    vocab = syms + [s + "</w>" for s in syms] + [m.replace(" ", "") for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=77), len(vocab)


def t5_tokenizer(folder: Path):
    """An offline T5-style Unigram tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -1.0)]
    pieces += [(c, -2.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok.save(str(folder / "tokenizer.json"))
    t5 = T5TokenizerFast(
        tokenizer_file=str(folder / "tokenizer.json"), eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", extra_ids=0,
    )
    return t5, len(pieces)


def _vae(latent_channels: int, sd3: bool):
    from diffusers import AutoencoderKL

    kw = {"shift_factor": 0.0609, "scaling_factor": 1.5305} if sd3 else {"scaling_factor": 0.18215}
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=latent_channels,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4, sample_size=IMAGE_SIZE,
        **kw,
    )


def _clip(vocab: int, hidden: int, projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, projection_dim=hidden,
        bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)


def build_sd2(root: Path, prediction_type: str = "epsilon", seed: int = 0) -> Path:
    """A tiny SD2-like pipeline (UNet2DConditionModel + DDPMScheduler) saved under ``root``."""
    from diffusers import DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    tok, vocab = clip_tokenizer(root.parent / f"{root.name}-tok")
    unet = UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 2, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
        attention_head_dim=4, norm_num_groups=4,
    )
    sched = DDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        prediction_type=prediction_type, num_train_timesteps=1000,
    )
    pipe = StableDiffusionPipeline(
        vae=_vae(4, sd3=False), text_encoder=_clip(vocab, 16, False), tokenizer=tok, unet=unet,
        scheduler=sched, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(str(root))
    return root


def build_sd3(root: Path, seed: int = 0) -> Path:
    """A tiny SD3.5-medium-like pipeline (SD3Transformer2DModel + flow matching) under ``root``."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tok, vocab = clip_tokenizer(root.parent / f"{root.name}-tok")
    tok3, vocab3 = t5_tokenizer(root.parent / f"{root.name}-tok3")
    transformer = SD3Transformer2DModel(
        sample_size=IMAGE_SIZE // 2, patch_size=2, in_channels=16, out_channels=16, num_layers=2,
        attention_head_dim=8, num_attention_heads=2, joint_attention_dim=32,
        caption_projection_dim=16, pooled_projection_dim=32, pos_embed_max_size=8,
        qk_norm="rms_norm", dual_attention_layers=(0,),
    )
    t5 = T5EncoderModel(T5Config(
        vocab_size=vocab3, d_model=32, d_ff=64, d_kv=8, num_layers=1, num_heads=2,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    ))
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(16, sd3=True), text_encoder=_clip(vocab, 16, True), tokenizer=tok,
        text_encoder_2=_clip(vocab, 16, True), tokenizer_2=tok, text_encoder_3=t5, tokenizer_3=tok3,
    )
    pipe.save_pretrained(str(root))
    return root


def _t5(vocab: int, d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=vocab, d_model=d_model, d_ff=64, d_kv=8, num_layers=1, num_heads=2,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    ))


def build_sdxl(root: Path, seed: int = 0) -> Path:
    """A tiny SDXL pipeline: two CLIP encoders, text_time micro-conditioning, Euler scheduler."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    tok, vocab = clip_tokenizer(root.parent / f"{root.name}-tok")
    unet = UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 2, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        attention_head_dim=4, norm_num_groups=4, addition_embed_type="text_time",
        addition_time_embed_dim=4, projection_class_embeddings_input_dim=4 * 6 + 16,
    )
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    pipe = StableDiffusionXLPipeline(
        vae=_vae(4, sd3=False), text_encoder=_clip(vocab, 16, False), tokenizer=tok,
        text_encoder_2=_clip(vocab, 16, True), tokenizer_2=tok, unet=unet, scheduler=sched,
    )
    pipe.save_pretrained(str(root))
    return root


def build_ddpm(root: Path, seed: int = 0) -> Path:
    """A tiny pixel-space DDPM (UNet2DModel on 8 x 8 RGB images, linear betas, clip_sample on)."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4, attention_head_dim=4,
    )
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000)).save_pretrained(str(root))
    return root


def build_pixart(root: Path, seed: int = 0) -> Path:
    """A tiny PixArt-alpha pipeline: learned-sigma transformer (2C outputs), T5, DPM-Solver scheduler."""
    from diffusers import DPMSolverMultistepScheduler, PixArtAlphaPipeline, PixArtTransformer2DModel

    torch.manual_seed(seed)
    tok, vocab = t5_tokenizer(root.parent / f"{root.name}-tok")
    transformer = PixArtTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
        sample_size=IMAGE_SIZE // 2, patch_size=2, cross_attention_dim=16, caption_channels=32,
        norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
    )
    sched = DPMSolverMultistepScheduler(beta_start=0.0001, beta_end=0.02, beta_schedule="linear")
    pipe = PixArtAlphaPipeline(tokenizer=tok, text_encoder=_t5(vocab), vae=_vae(4, sd3=False),
                               transformer=transformer, scheduler=sched)
    pipe.save_pretrained(str(root))
    return root


def build_flux(root: Path, seed: int = 0, guidance_embeds: bool = False) -> Path:
    """A tiny FLUX.1-schnell-like pipeline (4 latent channels packed into 16 per token)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(seed)
    tok, vocab = clip_tokenizer(root.parent / f"{root.name}-tok")
    tok2, vocab2 = t5_tokenizer(root.parent / f"{root.name}-tok2")
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=16,
        guidance_embeds=guidance_embeds, axes_dims_rope=(4, 6, 6),
    )
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=_vae(4, sd3=True),
        text_encoder=_clip(vocab, 16, False), tokenizer=tok, text_encoder_2=_t5(vocab2), tokenizer_2=tok2,
        transformer=transformer,
    )
    pipe.save_pretrained(str(root))
    return root


_BUILDERS = {
    "sd2-eps": lambda root: build_sd2(root, "epsilon"),
    "sd2-v": lambda root: build_sd2(root, "v_prediction"),
    "sd3": build_sd3,
    "sdxl": build_sdxl,
    "ddpm": build_ddpm,
    "pixart": build_pixart,
    "flux": build_flux,
}


def cached(kind: str) -> Path:
    """The tiny pipeline ``kind`` (a key of ``_BUILDERS``), built once per test process."""
    root = Path(tempfile.gettempdir()) / f"scorelid-tiny-{os.getpid()}"
    d = root / kind
    if not (d / "model_index.json").is_file():
        if not root.exists():
            root.mkdir(parents=True)
            atexit.register(shutil.rmtree, root, True)
        _BUILDERS[kind](d)
    return d


def write_images(folder: Path, n: int, seed: int = 0, bad: int = 0) -> list[Path]:
    """``n`` random RGB PNGs of assorted sizes (and ``bad`` undecodable ones) in ``folder``."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        h, w = 16 + 3 * (i % 3), 16 + 5 * (i % 2)
        p = folder / f"img{i:03d}.png"
        Image.fromarray((rng.random((h, w, 3)) * 255).astype("uint8")).save(p)
        paths.append(p)
    for j in range(bad):
        p = folder / f"broken{j}.png"
        p.write_bytes(b"not an image")
        paths.append(p)
    return sorted(paths)
