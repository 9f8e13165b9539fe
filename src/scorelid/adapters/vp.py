"""VP / DDPM models (SD 1.x, 2.x): an epsilon- or v-prediction UNet as a VE denoiser ``D(y, sigma)``.

With ``abar = 1 / (1 + sigma^2)`` (so ``sigma = sqrt((1 - abar) / abar)``) the VP input is
``x_t = sqrt(abar) x + sqrt(1 - abar) eps = sqrt(abar) y`` for ``y = x + sigma eps``, and

* epsilon prediction: ``D(y) = y - sigma eps_hat(x_t, t)``;
* v prediction (``v = sqrt(abar) eps - sqrt(1 - abar) x``):
  ``eps_hat = sqrt(abar) v_hat + sqrt(1 - abar) x_t``.

The network runs in its own dtype; the VE-scale arithmetic above runs in ``y``'s dtype (float32
latents), so half-precision models lose no accuracy in the subtraction ``y - sigma eps_hat``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from scorelid.adapters.schedule import (
    NoiseLevel,
    check_below_range,
    log_interp_timestep,
    timestep_sigma,
    vp_sigmas,
)
from scorelid.denoiser import SigmaLike, sigma_like

__all__ = ["PREDICTION_TYPES", "VPDenoiser"]

PREDICTION_TYPES = ("epsilon", "v_prediction")


def _module_dtype(module: nn.Module) -> torch.dtype:
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def expand_conditioning(cond: Mapping[str, Tensor], batch: int, dtype: torch.dtype) -> dict[str, Tensor]:
    """Conditioning tensors ``[1, ...]`` -> ``[batch, ...]`` in the network's dtype."""
    return {k: v.to(dtype).expand(batch, *v.shape[1:]) for k, v in cond.items()}


def call_network(net: nn.Module, exit_inference_mode: bool, *args, **kwargs):
    """``net(*args, **kwargs)``; with ``exit_inference_mode`` an inference-mode call runs under
    ``no_grad`` instead (optimum-quanto's int4 layers fail on inference tensors)."""
    if not (exit_inference_mode and torch.is_inference_mode_enabled()):
        return net(*args, **kwargs)
    with torch.inference_mode(False), torch.no_grad():
        args = tuple(a.clone() if isinstance(a, Tensor) else a for a in args)
        kwargs = {k: v.clone() if isinstance(v, Tensor) else v for k, v in kwargs.items()}
        return net(*args, **kwargs)


class VPDenoiser:
    """``D(y, sigma)`` from a UNet trained with a discrete VP schedule.

    Args:
        unet: ``unet(x_t, t, encoder_hidden_states=...)`` returning ``.sample`` (or a tensor)
            of the input's shape ``[B, C, H, W]``.
        alphas_cumprod: ``[T]`` the scheduler's ``abar_t``.
        prediction_type: ``"epsilon"`` or ``"v_prediction"``.
        conditioning: keyword tensors with leading dim 1, e.g. the empty-prompt
            ``encoder_hidden_states`` ``[1, 77, dim]``; expanded to the batch.
        below_range: ``"error"`` or ``"extrapolate"`` (see ``scorelid.adapters.schedule``).
        snap: give the network the nearest trained (integer) timestep.
        dtype: the network's dtype (default: its first floating parameter's).
    """

    def __init__(
        self,
        unet: nn.Module,
        alphas_cumprod: Tensor,
        prediction_type: str = "epsilon",
        conditioning: Mapping[str, Tensor] | None = None,
        below_range: str = "error",
        snap: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r} "
                "(sample prediction is not supported)"
            )
        check_below_range(1.0, 0.0, below_range, "")  # validates the policy name
        self.unet = unet
        self.sigmas = vp_sigmas(torch.as_tensor(alphas_cumprod))
        self.prediction_type = prediction_type
        self.conditioning = dict(conditioning or {})
        self.below_range = below_range
        self.snap = snap
        self.dtype = dtype or _module_dtype(unet)
        self.exit_inference_mode = False  # set for weight-quantized networks

    @property
    def sigma_min(self) -> float:
        """Smallest trained VE level (timestep 0)."""
        return float(self.sigmas[0])

    def timestep(self, sigma: Tensor) -> Tensor:
        """Fractional timesteps ``[B]`` (float64) for VE levels ``sigma`` ``[B]``; applies the policy."""
        check_below_range(float(sigma.min()), self.sigma_min, self.below_range, "this model")
        return log_interp_timestep(sigma, self.sigmas, snap=self.snap)

    def resolve(self, sigma: float) -> NoiseLevel:
        """The timestep and VE level the network receives for a requested ``sigma``."""
        s = torch.tensor([float(sigma)], dtype=torch.float64)
        t = self.timestep(s)
        used = float(timestep_sigma(t, self.sigmas)[0]) if self.snap else float(sigma)
        return NoiseLevel(float(sigma), used, float(t[0]), bool(float(sigma) < self.sigma_min * (1 - 1e-6)))

    def __call__(self, y: Tensor, sigma: SigmaLike) -> Tensor:
        """Posterior mean ``[B, C, H, W]`` for noisy latents ``y`` ``[B, C, H, W]``."""
        s = sigma_like(sigma, y)  # [B, 1, 1, 1], y's dtype
        t = self.timestep(s.detach().reshape(-1).to(torch.float64))
        sqrt_abar = (1 + s * s).rsqrt()
        x_t = sqrt_abar * y
        cond = expand_conditioning(self.conditioning, y.shape[0], self.dtype)
        t = t.to(device=y.device, dtype=torch.float32)
        out = call_network(self.unet, self.exit_inference_mode, x_t.to(self.dtype), t, **cond)
        pred = (out.sample if hasattr(out, "sample") else out).to(y.dtype)
        if self.prediction_type == "epsilon":
            eps = pred
        else:
            eps = sqrt_abar * pred + (s * sqrt_abar) * x_t  # sqrt(1 - abar) = sigma sqrt(abar)
        return y - s * eps
