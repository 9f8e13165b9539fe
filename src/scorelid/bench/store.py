"""The results store of the manifold benchmark: the one module that knows a results directory's layout.

A results directory ``DIR`` (``scorelid bench --out DIR``) holds::

    DIR/bench.json                          settings stamp {"profile", "fingerprint", "seed"}
    DIR/results.json, DIR/results.csv       every record; CSV columns RECORD_KEYS first
    DIR/units/<manifold>__<arch>.npz        per-point LIDs: one [N_row] float64 array per row key,
                                            and "d_true" [N] (the true LID of each evaluation point)
    DIR/units/<manifold>__<arch>.extra.npz  per-row arrays "<row key>::<name>" (any shape)
    DIR/units/<manifold>__<arch>.json       {"meta": UnitMeta, "records": [ResultRow, ...]}
    DIR/models/<manifold>__<arch>/          the trained model (config.json, model.safetensors, checkpoints)
    DIR/report.md, DIR/*.png                the report (``scorelid.bench.report``)

A unit (one (manifold, arch) pair; arch ``BASELINE_ARCH`` for the k-NN baselines) counts as
finished once its ``.json`` and ``.npz`` exist; the ``.json`` is written last.  Every file is
written atomically (``scorelid.runtime.io``).  Records in ``results.json`` stay plain JSON objects
(``load_records`` returns dicts); ``ResultRow`` is their typed form with the same keys in the same
order, so ``ResultRow.from_dict(r).to_dict() == r`` for every record the runner writes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scorelid.runtime.io import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["BASELINE_ARCH", "RECORD_KEYS", "BenchDir", "ResultRow", "UnitMeta", "UnitRecord", "load_extras",
           "load_records", "model_done", "unit_name", "write_results"]

RECORD_KEYS = ("manifold", "d", "n", "arch", "method", "sigma", "options", "mae", "mean_lid", "seconds",
               "points_per_second", "peak_mem_bytes", "n_points", "device")
#: the unit of the nonparametric baselines (no model): ``<manifold>__knn``
BASELINE_ARCH = "knn"
#: keys every record of ``results.json`` must have (``load_records``)
REQUIRED_KEYS = ("manifold", "d", "arch", "method", "sigma", "mae")
_ROW_KEYS = (*RECORD_KEYS, "n_nonfinite")


def unit_name(manifold: str, arch: str) -> str:
    """The unit's file stem, ``"<manifold>__<arch>"``."""
    return f"{manifold}__{arch}"


def model_done(mdir: Path) -> bool:
    """Whether ``mdir`` holds a finished model (its config and weights)."""
    return (mdir / "config.json").is_file() and (mdir / "model.safetensors").is_file()


# --------------------------------------------------------------------------- typed records


