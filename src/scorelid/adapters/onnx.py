"""ONNX denoisers: a graph ``D(noisy [B, *shape], sigma [B]) -> denoised [B, *shape]`` run by onnxruntime.

The graph follows the EDM / k-diffusion convention: its first input is the noisy batch (float32),
its second the noise level ``sigma`` on the variance-exploding scale (float32 ``[B]``), its first
output the posterior mean ``E[x | y]``.  Inputs are bound by position (exporters and users name
them differently); further inputs (a class label, a ``difficulty``) get fixed values through
``extra={"name": value}``.

An ONNX session has no gradients, so ``OnnxDenoiser.differentiable`` is ``False`` and
``scorelid.estimate`` refuses the methods that need a Jacobian (``flipd``, ``ism``); ``dsm``,
``error_bundle`` and ``normal_bundle`` need forward passes only.

Session defaults (see ``/work/shared/onnx-streaming-notes.md``): one intra-op thread without spinning
(the default session keeps its threads spinning and competes with torch; DSM ran ~1.8x faster
with one thread), onnxruntime's own log lines off, the CUDA provider first when onnxruntime has
one.  ``export_onnx`` writes a torch module in that convention to one file with a dynamic batch
dimension; ``compare_onnx`` checks that onnxruntime reproduces PyTorch.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scorelid.denoiser import SigmaLike, sigma_like
from scorelid.errors import InputError, MissingDependencyError, ModelLoadError

__all__ = ["CONFIG_KEY", "OnnxDenoiser", "compare_onnx", "export_onnx", "onnxruntime_module"]

#: ``metadata_props`` key under which ``export_onnx`` stores the scorelid config (JSON).
CONFIG_KEY = "scorelid_config"

_NUMPY_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
}
_INSTALL = "install the onnx extra: pip install 'scorelid[onnx]'"


def onnxruntime_module():
    """``import onnxruntime``, or ``MissingDependencyError`` naming the extra."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError(f"ONNX models need onnxruntime: {_INSTALL}") from None
    return onnxruntime


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class OnnxDenoiser:
    """``D(y, sigma)`` from an ONNX file (see the module doc for the graph's convention).

    Args:
        path: the ``.onnx`` file (weights in a ``.onnx.data`` file beside it are found too).
        extra: fixed values of the graph's inputs after the first two, by name: a number (repeated
            for every row) or an array of one row's shape.
        providers: onnxruntime execution providers (default: CUDA first when available, then CPU).
        threads: intra-op threads (default 1: see the module doc).
        spinning: let idle onnxruntime threads spin (default ``False``).

    Attributes:
        shape: one row's shape (``None`` for a symbolic dimension); ``n``: its element count (or
            ``None``); ``config``: the scorelid config ``export_onnx`` stored (else ``{}``);
            ``providers``: those the session uses; ``differentiable``: ``False``.

    Raises:
        FileNotFoundError: no such file.
        MissingDependencyError: onnxruntime is not installed.
        ModelLoadError: a corrupt file, or a graph that is not a denoiser (fewer than two inputs,
            an output whose rank differs from the noisy input's, a ``sigma`` that is not ``[B]``).
        InputError: ``extra`` misses an input of the graph, or names one it does not have.
    """

    differentiable = False

    def __init__(self, path: str | os.PathLike, extra: Mapping[str, Any] | None = None,
                 providers: Sequence[Any] | None = None, threads: int = 1, spinning: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.path}")
        ort = onnxruntime_module()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        if not spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=list(providers))
        except Exception as exc:  # onnxruntime's InvalidProtobuf, Fail, ... are not ValueErrors
            raise ModelLoadError(f"{self.path} is not a loadable ONNX model "
                                 f"({type(exc).__name__}: {_first_line(exc)})") from None
        self.providers = tuple(self.session.get_providers())
        self._inputs = self.session.get_inputs()
        self._check_graph()
        self.shape = tuple(d if isinstance(d, int) else None for d in self._inputs[0].shape[1:])
        self.n = math.prod(self.shape) if all(d is not None for d in self.shape) else None
        batch = self._inputs[0].shape[0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        self.extra = self._extra_values(dict(extra or {}))
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.config = json.loads(meta[CONFIG_KEY]) if CONFIG_KEY in meta else {}
        except json.JSONDecodeError:
            self.config = {}
        self.metadata = dict(meta)

    def _check_graph(self) -> None:
        ins, outs = self._inputs, self.session.get_outputs()
        where = f"{self.path} is not an ONNX denoiser D(noisy, sigma) -> denoised"
        if len(ins) < 2 or not outs:
            raise ModelLoadError(f"{where}: it has {len(ins)} input(s) and {len(outs)} output(s)")
        for i, name in ((0, "noisy"), (1, "sigma")):
            if ins[i].type not in ("tensor(float)", "tensor(double)", "tensor(float16)"):
                raise ModelLoadError(f"{where}: input {i} ({name}) has type {ins[i].type}")
        if len(ins[0].shape) < 2:
            raise ModelLoadError(f"{where}: input 0 has shape {ins[0].shape}, expected [B, *shape]")
        if len(ins[1].shape) != 1:
            raise ModelLoadError(f"{where}: input 1 (sigma) has shape {ins[1].shape}, expected [B]")
        if len(outs[0].shape) != len(ins[0].shape):
            raise ModelLoadError(f"{where}: output {outs[0].shape} and input {ins[0].shape} differ in rank")
        self._output = outs[0].name

    def _extra_values(self, extra: dict[str, Any]) -> dict[str, np.ndarray]:
        wanted = {i.name: i for i in self._inputs[2:]}
        unknown, missing = sorted(set(extra) - set(wanted)), sorted(set(wanted) - set(extra))
        if unknown or missing:
            raise InputError(f"{self.path}: the graph's extra inputs are {sorted(wanted)}; give each a value "
                             f"(extra={{name: value}}): missing {missing}, unknown {unknown}")
        out = {}
        for name, value in extra.items():
            dtype = _NUMPY_TYPES.get(wanted[name].type)
            if dtype is None:
                raise InputError(f"{self.path}: input {name!r} has unsupported type {wanted[name].type}")
            out[name] = np.asarray(value, dtype=dtype)
            if out[name].ndim != len(wanted[name].shape) - 1:
                rank = len(wanted[name].shape) - 1
                raise InputError(f"{self.path}: input {name!r} has shape {wanted[name].shape}; give a value "
                                 f"of one row's shape ({rank} dims), got {out[name].shape}")
        return out

    def __repr__(self) -> str:
        return f"OnnxDenoiser({str(self.path)!r}, shape={self.shape}, providers={list(self.providers)})"

    def __call__(self, y: Tensor, sigma: SigmaLike) -> Tensor:
        """Posterior mean ``[B, *shape]`` (y's device and dtype) for noisy ``y`` ``[B, *shape]``."""
        want = tuple(d for d in self.shape)
        if tuple(y.shape[1:]) != tuple(w if w is not None else y.shape[1 + i] for i, w in enumerate(want)):
            raise InputError(f"ONNX model {self.path} takes rows of shape {list(self.shape)}, "
                             f"got input of shape {list(y.shape)}")
        B = y.shape[0]
        s = sigma_like(sigma, y).detach().reshape(B).to("cpu", torch.float64).numpy()
        yn = y.detach().to("cpu").numpy()
        step = self.fixed_batch or B
        outs = [self._run(yn[i : i + step], s[i : i + step], step) for i in range(0, B, step)]
        out = outs[0] if len(outs) == 1 else np.concatenate(outs)
        return torch.from_numpy(out).to(device=y.device, dtype=y.dtype)

    def _run(self, y: np.ndarray, s: np.ndarray, rows: int) -> np.ndarray:
        b = y.shape[0]
        if b < rows:  # a graph with a fixed batch: pad with the last row, drop its results
            y = np.concatenate([y, np.repeat(y[-1:], rows - b, 0)])
            s = np.concatenate([s, np.repeat(s[-1:], rows - b)])
        t0, t1 = (_NUMPY_TYPES[i.type] for i in self._inputs[:2])
        feeds = {self._inputs[0].name: np.ascontiguousarray(y, dtype=t0),
                 self._inputs[1].name: np.ascontiguousarray(s, dtype=t1)}
        for name, v in self.extra.items():
            feeds[name] = np.ascontiguousarray(np.broadcast_to(v, (rows, *v.shape)))
        try:
            out = self.session.run([self._output], feeds)[0]
        except Exception as exc:
            raise InputError(f"ONNX model {self.path} failed on a batch of shape {list(y.shape)}: "
                             f"{type(exc).__name__}: {_first_line(exc)}") from None
        if out.shape != y.shape:
            raise ModelLoadError(f"ONNX model {self.path} returned shape {list(out.shape)} for input of "
                                 f"shape {list(y.shape)}; it must return the denoised batch")
        return out[:b].astype(np.float32, copy=False) if out.dtype == np.float16 else out[:b]


class _Signature(nn.Module):
    """``module(noisy, sigma)`` with ``sigma`` a ``[B]`` tensor: the exported graph's signature."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, noisy: Tensor, sigma: Tensor) -> Tensor:
        return self.module(noisy, sigma)


def export_onnx(module: nn.Module, path: str | os.PathLike, row_shape: Sequence[int],
                config: Mapping[str, Any] | None = None, opset: int | None = None,
                example_batch: int = 4) -> Path:
    """Write ``module`` (a float32 denoiser ``D(y [B, *row_shape], sigma [B])``) to ``path`` as ONNX.

    Inputs ``noisy`` and ``sigma``, output ``denoised``, with a dynamic batch dimension; one file
    (weights inside) unless the weights exceed protobuf's 2 GB.  ``config`` is stored as JSON in the
    model's metadata (``CONFIG_KEY``), where ``OnnxDenoiser.config`` finds it.  Needs ``onnx`` and
    ``onnxscript`` (the ``onnx`` extra).  Returns ``path``.
    """
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError(f"exporting to ONNX needs onnx and onnxscript: {_INSTALL}") from None
    path = Path(path)
    wrapped = _Signature(module).eval()
    y = torch.randn(example_batch, *row_shape)
    sigma = torch.full((example_batch,), 0.5)
    batch = torch.export.Dim("batch", min=1)
    n_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    n_bytes += sum(b.numel() * b.element_size() for b in module.buffers())
    one_file = n_bytes < 1.8 * 2**30
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.onnx")
    quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed" lines
    level = quiet.level
    try:
        quiet.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapped, (y, sigma), dynamo=True, input_names=["noisy", "sigma"], output_names=["denoised"],
                dynamic_shapes={"noisy": {0: batch}, "sigma": {0: batch}}, opset_version=opset,
                external_data=not one_file, verbose=False)
            if not one_file:  # external weights are found by the file name recorded here: no rename
                program.save(str(path), external_data=True)
                return path
            program.save(str(tmp), external_data=False)
        proto = onnx.load(str(tmp))  # store the config beside the graph
        meta = {p.key: p.value for p in proto.metadata_props}
        meta.update({"format": "scorelid-denoiser-onnx", CONFIG_KEY: json.dumps(dict(config or {}))})
        del proto.metadata_props[:]
        for k, v in meta.items():
            proto.metadata_props.add(key=k, value=v)
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    finally:
        quiet.setLevel(level)
        tmp.unlink(missing_ok=True)
    return path


def compare_onnx(module: nn.Module, denoiser: OnnxDenoiser, x: Tensor, sigma: Tensor) -> float:
    """Max abs difference between ``module(x, sigma)`` (PyTorch) and ``denoiser(x, sigma)`` (onnxruntime)."""
    with torch.inference_mode():
        ref = module(x, sigma)
    out = denoiser(x, sigma)
    return float((ref.double() - out.double()).abs().max())
