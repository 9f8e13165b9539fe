"""Options and checks shared by the subcommands.

* ``add_force(parser)`` adds ``--force``; ``refuse_overwrite(path, force)`` raises
  ``FileExistsError`` naming the path when a finished output exists and ``--force`` was not given.
  A finished output is one that was written completely (outputs are written atomically, so a file
  at ``path`` is always a finished one); in-progress state (``OUT.parts/``, ``OUT.partial/``,
  checkpoints) is not an output and is resumed, not refused.
* ``write_table(path, columns)`` writes a whole table; ``TableWriter(path)`` writes the same file
  a block of rows at a time (streamed output, one parquet row group per block), atomically.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

from scorelid.runtime.io import atomic_path, atomic_write_text, refuse_overwrite
from scorelid.runtime.resume import fingerprint

__all__ = ["OUT_SUFFIXES", "TableWriter", "add_estimation_options", "add_force", "data_digest",
           "model_stamp", "refuse_overwrite", "write_table"]


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


def model_stamp(model: str | os.PathLike) -> int:
    """When the model was last written (ns): a checkpoint directory's weights, or a model file itself
    (``.onnx``); part of a resumable run's settings, so new weights are not mixed with old parts."""
    path = Path(model)
    return (path if path.is_file() else path / "model.safetensors").stat().st_mtime_ns


def _check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in OUT_SUFFIXES:
        raise ValueError(f"--out must end in one of {OUT_SUFFIXES}, got {path.name!r}")
    return suffix


def _csv_lines(columns: dict[str, np.ndarray | list]) -> list[str]:
    """One CSV line per row (floats by ``repr``: they read back exactly)."""
    cols = [np.asarray(c) for c in columns.values()]
    return [",".join(repr(float(v)) if isinstance(v, np.floating) else str(v) for v in row)
            for row in zip(*cols, strict=True)]


def write_table(path: str | Path, columns: dict[str, np.ndarray | list]) -> None:
    """Write equal-length columns to ``path`` (``.csv`` or ``.parquet``) atomically."""
    path = Path(path)
    if _check_suffix(path) == ".parquet":
        import pandas as pd

        with atomic_path(path) as tmp:
            pd.DataFrame(columns).to_parquet(tmp, index=False)
        return
    atomic_write_text(path, "\n".join([",".join(columns), *_csv_lines(columns)]) + "\n")


class TableWriter:
    """``write_table`` a block of rows at a time: ``with TableWriter(out) as w: w.append(columns)``.

    Rows go to a temporary file beside ``path`` as they come; leaving the ``with`` block normally
    renames it over ``path`` (an error removes it, and ``path`` is left as it was).  A ``.csv`` is
    byte-identical to ``write_table`` of all rows at once; a ``.parquet`` holds one row group per
    block, with the schema (and pandas metadata) ``write_table`` gives, so it reads back the same.
    Every block must have the same columns with the same types.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.suffix = _check_suffix(self.path)
        self.rows = 0
        self._atomic: Any = None
        self._fh: Any = None
        self._writer: Any = None
        self._schema: Any = None

    def __enter__(self) -> TableWriter:
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        return self

    def append(self, columns: dict[str, np.ndarray | list]) -> None:
        """Write the rows of equal-length ``columns`` after those written before."""
        if self.suffix == ".csv":
            if self._fh is None:
                self._fh = open(self._tmp, "w", encoding="utf-8")  # closed in __exit__
                self._fh.write(",".join(columns) + "\n")
            lines = _csv_lines(columns)
            self._fh.write("".join(line + "\n" for line in lines))
            self.rows += len(lines)
            return
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(pd.DataFrame(columns), schema=self._schema, preserve_index=False)
        if self._writer is None:
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self._tmp, self._schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def __exit__(self, kind, value, tb) -> bool:
        try:
            if self._fh is not None:
                self._fh.flush()
                if kind is None:
                    os.fsync(self._fh.fileno())
                self._fh.close()
            if self._writer is not None:
                self._writer.close()
        except BaseException as exc:
            if kind is None:
                self._atomic.__exit__(type(exc), exc, exc.__traceback__)
                raise
        return bool(self._atomic.__exit__(kind, value, tb))
