"""Denoiser networks: a residual MLP and a vector DiT, each wrapped in EDM preconditioning."""

from scorelid.nn.dit import DiT
from scorelid.nn.mlp import MLP
from scorelid.nn.precond import ARCHS, EDMDenoiser, build_denoiser, edm_scalings

__all__ = ["ARCHS", "MLP", "DiT", "EDMDenoiser", "build_denoiser", "edm_scalings"]