@dataclass
class ResultRow:
    """One result row (a record): an estimator row's MAE (LID units), mean LID, wall ``seconds``,
    ``peak_mem_bytes`` over ``n_points`` evaluation points of a ``d``-dimensional manifold in
    ``R^n``.  ``n_nonfinite``: points without a finite estimate (left out of the MAE); ``extra``:
    further JSON-able fields (e.g. an adaptive row's grid), kept in order after the others."""

    manifold: str
    d: int
    n: int
    arch: str
    method: str
    sigma: float | None
    options: str
    mae: float | None
    mean_lid: float | None
    seconds: float
    points_per_second: float | None
    peak_mem_bytes: int | None
    n_points: int
    device: str
    n_nonfinite: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def update(self, fields: dict[str, Any]) -> None:
        """Set ``fields`` as ``dict.update`` would on the record: known keys in place, others appended."""
        for k, v in fields.items():
            if k in _ROW_KEYS:
                setattr(self, k, v)
            else:
                self.extra[k] = v

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: ``RECORD_KEYS``, ``n_nonfinite`` (when set), then ``extra``."""
        rec = {k: getattr(self, k) for k in RECORD_KEYS}
        if self.n_nonfinite is not None:
            rec["n_nonfinite"] = self.n_nonfinite
        return {**rec, **self.extra}

    @classmethod
    def from_dict(cls, rec: dict[str, Any]) -> ResultRow:
        """The typed form of a record (``ValueError`` when a key of ``RECORD_KEYS`` is missing)."""
        missing = [k for k in RECORD_KEYS if k not in rec]
        if missing:
            raise ValueError(f"record lacks {missing}")
        row = cls(**{k: rec[k] for k in RECORD_KEYS}, n_nonfinite=rec.get("n_nonfinite"))
        row.extra = {k: v for k, v in rec.items() if k not in _ROW_KEYS}
        return row


@dataclass
class UnitMeta:
    """A unit's metadata: its model's training wall ``train_seconds`` and training-loss LID per
    sigma bucket ``lid_by_sigma`` (rows ``{"sigma_lo", "sigma_hi", "sigma_mid", "mean_lid",
    "count"}``); both absent for the baselines.  ``extra``: other keys, kept in order."""

    manifold: str | None = None
    arch: str | None = None
    seed: int | None = None
    train_seconds: float | None = None
    lid_by_sigma: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KEYS = ("manifold", "arch", "seed", "train_seconds", "lid_by_sigma")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (keys that are ``None`` left out)."""
        out = {k: getattr(self, k) for k in self._KEYS if getattr(self, k) is not None}
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, meta: dict[str, Any]) -> UnitMeta:
        known = {k: meta.get(k) for k in cls._KEYS}
        return cls(**known, extra={k: v for k, v in meta.items() if k not in cls._KEYS})


@dataclass
class UnitRecord:
    """A finished unit: ``rows`` (one per estimator row), ``d_true [N]`` (true LIDs of the
    evaluation points), ``per_point`` ``{row key: [N_row]}`` (LIDs, ``N_row <= N``) and ``extras``
    ``{"<row key>::<name>": array}``."""

    meta: UnitMeta
    rows: list[ResultRow]
    d_true: np.ndarray
    per_point: dict[str, np.ndarray]
    extras: dict[str, np.ndarray] = field(default_factory=dict)


