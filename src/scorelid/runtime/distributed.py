"""Several processes, one result: sharding, resumable chunks, gathering and failure reports.

Launch any scorelid command with ``torchrun`` (one node or several) and it runs data-parallel:

    torchrun --nproc_per_node=4 -m scorelid estimate --model M --data X.npy --sigma 0.05 --out lid.csv

``init_distributed`` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and joins the process group: NCCL when the device is CUDA, gloo
otherwise.  Without those variables everything runs in one process with no process group.

Work is cut into **chunks of a fixed number of points**, independent of the number of processes;
chunk ``c`` goes to rank ``c mod world_size``.  Each finished chunk is saved at once (atomically) in
a parts directory beside the output, so a killed run restarted with the same command, with the same
or another number of processes, computes only the missing chunks.  Because every estimator draws
point ``i``'s noise from a generator seeded by ``(seed, i)``, the per-point results do not depend on
the number of processes.  Rank 0 concatenates the chunks in order and writes the output, or, given
a ``sink``, hands each chunk to it in input order as soon as it and every chunk before it exist
(streamed output: no rank ever holds the whole result); a rank that fails makes every rank raise
``RankFailure`` naming it and its error, and no output file is written.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from scorelid.errors import InputError, RankFailure  # a RuntimeError; defined with scorelid's other errors
from scorelid.runtime.resume import Parts, claim, fingerprint

__all__ = [
    "DistInfo",
    "RankFailure",
    "all_ok",
    "barrier",
    "finish_chunked",
    "init_distributed",
    "run_chunked",
    "shutdown",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, its ``local_rank`` and device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistInfo:
    """Join torchrun's process group if launched by torchrun; else a single-process ``DistInfo``.

    ``device``: ``"cpu"``, ``"cuda"`` (each rank takes ``cuda:LOCAL_RANK``) or an explicit
    ``"cuda:K"``; default ``"cpu"``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = device or "cpu"
    try:
        torch.device(device)
    except RuntimeError as exc:  # torch's message lists the device types it knows
        raise InputError(f"device {device!r}: {exc}") from None
    if device == "cuda" and world > 1:
        device = f"cuda:{local}"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        torch.cuda.set_device(torch.device(device))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device)


def all_ok(info: DistInfo, error: BaseException | None) -> None:
    """Collective: every rank reports success or its error; if any failed, raise ``RankFailure``
    (in a single process, the error itself).

    Call it on every rank after the rank's work (or right after it failed); a failed rank arrives
    early and waits for the others, so no rank is left hanging in a later collective.
    """
    if not info.active:
        if error is not None:
            raise error  # one process: the original error is the clearest report
        return
    mine = None if error is None else f"{type(error).__name__}: {error}".strip()
    reports = [None] * info.world_size
    dist.all_gather_object(reports, mine)
    failed = [(r, msg) for r, msg in enumerate(reports) if msg is not None]
    if failed:
        text = "; ".join(f"rank {r} failed: {msg.splitlines()[0]}" for r, msg in failed)
        raise RankFailure(text) from error


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.active:
        dist.barrier()


def shutdown(wait: bool = False) -> None:
    """Leave the process group, if this process joined one (called when a command ends).

    With ``wait`` (a command that finished normally on every rank) the ranks first wait for each
    other, so that no rank tears its connections down while a peer is still writing or
    communicating; after an error there is no wait (the other ranks may be elsewhere).  Then it
    frees unreachable objects such as a finished ``DistributedDataParallel`` wrapper, whose gloo
    work objects must not outlive the group: left to interpreter shutdown they can abort the
    process ("terminate called without an active exception").
    """
    if dist.is_available() and dist.is_initialized():
        import gc

        if wait:
            try:
                dist.barrier()
            except Exception:  # best effort: a peer that failed late (rank 0's final write) left already
                pass
        gc.collect()
        dist.destroy_process_group()


