"""Wall time and peak memory of one phase of work (an estimate, a baseline, a training run).

``measure(fn, device)`` runs ``fn()`` and returns ``Measurement(value, seconds, peak_mem_bytes)``.

Peak memory:

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was
  allocated when the phase started (tensors the phase creates and frees included).
* CPU: a daemon thread samples the process's resident set size with psutil every
  ``interval`` seconds (default 5 ms) while ``fn`` runs; the peak minus the RSS at the start of the
  phase is reported.  The sampled peak is completed by ``ru_maxrss``: when the process's
  high-water mark rose during the phase, the phase's peak *is* the new mark, even if the thread
  (starved of CPU on a loaded machine) missed it.  We use this rather than ``ru_maxrss`` in a
  fresh subprocess per phase (see ``/work/shared/diffusers-notes.md``; the two agreed within
  1 MiB there) because the quick benchmark has ~60 phases and a subprocess each (interpreter,
  torch import, model load) would cost more than the phases themselves.  Allocations shorter
  than the interval can be missed, and memory that the allocator keeps from an earlier phase is
  reused without raising RSS, so the figure is a lower bound of the phase's own need; phases are
  compared on the same footing.
  Without psutil the CPU figure is ``None``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

__all__ = ["Measurement", "measure"]


class Measurement(NamedTuple):
    """``value``: what ``fn`` returned; ``seconds``: wall time; ``peak_mem_bytes``: see module doc."""

    value: Any
    seconds: float
    peak_mem_bytes: int | None


def _maxrss() -> int:
    """The process's peak resident set size so far, bytes (Linux reports KiB)."""
    import resource
    import sys

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


class _RSSSampler:
    def __init__(self, interval: float) -> None:
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.start = self.peak = self.proc.memory_info().rss
        self.maxrss0 = _maxrss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> _RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        maxrss = _maxrss()
        if maxrss > self.maxrss0:  # a new high-water mark was set inside the phase
            self.peak = max(self.peak, maxrss)

    @property
    def delta(self) -> int:
        return int(self.peak - self.start)


def measure(fn: Callable[[], Any], device: str | torch.device = "cpu",
            interval: float = 0.005) -> Measurement:
    """Run ``fn()`` once; wall seconds and peak memory (bytes above the phase's start) on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        value = fn()
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        return Measurement(value, seconds, int(torch.cuda.max_memory_allocated(device) - base))
    try:
        sampler = _RSSSampler(interval)
    except ImportError:
        t0 = time.perf_counter()
        value = fn()
        return Measurement(value, time.perf_counter() - t0, None)
    with sampler:
        t0 = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t0
    return Measurement(value, seconds, sampler.delta)