# --------------------------------------------------------------------------- the directory


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@dataclass(frozen=True)
class BenchDir:
    """A results directory ``root`` and the paths inside it (nothing is created until written)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def units(self) -> Path:
        return self.root / "units"

    @property
    def stamp(self) -> Path:
        return self.root / "bench.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    def figure(self, name: str) -> Path:
        """The path of the report's figure ``name`` (e.g. ``"mae.png"``)."""
        return self.root / name

    def model_dir(self, manifold: str, arch: str) -> Path:
        return self.root / "models" / unit_name(manifold, arch)

    def _unit(self, manifold: str, arch: str, suffix: str) -> Path:
        return self.units / f"{unit_name(manifold, arch)}{suffix}"

    # ---- settings stamp

    def read_stamp(self) -> dict[str, Any] | None:
        """The settings of the run that made the directory (``None`` when none is recorded)."""
        return json.loads(self.stamp.read_text()) if self.stamp.is_file() else None

    def write_stamp(self, settings: dict[str, Any]) -> None:
        atomic_write_json(self.stamp, settings)

    # ---- units

    def has_units(self) -> bool:
        """Whether the directory holds a units folder (per-unit files)."""
        return self.units.is_dir()

    def unit_done(self, manifold: str, arch: str) -> bool:
        return self._unit(manifold, arch, ".json").is_file() and self._unit(manifold, arch, ".npz").is_file()

    def model_done(self, manifold: str, arch: str) -> bool:
        return model_done(self.model_dir(manifold, arch))

    def save_unit(self, unit: UnitRecord) -> None:
        """Per-point LIDs (``.npz``), extras (``.extra.npz``, when any), then the records
        (``.json``): the unit counts as finished once its ``.json`` exists, so it is written last."""
        m, a = unit.meta.manifold, unit.meta.arch
        _save_npz(self._unit(m, a, ".npz"), {"d_true": unit.d_true, **unit.per_point})
        if unit.extras:
            _save_npz(self._unit(m, a, ".extra.npz"), unit.extras)
        atomic_write_json(self._unit(m, a, ".json"),
                          {"meta": unit.meta.to_dict(), "records": [r.to_dict() for r in unit.rows]})

    def load_rows(self, manifold: str, arch: str) -> list[ResultRow]:
        """The records of a finished unit."""
        data = json.loads(self._unit(manifold, arch, ".json").read_text())
        return [ResultRow.from_dict(r) for r in data["records"]]

    def load_meta(self, manifold: str, arch: str) -> UnitMeta | None:
        """A unit's metadata (``None`` when its ``.json`` is absent)."""
        path = self._unit(manifold, arch, ".json")
        return UnitMeta.from_dict(json.loads(path.read_text()).get("meta", {})) if path.is_file() else None

    def metas(self) -> list[tuple[str, UnitMeta]]:
        """``[(manifold, meta)]`` of every unit with a ``.json``, in file-name order (manifold
        from the file name)."""
        files = sorted(self.units.glob("*__*.json"), key=lambda f: f.name)
        return [(f.stem.split("__")[0], UnitMeta.from_dict(json.loads(f.read_text()).get("meta", {})))
                for f in files]

    def unit_archs(self, manifold: str) -> list[str]:
        """The archs of ``manifold``'s units with per-point LIDs, in file-name order."""
        files = sorted(self.units.glob(f"{manifold}__*.npz"), key=lambda f: f.name)
        archs = [f.stem.split("__", 1)[1] for f in files]
        return [a for a in archs if "." not in a]  # <unit>.extra.npz: not per-point LIDs

    def load_per_point(self, manifold: str, arch: str) -> dict[str, np.ndarray]:
        """``{"d_true": [N], row key: [N_row], ...}`` of a unit, in file order."""
        return _load_npz(self._unit(manifold, arch, ".npz"))

    def load_extras(self, manifold: str, arch: str) -> dict[str, np.ndarray]:
        """A unit's extra arrays (``{}`` when it has none)."""
        path = self._unit(manifold, arch, ".extra.npz")
        return _load_npz(path) if path.is_file() else {}

    # ---- results files

    def load_records(self) -> list[dict[str, Any]]:
        """The records of ``results.json`` (see ``load_records``)."""
        return load_records(self.root)

    def write_results(self, records: Sequence[dict[str, Any]]) -> None:
        """``results.json`` and ``results.csv`` (columns ``RECORD_KEYS`` first), both atomically."""
        records = list(records)
        atomic_write_json(self.root / "results.json", records)
        keys = list(RECORD_KEYS) + sorted({k for r in records for k in r} - set(RECORD_KEYS))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        for r in records:
            w.writerow({k: _cell(r.get(k)) for k in keys})
        atomic_write_text(self.root / "results.csv", buf.getvalue())


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    return json.dumps(v) if isinstance(v, list | dict) else v


def load_records(out: str | Path) -> list[dict[str, Any]]:
    """The records of ``out/results.json`` (``FileNotFoundError``/``ValueError`` if missing/invalid)."""
    path = Path(out) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results.json in {out}")
    try:
        recs = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
        raise ValueError(f"{path} must hold a list of records")
    for i, r in enumerate(recs):
        missing = [k for k in REQUIRED_KEYS if k not in r]
        if missing:
            raise ValueError(f"{path}: record {i} lacks {missing}")
    return recs


def write_results(out: str | Path, records: Sequence[dict[str, Any]]) -> None:
    """``out/results.json`` and ``out/results.csv`` (columns ``RECORD_KEYS`` first), both atomically."""
    BenchDir(Path(out)).write_results(records)


def load_extras(out: str | Path, unit: str) -> dict[str, np.ndarray]:
    """The extra arrays of ``out/units/<unit>.extra.npz`` (``{}`` when the unit has none)."""
    manifold, arch = unit.split("__", 1)
    return BenchDir(Path(out)).load_extras(manifold, arch)
