"""Rectified-flow / flow-matching models (SD3, SD3.5) as a VE denoiser ``D(y, sigma)``.

The model sees ``x_s = (1 - s) x + s eps`` with ``s`` in ``[0, 1]`` at timestep ``1000 s``
(``FlowMatchEulerDiscreteScheduler``; its ``shift`` only reshapes the sampling schedule) and predicts
the velocity ``v = eps - x``.  On the VE scale ``y = x + sigma eps = x_s / (1 - s)`` with

    s = sigma / (1 + sigma),   x_s = (1 - s) y,   D(y, sigma) = x_s - s v_hat(x_s, 1000 s),

since ``x_s - s (eps - x) = x``.  Levels below the scheduler's smallest training level follow the
same policy as VP models (error, or extrapolate with a warning).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from scorelid.adapters.schedule import NoiseLevel, check_below_range
from scorelid.adapters.vp import _module_dtype, call_network, expand_conditioning
from scorelid.denoiser import SigmaLike, sigma_like

__all__ = ["FlowDenoiser"]


class FlowDenoiser:
    """``D(y, sigma)`` from a flow-matching transformer.

    Args:
        transformer: ``transformer(hidden_states=x_s, timestep=t, **conditioning)`` returning
            ``.sample`` (or a tensor) of shape ``[B, C, H, W]``.
        conditioning: keyword tensors with leading dim 1 (SD3: ``encoder_hidden_states``
            ``[1, L, D]`` and ``pooled_projections`` ``[1, P]``).
        num_train_timesteps: timestep of ``s = 1`` (1000).
        s_min: smallest trained flow time (the scheduler's ``sigma_min``); 0 accepts any sigma.
        below_range: ``"error"`` or ``"extrapolate"``.
        dtype: the network's dtype (default: its first floating parameter's).
    """

    def __init__(
        self,
        transformer: nn.Module,
        conditioning: Mapping[str, Tensor] | None = None,
        num_train_timesteps: int = 1000,
        s_min: float = 0.0,
        below_range: str = "error",
        dtype: torch.dtype | None = None,
    ) -> None:
        check_below_range(1.0, 0.0, below_range, "")
        self.transformer = transformer
        self.conditioning = dict(conditioning or {})
        self.num_train_timesteps = int(num_train_timesteps)
        self.s_min = float(s_min)
        self.below_range = below_range
        self.dtype = dtype or _module_dtype(transformer)
        self.exit_inference_mode = False  # set for weight-quantized networks

    @property
    def sigma_min(self) -> float:
        """Smallest trained VE level ``s_min / (1 - s_min)``."""
        return self.s_min / (1 - self.s_min)

    def resolve(self, sigma: float) -> NoiseLevel:
        """The timestep the network receives for VE ``sigma`` (``1000 sigma / (1 + sigma)``)."""
        extra = check_below_range(float(sigma), self.sigma_min, self.below_range, "this model")
        s = float(sigma) / (1 + float(sigma))
        return NoiseLevel(float(sigma), float(sigma), s * self.num_train_timesteps, extra)

    def __call__(self, y: Tensor, sigma: SigmaLike) -> Tensor:
        """Posterior mean ``[B, C, H, W]`` for noisy latents ``y`` ``[B, C, H, W]``."""
        sig = sigma_like(sigma, y)
        check_below_range(float(sig.detach().min()), self.sigma_min, self.below_range, "this model")
        s = sig / (1 + sig)
        x_s = (1 - s) * y
        t = (s.detach().reshape(-1) * self.num_train_timesteps).to(torch.float32)
        cond = expand_conditioning(self.conditioning, y.shape[0], self.dtype)
        out = call_network(
            self.transformer, self.exit_inference_mode, hidden_states=x_s.to(self.dtype), timestep=t, **cond
        )
        v = (out.sample if hasattr(out, "sample") else out).to(y.dtype)
        return x_s - s * v
