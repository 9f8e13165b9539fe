"""File input and output shared by the CLI and the benchmark: point arrays, atomic writes.

Every output file is written atomically: to a temporary file in the same directory, flushed,
then renamed over the target, so an interrupted run never leaves a half-written file that looks
complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["POINT_SUFFIXES", "atomic_path", "atomic_write_json", "atomic_write_text", "load_points",
           "refuse_overwrite"]

POINT_SUFFIXES = (".npy", ".npz", ".csv", ".parquet")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    Usage: ``with atomic_path(out) as tmp: df.to_parquet(tmp)``.  On error the temporary file is
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write(path: str | os.PathLike, write: Callable[[IO[str]], Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    _atomic_write(path, lambda fh: fh.write(text))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    _atomic_write(path, lambda fh: json.dump(obj, fh, indent=2, sort_keys=False))


def load_points(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """Read a point array ``[N, *shape]`` from ``.npy``, ``.npz``, ``.csv`` or ``.parquet``.

    ``.npz``: the array named ``key`` (default: the only array, or ``"x"``).  ``.csv``: numeric
    columns, with or without a header row.  ``.parquet``: all numeric columns.  Raises
    ``FileNotFoundError`` or ``ValueError`` naming the problem; never returns an empty array.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = list(z.files)
                if key is None:
                    key = names[0] if len(names) == 1 else "x"
                if key not in names:
                    raise ValueError(f"{path}: no array {key!r} in .npz (has {names})")
                arr = z[key]
        elif suffix == ".csv":
            arr = _read_csv(path)
        elif suffix == ".parquet":
            import pandas as pd

            arr = pd.read_parquet(path).select_dtypes("number").to_numpy()
        else:
            raise ValueError(
                f"{path}: unsupported data format {suffix!r}; use one of {POINT_SUFFIXES}"
            )
    except (ValueError, OSError, EOFError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path}: cannot read data ({exc})") from exc
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{path}: data must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 1:
        raise ValueError(f"{path}: data must be 2-D [N, n] (or [N, *shape]), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{path}: data is empty (shape {arr.shape})")
    return arr.astype(np.float32, copy=False)


def _read_csv(path: Path) -> np.ndarray:
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    try:
        [float(v) for v in first.strip().split(",")]
        skip = 0
    except ValueError:
        skip = 1
    return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)


def refuse_overwrite(path: str | os.PathLike, force: bool) -> None:
    """Raise ``FileExistsError`` if ``path`` (a finished output file or directory) exists and not ``force``.

    Outputs are written atomically, so a file at ``path`` is always a finished one; a directory
    counts as finished when it exists and is not empty.  In-progress state (``OUT.parts/``,
    ``OUT.partial/``, checkpoints) is resumed, not refused.
    """
    p = Path(path)
    exists = p.is_file() or (p.is_dir() and any(p.iterdir()))
    if exists and not force:
        raise FileExistsError(f"{p} already exists (a finished output); pass --force to overwrite it")
