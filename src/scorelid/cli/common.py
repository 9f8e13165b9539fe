"""Options and checks shared by the subcommands.

* ``add_force(parser)`` adds ``--force``; ``refuse_overwrite(path, force)`` raises
  ``FileExistsError`` naming the path when a finished output exists and ``--force`` was not given.
  A finished output is one that was written completely (outputs are written atomically, so a file
  at ``path`` is always a finished one); in-progress state (``OUT.parts/``, ``OUT.partial/``,
  checkpoints) is not an output and is resumed, not refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from scorelid.runtime.io import atomic_path, atomic_write_text, refuse_overwrite
from scorelid.runtime.resume import fingerprint

__all__ = ["OUT_SUFFIXES", "add_estimation_options", "add_force", "data_digest", "refuse_overwrite",
           "write_table"]


def add_force(parser: argparse.ArgumentParser) -> None:
    """Add ``--force``: overwrite a finished output instead of refusing."""
    parser.add_argument("--force", action="store_true",
                        help="overwrite a finished output (default: refuse and exit non-zero)")


def add_estimation_options(p: argparse.ArgumentParser) -> None:
    """The options ``scorelid estimate`` and ``scorelid curve`` share (noise, batching, device, chunks)."""
    p.add_argument("--n-noise", type=int, default=None, help="noise draws per point (method default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="rows per denoiser call")
    p.add_argument("--trace", choices=("exact", "hutchinson"), default=None, help="flipd/ism trace")
    p.add_argument("--n-probes", type=int, default=None, help="Hutchinson probes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--arch", choices=("mlp", "dit"), default=None, help="refuse a model of another arch")
    p.add_argument("--chunk", type=int, default=256,
                   help="points per resumable chunk (also the unit shared among torchrun processes)")
    p.add_argument("--any-sigma", action="store_true",
                   help="allow noise levels outside the range the model was trained on")
    p.add_argument("--no-progress", action="store_true")


def data_digest(x: np.ndarray) -> str:
    """Content hash of the points: a parts directory is only reused for the same data."""
    return fingerprint(np.ascontiguousarray(x))


#: Table formats of ``--out`` (estimate, curve).
OUT_SUFFIXES = (".csv", ".parquet")


def write_table(path: str | Path, columns: dict[str, np.ndarray | list]) -> None:
    """Write equal-length columns to ``path`` (``.csv`` or ``.parquet``) atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUT_SUFFIXES:
        raise ValueError(f"--out must end in one of {OUT_SUFFIXES}, got {path.name!r}")
    if suffix == ".parquet":
        import pandas as pd

        with atomic_path(path) as tmp:
            pd.DataFrame(columns).to_parquet(tmp, index=False)
        return
    names = list(columns)
    cols = [np.asarray(columns[c]) for c in names]
    lines = [",".join(names)]
    for row in zip(*cols, strict=True):
        lines.append(",".join(repr(float(v)) if isinstance(v, np.floating) else str(v) for v in row))
    atomic_write_text(path, "\n".join(lines) + "\n")