def run_chunked(
    compute: Callable[[slice], np.ndarray],
    num: int,
    parts_dir: str | os.PathLike,
    job: dict[str, Any],
    info: DistInfo | None = None,
    chunk: int = 256,
    progress: bool = True,
    desc: str = "points",
    sink: Callable[[int, np.ndarray], None] | None = None,
) -> np.ndarray | None:
    """Compute ``compute(slice)`` for every chunk of ``range(num)``, resumable and sharded.

    Args:
        compute: maps a slice of point indices to an array ``[len(slice), ...]``.
        num: number of points.
        parts_dir: where finished chunks are kept until the whole result exists; removed after
            rank 0 has assembled it.
        job: a description of the job (inputs, method, sigma, seed, ...); a parts directory left by
            a different job is refused rather than mixed in.
        info: the process's place (default: single process).
        chunk: points per chunk (fixed, whatever the number of processes).
        sink: if given, rank 0 calls ``sink(start, result)`` for every chunk in input order, as
            soon as the chunk and all before it are finished (its own or, under torchrun, another
            rank's), and the result is not gathered: memory stays one chunk's.  An error raised by
            the sink fails the run like an error of ``compute``.

    Returns:
        The concatenated ``[num, ...]`` result on rank 0 (``None`` with a ``sink``), ``None`` on
        other ranks.
    """
    info = info or DistInfo()
    parts = Path(parts_dir)
    store = Parts(parts)
    manifest = {"num": int(num), "chunk": int(chunk), "job": fingerprint(job)}
    error: BaseException | None = None
    try:
        if info.is_main:
            claim(parts, manifest, name="manifest.json",
                  refusal="holds partial results of a different job; delete it or choose another output")
        if info.active:
            dist.barrier()
        starts = list(range(0, num, chunk))
        feed = _InOrder(store, starts, sink) if sink is not None and info.is_main else None
        mine = [s for c, s in enumerate(starts) if c % info.world_size == info.rank]
        todo = [s for s in mine if not store.has(s)]
        bar = tqdm(total=len(mine) * chunk, initial=(len(mine) - len(todo)) * chunk, unit="pt",
                   desc=desc, disable=not (progress and info.is_main), leave=False)
        with bar:
            if feed is not None:
                feed.advance()  # chunks finished by an earlier, interrupted run
            for s in todo:
                result = np.asarray(compute(slice(s, min(s + chunk, num))))
                store.save(s, result)
                bar.update(chunk)
                if feed is not None:
                    feed.advance({s: result})
    except Exception as exc:  # reported to every rank below
        error = exc
    all_ok(info, error)
    if not info.is_main:
        return None
    if feed is None:
        return np.concatenate([store.load(s) for s in range(0, num, chunk)])
    feed.advance()  # the other ranks' chunks
    if feed.next < len(starts):  # every rank reported success, so every part exists
        raise RuntimeError(f"{parts}: chunk starting at {starts[feed.next]} is missing")
    return None


class _InOrder:
    """Hands finished chunks to a sink in input order, each once."""

    def __init__(self, store: Parts, starts: list[int], sink: Callable[[int, np.ndarray], None]) -> None:
        self.store, self.starts, self.sink, self.next = store, starts, sink, 0

    def advance(self, fresh: dict[int, np.ndarray] | None = None) -> None:
        """Feed every chunk from the next one on that is finished (``fresh``: just computed here)."""
        fresh = fresh or {}
        while self.next < len(self.starts):
            s = self.starts[self.next]
            if s in fresh:
                result = fresh[s]
            elif self.store.has(s):
                result = self.store.load(s)
            else:
                return
            self.sink(s, result)
            self.next += 1


def finish_chunked(parts_dir: str | os.PathLike, info: DistInfo | None = None) -> None:
    """Remove the parts directory once rank 0 has written the final output."""
    info = info or DistInfo()
    if info.is_main:
        shutil.rmtree(parts_dir, ignore_errors=True)
