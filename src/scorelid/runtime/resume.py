"""Resumable runs: one settings stamp, one content fingerprint, one directory of finished parts.

Every long job of scorelid (``train``, ``estimate``, ``images``, ``bench``) keeps its unfinished
work in a directory beside its output and resumes from it when the same command is run again.
This module is the bookkeeping they share:

* ``fingerprint(obj)``: a short content hash of data (a numpy array or tensor, by its bytes) or of
  settings (a JSON-able dict), to tell one job's inputs from another's;
* ``settings_diff(old, new)``: the keys whose values differ between two settings stamps;
* ``claim(dir, settings, ...)``: start a run directory, or check that the one there was made by
  the same settings (else a ``ValueError`` naming the differing keys, or, with ``force``, start
  over);
* ``Parts``: finished chunks of a run, one ``.npy`` per chunk, written atomically, so that an
  interrupted run loses at most the chunk in progress.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from scorelid.runtime.io import atomic_path, atomic_write_json

__all__ = ["STAMP_NAME", "Parts", "claim", "fingerprint", "read_stamp", "settings_diff"]

#: The settings stamp's file name inside a run directory.
STAMP_NAME = "run.json"


def fingerprint(obj: Any) -> str:
    """16 hex digits of SHA-256: of an array's bytes (numpy, or a tensor moved to the CPU, in its own
    dtype), or of a JSON-able object's canonical JSON (sorted keys; other objects by ``str``)."""
    if hasattr(obj, "detach"):  # a torch tensor
        obj = obj.detach().cpu().contiguous().numpy()
    if isinstance(obj, np.ndarray):
        data = np.ascontiguousarray(obj).tobytes()
    else:
        data = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def settings_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Keys of ``new`` whose value differs in ``old`` (every key when there is no ``old``), plus
    keys only ``old`` has; in ``new``'s order."""
    if old is None:
        return list(new)
    return [k for k in new if old.get(k) != new[k]] + [k for k in old if k not in new]


def read_stamp(run_dir: str | os.PathLike, name: str = STAMP_NAME) -> dict[str, Any] | None:
    """The settings a run directory was started with; ``None`` if there is none (or it is unreadable)."""
    path = Path(run_dir) / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def claim(
    run_dir: str | os.PathLike,
    settings: dict[str, Any],
    *,
    force: bool = False,
    name: str = STAMP_NAME,
    refusal: str = "holds a run with other settings ({keys}); delete it or pass --force to start over",
) -> bool:
    """Start ``run_dir`` for a run with ``settings``, or take over the one there if it has the same.

    Args:
        run_dir: the directory of the run's unfinished work (created if missing).
        settings: what makes the run's numbers what they are (JSON-able).
        force: discard a directory made with other settings instead of refusing it.
        name: the stamp's file name.
        refusal: the message after ``"<run_dir> "`` when refused; ``{keys}`` is replaced by the
            differing keys.

    Returns:
        ``True`` when an existing run with the same settings is resumed, ``False`` for a new one.

    Raises:
        ValueError: ``run_dir`` holds a run with other settings (and ``force`` is not set).
    """
    path = Path(run_dir)
    old = read_stamp(path, name) if path.is_dir() else None
    if old is not None or (path / name).exists():
        diff = settings_diff(old, settings)
        if not diff:
            return True
        if not force:
            raise ValueError(f"{path} " + refusal.format(keys=", ".join(diff)))
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path / name, settings)
    return False


class Parts:
    """Finished chunks of a run as ``<dir>/<start:012d>.npy``, keyed by their first index."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.dir = Path(run_dir)

    def path(self, start: int) -> Path:
        return self.dir / f"{start:012d}.npy"

    def has(self, start: int) -> bool:
        return self.path(start).exists()

    def save(self, start: int, arr: np.ndarray) -> None:
        """Write one chunk atomically (a killed run leaves no half-written part)."""
        with atomic_path(self.path(start)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(arr), allow_pickle=False)

    def load(self, start: int) -> np.ndarray:
        return np.load(self.path(start), allow_pickle=False)

    def remove(self) -> None:
        """Delete the whole directory (once the final output is written)."""
        shutil.rmtree(self.dir, ignore_errors=True)
