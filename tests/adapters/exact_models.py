"""Modules whose output is the exact optimal prediction for Gaussian subspace data (latents ``[C, H, W]``).

They mimic the call signatures of a diffusers UNet and SD3 transformer, and invert the timestep
map independently of the adapters (``np.interp`` of the schedule's ``log sigma`` table), so a test
through an adapter checks the sigma -> timestep map and the parameterisation together.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from torch import Tensor, nn

from scorelid.data.analytic import GaussianSubspace


class ExactVPUNet(nn.Module):
    """Exact epsilon or v prediction of a DDPM-trained UNet for ``N(0, U U^T)`` data."""

    def __init__(self, gs: GaussianSubspace, shape, alphas_cumprod: Tensor, prediction_type: str):
        super().__init__()
        self.gs, self.shape, self.prediction_type = gs, tuple(shape), prediction_type
        a = alphas_cumprod.double().numpy()
        self.log_sigmas = np.log(np.sqrt((1 - a) / a))
        self.dummy = nn.Parameter(torch.zeros(()))  # gives the module a dtype
        self.calls = 0

    def forward(self, x_t: Tensor, t: Tensor, encoder_hidden_states: Tensor):
        assert encoder_hidden_states.shape[0] == x_t.shape[0]
        self.calls += 1
        tt = t.detach().double().cpu().numpy()
        ls = np.interp(tt, np.arange(len(self.log_sigmas)), self.log_sigmas)
        slope = self.log_sigmas[1] - self.log_sigmas[0]
        ls = np.where(tt < 0, self.log_sigmas[0] + tt * slope, ls)  # the line below timestep 0
        sigma = torch.as_tensor(np.exp(ls), dtype=x_t.dtype).reshape(-1, 1, 1, 1)
        sqrt_abar = (1 + sigma**2).rsqrt()
        y = x_t / sqrt_abar
        D = self.gs(y.reshape(y.shape[0], -1), sigma.reshape(-1)).reshape(y.shape)
        eps = (y - D) / sigma
        if self.prediction_type == "epsilon":
            return SimpleNamespace(sample=eps)
        return SimpleNamespace(sample=sqrt_abar * eps - sigma * sqrt_abar * D)  # v = √ᾱ ε − √(1−ᾱ) x̂


class ExactFlowTransformer(nn.Module):
    """Exact velocity ``E[eps - x | x_s]`` of a flow-matching transformer for ``N(0, U U^T)`` data."""

    def __init__(self, gs: GaussianSubspace, num_train_timesteps: int = 1000):
        super().__init__()
        self.gs, self.T = gs, num_train_timesteps
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, hidden_states: Tensor, timestep: Tensor, encoder_hidden_states, pooled_projections):
        assert encoder_hidden_states.shape[0] == pooled_projections.shape[0] == hidden_states.shape[0]
        s = (timestep.detach().double() / self.T).to(hidden_states.dtype).reshape(-1, 1, 1, 1)
        y = hidden_states / (1 - s)
        sigma = s / (1 - s)
        D = self.gs(y.reshape(y.shape[0], -1), sigma.reshape(-1)).reshape(y.shape)
        return SimpleNamespace(sample=(hidden_states - D) / s)
