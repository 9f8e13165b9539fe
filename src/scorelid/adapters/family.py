"""What the loader needs to know about one model family (one small spec per family module).

A family is told apart by ``model_index.json``'s ``_class_name`` (the pipeline class).  Its spec
names the network component and class, whether the schedule is VP (``VPDenoiser``) or flow matching
(``FlowDenoiser``), the text components, how a prompt becomes conditioning tensors (the pipeline's
own ``encode_prompt``), and how the network is called (``wrap``: the calling convention of the
denoiser classes, ``net(x_t, t, **conditioning)`` / ``net(hidden_states=..., timestep=...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

__all__ = ["FLOW_SCHEDULERS", "VP_SCHEDULERS", "Encoder", "FamilySpec", "Wrapped"]

# Schedulers whose config describes a discrete VP training schedule (betas -> alphas_cumprod).
VP_SCHEDULERS = (
    "DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "LMSDiscreteScheduler", "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler", "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
    "UniPCMultistepScheduler", "DEISMultistepScheduler", "LCMScheduler", "TCDScheduler",
)
FLOW_SCHEDULERS = ("FlowMatchEulerDiscreteScheduler", "FlowMatchHeunDiscreteScheduler")

# prompt -> conditioning tensors (float32, leading dim 1)
Encoder = Callable[[str], dict[str, Tensor]]


class Wrapped(nn.Module):
    """A network behind a family's calling convention; ``net`` is the diffusers model itself."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    @property
    def config(self):
        return self.net.config


@dataclass(frozen=True)
class FamilySpec:
    """One model family.

    Attributes:
        name: short name recorded in results (``sd2``, ``sdxl``, ``flux``, ...).
        pipelines: ``model_index.json`` ``_class_name`` values of this family.
        network, network_class: the component folder and its diffusers class.
        kind: ``"vp"`` or ``"flow"``.
        text_parts: text encoders and tokenizers (needed once per prompt, then cached).
        latent: True when a VAE maps images to the measured space; False for pixel-space models.
        make_encoder: ``(path, image_size) -> Encoder`` (None: unconditional).
        wrap: ``(net, options) -> module`` with the denoiser's calling convention (None: as is).
        default_size: ``(network config, vae scale factor) -> image size in pixels``.
        timestep_scale: flow models: the network's timestep for ``s = 1`` (SD3 1000, FLUX 1).
    """

    name: str
    pipelines: tuple[str, ...]
    network: str
    network_class: str
    kind: str
    text_parts: tuple[str, ...] = ()
    latent: bool = True
    make_encoder: Callable[[Path, int], Encoder] | None = None
    wrap: Callable[[nn.Module, dict], nn.Module] | None = None
    default_size: Callable[[dict, int], int] | None = None
    timestep_scale: float | None = None

    def image_size(self, net_config: dict, vae_scale: int) -> int:
        if self.default_size is not None:
            return int(self.default_size(net_config, vae_scale))
        return int(net_config["sample_size"]) * vae_scale
