"""Weight-only quantization of a denoising network (int8 / int4) with optimum-quanto.

Why optimum-quanto and not torchao: on this CPU build torchao 0.18 quantizes int8 weight-only but
every form of its int4 weight-only config needs a CUDA build (``IntxWeightOnlyConfig`` runs but
keeps int4 values unpacked in int8 bytes); optimum-quanto packs int4 and runs int8 and int4 on CPU
and on CUDA, so one code path serves both machines.

Quantized layers use ``autograd.Function``s without functorch support: Jacobians through them must
use reverse mode (``ad="reverse"``; ``"auto"`` falls back to it).  Activations stay in the model's
float dtype; only ``nn.Linear`` weights are quantized by default (the transformer's and UNet's
attention/MLP weights, most of the parameters).  Convolutions can be included with
``include_conv=True``, except in bfloat16 where quanto's quantized ``Conv2d`` fails on a float32
bias.  In bfloat16, linear layers whose ``in_features`` is not a multiple of 16 are left
unquantized: quanto's bfloat16 int8 CPU kernel crashes the process on them (checked with
optimum-quanto 0.2.7; real SD layers are multiples of 64, tiny test models are not).
"""

from __future__ import annotations

import torch
from torch import nn

from scorelid.errors import MissingDependencyError

__all__ = ["QUANTS", "quantize_weights", "quantized_fraction"]

QUANTS = ("none", "int8", "int4")


def quantize_weights(module: nn.Module, quant: str, include_conv: bool = False) -> nn.Module:
    """Quantize ``module``'s weights in place to ``quant`` (``"none"``/``"int8"``/``"int4"``); returns it."""
    if quant not in QUANTS:
        raise ValueError(f"quant must be one of {QUANTS}, got {quant!r}")
    if quant == "none":
        return module
    try:
        from optimum.quanto import freeze, qint4, qint8, quantize
    except ImportError as exc:  # pragma: no cover - dependency of the images extra
        raise MissingDependencyError(
            "quantization needs optimum-quanto: pip install 'scorelid[images]'") from exc
    dtype = next(module.parameters()).dtype
    exclude = [
        name
        for name, m in module.named_modules()
        if (isinstance(m, nn.Conv1d | nn.Conv2d | nn.ConvTranspose2d)
        and (not include_conv or dtype == torch.bfloat16))
        # quanto's bfloat16 int8 CPU kernel crashes (segfault) when in_features % 16 != 0
        or (isinstance(m, nn.Linear) and dtype == torch.bfloat16 and m.in_features % 16 != 0)
    ]
    quantize(module, weights=qint8 if quant == "int8" else qint4, exclude=exclude or None)
    freeze(module)
    for m in module.modules():
        if type(getattr(m, "weight", None)).__name__ not in ("Parameter", "Tensor", "NoneType"):
            m.register_forward_pre_hook(_contiguous_input)
            m.register_forward_hook(_contiguous_grad)
    if quantized_fraction(module) == 0:
        raise ValueError(f"{type(module).__name__} has no layers that could be quantized to {quant}")
    return module


def _contiguous_input(module: nn.Module, args: tuple) -> tuple:
    """quanto's backward views its saved input and the incoming gradient as 2-D, which fails on
    non-contiguous tensors (SD3 attention); hand it contiguous ones (with ``_ContiguousGrad``)."""
    return (args[0].contiguous(), *args[1:]) if args else args


def _contiguous_grad(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
    return _ContiguousGrad.apply(out) if torch.is_grad_enabled() and out.requires_grad else out


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward hands on a contiguous gradient (quanto views it too)."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


def quantized_fraction(module: nn.Module) -> float:
    """Fraction of ``nn.Linear``/conv weight elements held as quantized tensors."""
    total = quant = 0
    for m in module.modules():
        w = getattr(m, "weight", None)
        if isinstance(m, nn.Linear | nn.Conv2d) and w is not None:
            total += w.numel()
            if type(w).__name__ not in ("Parameter", "Tensor"):
                quant += w.numel()
    return quant / total if total else 0.0
