"""Saving and loading trained denoisers and training state: safetensors + JSON, never pickle.

A saved denoiser is a directory with

* ``config.json``: ``{"format": "scorelid-denoiser", "version": 1, "config": {...}, "history": {...}}``
  where ``config`` rebuilds the module (``scorelid.nn.build_denoiser``) and ``history`` holds the
  training curves (loss, ``lid_by_sigma``);
* ``model.safetensors``: the module's ``state_dict`` (for a trained model: the EMA weights).

Training state (for resuming) is a directory ``checkpoints/step-XXXXXXX/`` with
``state.safetensors`` (weights, EMA weights, optimizer moments, RNG state, accumulators) and
``state.json`` (step, settings, history); ``checkpoints/latest`` names the newest complete one and
is replaced atomically after both files are written.

Loading refuses anything but safetensors + JSON: a pickle (``torch.save``: ``.pt``/``.bin``/``.pkl``,
or such bytes under the ``.safetensors`` name) is named and refused, never unpickled (unpickling
can run arbitrary code).  Truncated or corrupt files, a config that cannot build a network,
weights whose names or shapes do not fit the configured network, and non-finite weights each
raise ``ValueError`` naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from scorelid.nn.precond import EDMDenoiser, build_denoiser
from scorelid.runtime.io import atomic_path, atomic_write_json, atomic_write_text

__all__ = [
    "CONFIG_NAME",
    "FORMAT",
    "WEIGHTS_NAME",
    "latest_train_state",
    "load_denoiser",
    "load_train_state",
    "save_denoiser",
    "save_train_state",
]

FORMAT = "scorelid-denoiser"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _save_tensors(tensors: dict[str, Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=metadata)


PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")


def _load_tensors(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        pickles = sorted(p.name for p in path.parent.glob("*") if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            raise ValueError(f"{path.parent} holds {pickles[0]} but no {path.name}: scorelid loads only "
                             "safetensors + JSON checkpoints, never pickle files")
        raise FileNotFoundError(f"checkpoint weights not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        with open(path, "rb") as fh:
            head = fh.read(2)
        if head == b"PK" or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5):
            raise ValueError(f"{path} is a pickle/zip file (torch.save), not safetensors: scorelid "
                             "refuses to load it (unpickling can run code)") from None
        raise ValueError(f"corrupt checkpoint weights {path} (truncated or damaged): {exc}") from None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint config not found: {path}")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt checkpoint config {path}: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"corrupt checkpoint config {path}: not a JSON object")
    return obj


def save_denoiser(model: EDMDenoiser, path: str | os.PathLike, history: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to directory ``path`` (``config.json`` + ``model.safetensors``); returns it.

    ``history`` defaults to ``model.history`` when the model has one.
    """
    if not isinstance(model, EDMDenoiser):
        raise ValueError(f"save_denoiser needs a scorelid EDMDenoiser, got {type(model).__name__}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if history is None:
        history = getattr(model, "history", None) or {}
    _save_tensors(model.state_dict(), path / WEIGHTS_NAME)
    atomic_write_json(path / CONFIG_NAME, {"format": FORMAT, "version": 1, "config": model.config,
                                           "history": history})
    return path


#: saved architectures that count as another for ``load_denoiser(arch=...)``: the factorised MLP
#: (``scorelid.nn.grouped``) is what ``arch="mlp"`` with ``factorize=True`` trains
ARCH_FAMILY = {"grouped": "mlp"}


def _check_arch(config: dict[str, Any], arch: str | None, what: str) -> None:
    """``ValueError`` unless a model of saved ``config`` is an ``arch`` (``None``: any; see
    ``ARCH_FAMILY``)."""
    saved = config.get("arch")
    if arch is not None and ARCH_FAMILY.get(saved, saved) != arch:
        raise ValueError(f"{what} holds a {saved!r} model, expected {arch!r}")


def load_denoiser(path: str | os.PathLike, device: str | torch.device = "cpu",
                  arch: str | None = None, **onnx_options: Any) -> EDMDenoiser:
    """Load a denoiser saved by ``save_denoiser`` / ``train_denoiser``, in eval mode.

    Args:
        path: the model directory (or its ``config.json``); or an ``.onnx`` file, which gives a
            forward-only ``scorelid.adapters.onnx.OnnxDenoiser`` (``onnx_options``: its keywords,
            e.g. ``extra={"difficulty": 0.5}``; outputs come back on the input's device).
        device: where to put the module.
        arch: if given, the architecture the caller expects (``"mlp"``/``"dit"``; a factorised
            MLP, ``"grouped"``, is an ``"mlp"``).

    Raises:
        FileNotFoundError: the directory, config or weights are missing.
        ValueError: corrupt files, another format, another architecture, or weights that do
            not fit the configured network.
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from scorelid.adapters.onnx import OnnxDenoiser

        model = OnnxDenoiser(path, **onnx_options)
        _check_arch(model.config, arch, f"ONNX model {path}")
        return model
    if onnx_options:
        raise ValueError(f"options {sorted(onnx_options)} apply to .onnx models only, not {path}")
    if path.is_file() and path.name == CONFIG_NAME:
        path = path.parent
    if not path.exists():
        raise FileNotFoundError(f"model directory not found: {path}")
    if not path.is_dir():
        raise ValueError(f"model path must be a directory with {CONFIG_NAME} and {WEIGHTS_NAME}: {path}")
    meta = _read_json(path / CONFIG_NAME)
    if meta.get("format") != FORMAT or "config" not in meta:
        raise ValueError(
            f"{path / CONFIG_NAME} is not a scorelid denoiser config (format {meta.get('format')!r})"
        )
    config = meta["config"]
    _check_arch(config, arch, f"checkpoint {path}")
    try:
        model = build_denoiser(config)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path / CONFIG_NAME}: cannot build the network from its config "
                         f"({type(exc).__name__}: {exc})") from None
    _load_state(model, _load_tensors(path / WEIGHTS_NAME), path)
    model.config = config
    model.history = meta.get("history", {})
    return model.to(device).eval().requires_grad_(False)


def _load_state(model: nn.Module, state: dict[str, Tensor], where: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {where} does not match its {getattr(model, 'arch', '?')!r} architecture: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise ValueError(f"checkpoint {where} does not match its architecture: {k} has shape "
                             f"{tuple(v.shape)}, the network needs {tuple(expected[k].shape)}")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"checkpoint {where} has non-finite weights (NaN or inf) in {k}")
    model.load_state_dict(state)


def save_train_state(out_dir: str | os.PathLike, step: int, tensors: dict[str, Tensor],
                     meta: dict[str, Any], keep: int = 2) -> Path:
    """Write a resumable training checkpoint under ``out_dir/checkpoints`` and point ``latest`` at it.

    Keeps the ``keep`` newest checkpoints.  Returns the checkpoint directory.
    """
    root = Path(out_dir) / "checkpoints"
    name = f"step-{step:08d}"
    ck = root / name
    _drop_leftovers(root, ck)
    ck.mkdir(parents=True, exist_ok=True)
    _save_tensors(tensors, ck / "state.safetensors")
    atomic_write_json(ck / "state.json", {"step": step, **meta})
    atomic_write_text(root / "latest", name + "\n")
    old = sorted(p for p in root.glob("step-*") if p.is_dir() and p.name != name)
    for p in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return ck


def _drop_leftovers(root: Path, ck: Path) -> None:
    """Remove what a run killed mid-write left under ``root``: temporary files of unfinished atomic
    writes (``.NAME.XXXX.tmp``) and a half-written ``ck`` that ``latest`` does not name."""
    if not root.is_dir():
        return
    for tmp in [*root.glob(".*.tmp"), *root.glob("step-*/.*.tmp")]:
        tmp.unlink(missing_ok=True)
    pointer = root / "latest"
    current = pointer.read_text(encoding="utf-8", errors="replace").strip() if pointer.is_file() else ""
    if ck.is_dir() and ck.name != current:
        shutil.rmtree(ck, ignore_errors=True)


def latest_train_state(out_dir: str | os.PathLike) -> Path | None:
    """The newest complete training checkpoint directory in ``out_dir``, or ``None``."""
    pointer = Path(out_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        name = ""
    ck = pointer.parent / name
    complete = (ck / "state.json").is_file() and (ck / "state.safetensors").is_file()
    if not name or "/" in name or not complete:
        raise ValueError(f"training checkpoint {ck} named by {pointer} is incomplete or damaged")
    return ck


def load_train_state(ck: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(tensors, meta)`` of a training checkpoint directory written by ``save_train_state``."""
    ck = Path(ck)
    return _load_tensors(ck / "state.safetensors"), _read_json(ck / "state.json")
