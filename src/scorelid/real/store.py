"""The output directory of the real-data benchmark (``scorelid real --out DIR``): the one module
that knows its file layout.  Every file is written atomically (``scorelid.runtime.io``)::

    DIR/results.json                       the results dictionary of ``run_real``
    DIR/summary.csv                        one row per (part, method, metric): part, method, metric, value
    DIR/points_digits.csv                  per training digit: label, png_bytes, LID of each of METHODS
    DIR/points_patches.csv                 per training patch: png_bytes, LID of each of METHODS
    DIR/anomaly.csv                        per point of each set: set, method, lid
    DIR/points_unet.csv                    per held-out digit: the MLP's and each UNet's DSM/FLIPD LIDs
    DIR/extremes.png, digits_per_class.png, anomaly.png    figures (``scorelid.real.report``)
    DIR/real.md                            the markdown section
    DIR/models/mlp_<data>/                 the vector MLP trained on ``digits`` / ``patches``
    DIR/models/unet_<prediction>/          the diffusers UNet (``epsilon`` / ``v_prediction``)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scorelid.runtime.io import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["METHODS", "RealDir", "load_results"]

#: the LID estimators of every part (columns of the per-point files)
METHODS = ("dsm", "flipd", "mle", "twonn")


def _write_csv(path: Path, columns: dict[str, Any]) -> None:
    """A CSV with one column per key (equal-length arrays or lists), no index column."""
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame(columns).to_csv(tmp, index=False)


@dataclass(frozen=True)
class RealDir:
    """An output directory ``root`` and the files inside it (nothing is created until written)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def mlp_dir(self, data: str) -> Path:
        """Where the vector MLP of ``data`` (``"digits"``, ``"patches"``) is kept."""
        return self.root / "models" / f"mlp_{data}"

    def unet_dir(self, prediction: str) -> Path:
        """Where the UNet trained with ``prediction`` (``"epsilon"``, ``"v_prediction"``) is kept."""
        return self.root / "models" / f"unet_{prediction}"

    def figure(self, name: str) -> Path:
        return self.root / name

    @property
    def markdown(self) -> Path:
        return self.root / "real.md"

    def write_points(self, data: str, columns: dict[str, np.ndarray]) -> None:
        """``points_<data>.csv``: per-point columns (``[N]`` each)."""
        _write_csv(self.root / f"points_{data}.csv", columns)

    def write_anomaly(self, rows: list[tuple[str, str, float]]) -> None:
        """``anomaly.csv``: one ``(set, method, lid)`` row per point and method."""
        _write_csv(self.root / "anomaly.csv", {"set": [r[0] for r in rows], "method": [r[1] for r in rows],
                                               "lid": [r[2] for r in rows]})

    def write_results(self, res: dict[str, Any], summary: dict[str, list], markdown: str) -> None:
        """``results.json``, ``summary.csv`` (columns ``summary``), then ``real.md``."""
        atomic_write_json(self.root / "results.json", res)
        _write_csv(self.root / "summary.csv", summary)
        atomic_write_text(self.markdown, markdown)


def load_results(out_dir: str | os.PathLike) -> dict[str, Any]:
    """``results.json`` of a finished run (``FileNotFoundError`` if absent)."""
    p = Path(out_dir) / "results.json"
    if not p.is_file():
        raise FileNotFoundError(f"no real-data results at {p}")
    return json.loads(p.read_text(encoding="utf-8"))
