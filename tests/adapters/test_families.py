"""Every family's D(y, sigma) against diffusers' own scheduler math, on tiny random models from disk.

VP families: ``DDPMScheduler.step(pred, t, x_t).pred_original_sample`` (the family's betas, no
clipping) with ``pred`` the network's output called as the family's pipeline calls it; flow
families: ``x0 = x_s - s v`` at the flow scheduler's own sigmas.  ``y = x_t / sqrt(abar_t)`` (VP) or
``x_s / (1 - s)`` (flow) at ``sigma_t``.  Plus the closed forms of a zeroed network.
"""

import math

import pytest
import torch
from adapters.tiny_models import cached
from diffusers import DDPMScheduler, DiffusionPipeline, FlowMatchEulerDiscreteScheduler

from scorelid.adapters import load_model

SIZE = {"flux": 16}  # pixels (FLUX's own default is 128 latent pixels)
VP = ["sd2-eps", "sd2-v", "sdxl", "pixart", "ddpm"]
FLOW = ["sd3", "flux"]


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def _pipe(kind):
    return DiffusionPipeline.from_pretrained(str(cached(kind)), local_files_only=True,
                                             torch_dtype=torch.float32)


@torch.no_grad()
def _vp_prediction(kind, pipe, x_t, t, size):
    """The network's output called as the family's pipeline calls it (no guidance)."""
    b = x_t.shape[0]
    tt = torch.full((b,), t)
    if kind == "ddpm":
        return pipe.unet(x_t, tt).sample
    if kind == "pixart":
        emb, mask, _, _ = pipe.encode_prompt("a cat", do_classifier_free_guidance=False, device="cpu")
        out = pipe.transformer(x_t, encoder_hidden_states=emb.expand(b, -1, -1),
                               encoder_attention_mask=mask.expand(b, -1), timestep=tt,
                               added_cond_kwargs={"resolution": None, "aspect_ratio": None}).sample
        return out.chunk(2, dim=1)[0]
    if kind == "sdxl":
        emb, _, pooled, _ = pipe.encode_prompt("a cat", device=torch.device("cpu"),
                                               do_classifier_free_guidance=False)
        ids = pipe._get_add_time_ids((size, size), (0, 0), (size, size), torch.float32,
                                     pipe.text_encoder_2.config.projection_dim)
        return pipe.unet(x_t, tt, encoder_hidden_states=emb.expand(b, -1, -1),
                         added_cond_kwargs={"text_embeds": pooled.expand(b, -1),
                                            "time_ids": ids.expand(b, -1)}).sample
    emb, _ = pipe.encode_prompt("a cat", "cpu", 1, False)
    return pipe.unet(x_t, tt, encoder_hidden_states=emb.expand(b, -1, -1)).sample


@pytest.mark.parametrize("kind", VP)
def test_vp_families_match_scheduler_posterior_mean(kind, tmp_path):
    m = load_model(cached(kind), cache_dir=tmp_path, prompt="" if kind == "ddpm" else "a cat")
    pipe = _pipe(kind)
    sched = DDPMScheduler.from_config(pipe.scheduler.config, clip_sample=False, thresholding=False)
    shape = (2, m.codec.latent_channels, *(m.image_size // m.codec.scale_factor,) * 2)
    g = torch.Generator().manual_seed(0)
    for t in (1, 500, 999):  # small, middle, top trained level
        x_t = torch.randn(shape, generator=g)
        pred = _vp_prediction(kind, pipe, x_t, t, m.image_size)
        ref = sched.step(pred, t, x_t).pred_original_sample
        abar = float(sched.alphas_cumprod[t])
        sigma = math.sqrt((1 - abar) / abar)
        with torch.no_grad():
            got = m.denoiser(x_t / math.sqrt(abar), torch.tensor(sigma, dtype=torch.float32))
        print(f"REL {kind} t={t} {_rel(got, ref):.2e}")
        assert _rel(got, ref) <= 1e-3, (kind, t, _rel(got, ref))


@pytest.mark.parametrize("kind", FLOW)
def test_flow_families_match_scheduler_sigmas(kind, tmp_path):
    m = load_model(cached(kind), cache_dir=tmp_path, prompt="a cat", image_size=SIZE.get(kind))
    pipe = _pipe(kind)
    sched = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
    c, h = m.codec.latent_channels, m.image_size // m.codec.scale_factor
    g = torch.Generator().manual_seed(0)
    n = len(sched.sigmas)
    with torch.no_grad():
        if kind == "flux":
            emb, pooled, txt_ids = pipe.encode_prompt("a cat", None, device=torch.device("cpu"))
        else:
            emb, _, pooled, _ = pipe.encode_prompt("a cat", "a cat", "a cat", device="cpu",
                                                   do_classifier_free_guidance=False)
        for k in (n - 2, n // 2, 1):  # small, middle, large scheduler sigmas
            s = float(sched.sigmas[k])
            x_s = torch.randn(2, c, h, h, generator=g)
            t = torch.full((2,), float(sched.timesteps[k]))
            if kind == "flux":
                packed = pipe._pack_latents(x_s, 2, c, h, h)
                img_ids = pipe._prepare_latent_image_ids(2, h // 2, h // 2, "cpu", torch.float32)
                v = pipe.transformer(hidden_states=packed, timestep=t / 1000, guidance=None,
                                     pooled_projections=pooled.expand(2, -1),
                                     encoder_hidden_states=emb.expand(2, -1, -1),
                                     txt_ids=txt_ids, img_ids=img_ids).sample
                f = pipe.vae_scale_factor
                v = pipe._unpack_latents(v, h * f, h * f, f)
            else:
                v = pipe.transformer(hidden_states=x_s, timestep=t,
                                     encoder_hidden_states=emb.expand(2, -1, -1),
                                     pooled_projections=pooled.expand(2, -1)).sample
            ref = x_s - s * v
            sigma = torch.tensor(s / (1 - s), dtype=torch.float32)
            got = m.denoiser(x_s / (1 - s), sigma)
            print(f"REL {kind} s={s:.4f} {_rel(got, ref):.2e}")
            assert _rel(got, ref) <= 1e-3, (kind, s, _rel(got, ref))


@pytest.mark.parametrize("kind", [*VP, *FLOW])
def test_zeroed_network_closed_form(kind, tmp_path):
    m = load_model(cached(kind), cache_dir=tmp_path, image_size=SIZE.get(kind))
    out_layer = m.network.conv_out if hasattr(m.network, "conv_out") else m.network.proj_out
    with torch.no_grad():
        for p in out_layer.parameters():
            p.zero_()
    y = torch.randn(3, m.codec.latent_channels, *(m.image_size // m.codec.scale_factor,) * 2)
    sigma = 0.7
    with torch.no_grad():
        got = m.denoiser(y, sigma)
    if m.denoiser.__class__.__name__ == "FlowDenoiser":
        want = y / (1 + sigma)  # v = 0: D = x_s = (1 - s) y
    elif m.denoiser.prediction_type == "v_prediction":
        want = y / (1 + sigma**2)  # v = 0: eps = sigma abar y, D = y (1 - sigma^2 abar)
    else:
        want = y  # eps = 0
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
