"""Numerical and resource guards shared by the estimators and the command line.

* ``NonFiniteWarning``: some points got a non-finite model output (NaN or inf); their LID is NaN.
* ``BatchSizeWarning``: the denoiser ran out of memory and the batch size was halved.
* ``is_out_of_memory(exc)``: ``torch.OutOfMemoryError`` (CUDA, also MPS/XPU) or a ``RuntimeError``
  whose message says "out of memory" (CPU allocators, older torch builds).
* ``lid_flags(lid, n, method)``: per-point flags for the output table: ``"nonfinite"`` (the model
  gave NaN/inf), ``"<method><0"`` / ``"<method>>n"`` (a value outside ``[0, n]``, which no true
  dimension can have: FLIPD and ISM can produce them at too small or too large ``sigma``), ``""``.
* ``check_points_finite(x, where)``: ``ValueError`` naming the first row with NaN/inf values.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "BatchSizeWarning",
    "NonFiniteWarning",
    "check_points_finite",
    "is_out_of_memory",
    "lid_flags",
]


class NonFiniteWarning(RuntimeWarning):
    """Some points' model outputs were NaN or inf; those points' LID is NaN."""


class BatchSizeWarning(RuntimeWarning):
    """Out of memory: the batch size was halved and the batch retried."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error that a smaller batch may avoid."""
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    if oom and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_accelerator_memory() -> None:
    """Return cached blocks to the device after an out-of-memory error (no-op on CPU)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def lid_flags(lid: np.ndarray, n: int, method: str) -> list[str]:
    """Per-point flags ``[N]``: ``"nonfinite"``, ``f"{method}<0"``, ``f"{method}>n"`` or ``""``.

    Args:
        lid: per-point LID ``[N]`` (NaN where the model output was not finite).
        n: the ambient dimension (an LID lies in ``[0, n]``).
        method: the estimator's name, used in the flag text.
    """
    lid = np.asarray(lid, dtype=np.float64)
    flags = np.full(lid.shape, "", dtype=object)
    finite = np.isfinite(lid)
    flags[~finite] = "nonfinite"
    with np.errstate(invalid="ignore"):
        flags[finite & (lid < 0)] = f"{method}<0"
        flags[finite & (lid > n)] = f"{method}>n"
    return flags.tolist()


def check_points_finite(x: np.ndarray, where: str) -> None:
    """``ValueError`` naming ``where`` and the first row of ``x`` ``[N, ...]`` with NaN or inf values."""
    bad = ~np.isfinite(np.asarray(x).reshape(len(x), -1)).all(1)
    if bad.any():
        rows = np.flatnonzero(bad)
        more = f" ({len(rows)} rows in all, e.g. {rows[:5].tolist()})" if len(rows) > 1 else ""
        raise ValueError(f"{where}: row {int(rows[0])} has NaN or inf values{more}")
