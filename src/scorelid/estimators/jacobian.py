"""Jacobian traces of a row-wise map ``f: [R, *shape] -> [R, *shape]`` (a denoiser at fixed sigma).

``trace_exact`` takes the ``n`` diagonal entries by batched Jacobian-vector products (forward
mode, ``torch.func.jvp`` under ``vmap``); ``trace_hutchinson`` estimates ``tr J = E[v^T J v]`` with
Rademacher probes.  ``ad`` chooses the mode: ``"forward"`` (JVPs), ``"reverse"`` (VJPs by plain
``torch.autograd.grad``, one backward pass per tangent; needed for modules whose autograd functions
lack forward-mode or functorch rules, e.g. weight-quantized layers), or
``"auto"`` (forward, falling back to reverse if forward mode is not implemented; an out-of-memory
error is not a missing rule and is raised as it is, so that the caller halves its batch).  Forward mode
runs with the math kernel of scaled-dot-product attention, the only one with forward-mode rules.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from scorelid.runtime.guards import is_out_of_memory

RowMap = Callable[[Tensor], Tensor]

__all__ = ["AD_MODES", "trace_exact", "trace_hutchinson"]

AD_MODES = ("auto", "forward", "reverse")


def _products(f: RowMap, y: Tensor, vs: Tensor, mode: str) -> Tensor:
    """``J v`` (forward) or ``J^T v`` (reverse) for a stack of tangents ``vs`` ``[m, R, *shape]``."""
    if mode == "forward":
        # no_grad: forward-mode AD does not need the reverse graph, and keeping it (parameters
        # require grad) would chain every chunk's graph into the running trace sum
        with sdpa_kernel([SDPBackend.MATH]), torch.no_grad():
            return torch.vmap(lambda v: torch.func.jvp(f, (y,), (v,))[1])(vs)
    # plain autograd, one backward per tangent: works for autograd.Functions without
    # functorch support (weight-quantized layers), which torch.func.vjp/vmap reject
    with torch.enable_grad():
        y = y.detach().requires_grad_(True)
        out = f(y)
        grads = [
            torch.autograd.grad(out, y, v, retain_graph=i < len(vs) - 1)[0] for i, v in enumerate(vs)
        ]
        return torch.stack(grads)


def _with_fallback(ad: str, run: Callable[[str], Tensor]) -> Tensor:
    if ad not in AD_MODES:
        raise ValueError(f"ad must be one of {AD_MODES}, got {ad!r}")
    if ad != "auto":
        return run(ad)
    try:
        return run("forward")
    except (RuntimeError, NotImplementedError) as exc:
        if is_out_of_memory(exc):  # reverse mode needs more memory, not less: let the batch be halved
            raise
        return run("reverse")


def trace_exact(f: RowMap, y: Tensor, chunk: int = 64, ad: str = "auto") -> Tensor:
    """Exact ``tr (df/dy)`` per row, ``[R]`` float32 or wider, from ``n`` products in chunks.

    ``chunk`` is the number of basis vectors pushed through ``f`` together (memory ~ chunk x R rows).
    """
    rows, n = y.shape[0], y[0].numel()

    def run(mode: str) -> Tensor:
        total = torch.zeros(rows, dtype=torch.float64, device=y.device)
        for start in range(0, n, chunk):
            idx = torch.arange(start, min(start + chunk, n), device=y.device)
            vs = torch.zeros(len(idx), rows, n, dtype=y.dtype, device=y.device)
            vs[torch.arange(len(idx)), :, idx] = 1
            prods = _products(f, y, vs.reshape(len(idx), *y.shape), mode).reshape(
                len(idx), rows, n
            )
            diag = prods[torch.arange(len(idx)), :, idx]  # [m, R]
            total += diag.to(torch.float64).sum(0)
        return total

    return _with_fallback(ad, run)


def trace_hutchinson(f: RowMap, y: Tensor, probes: Tensor, ad: str = "auto") -> Tensor:
    """Hutchinson estimate of ``tr (df/dy)`` per row: mean over probes of ``v^T J v``.

    Args:
        probes: ``[R, m, *shape]`` Rademacher (or Gaussian) probes, ``m`` per row.

    Returns:
        ``[R]`` float64.
    """
    vs = probes.transpose(0, 1).to(y.dtype)  # [m, R, *shape]

    def run(mode: str) -> Tensor:
        prods = _products(f, y, vs, mode)
        quad = (vs.to(torch.float32) * prods.to(torch.float32)).flatten(2).sum(2)  # [m, R]
        return quad.to(torch.float64).mean(0)

    return _with_fallback(ad, run)
