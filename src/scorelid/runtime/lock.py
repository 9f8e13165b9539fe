"""One writer per output directory: a lock file that refuses a second concurrent run.

Long jobs (``scorelid bench``, ``scorelid train``) resume from what an earlier run left in their
output directory, so two runs started on the same directory at once would each resume the other's
half-finished work and overwrite each other's files.  ``exclusive_dir(path)`` holds
``path/.scorelid.lock`` (the holder's process id and host, JSON) for the duration of the job:

* a second run on the same directory gets ``DirectoryBusyError`` naming the holder;
* a lock left by a process that no longer exists on this host (``kill -9``, a crashed node) is
  stale and taken over silently, so an interrupted job resumes with the same command;
* a lock from another host cannot be checked from here: it is refused with the path to delete
  once that run is known to be gone.

The lock is advisory (only scorelid honours it) and the check is by process id, so a recycled pid
on the same host would be taken for the holder: delete the file by hand in that rare case.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scorelid.errors import DirectoryBusyError  # a RuntimeError; defined with scorelid's other errors

__all__ = ["LOCK_NAME", "DirectoryBusyError", "exclusive_dir", "holds_lock"]

LOCK_NAME = ".scorelid.lock"
#: an unreadable lock younger than this is taken for a run between creating and writing it
FRESH_S = 5.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _age(lock: Path) -> float:
    """Seconds since ``lock`` was last written (infinite if it has gone)."""
    try:
        return time.time() - lock.stat().st_mtime
    except OSError:
        return float("inf")


def _holder(lock: Path) -> dict | None:
    """The lock's content, or ``None`` if it is unreadable (a crash between create and write)."""
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None


def _try_create(lock: Path, me: dict) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(me, fh)
    return True


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def holds_lock(path: str | os.PathLike) -> bool:
    """Whether this process holds the lock of directory ``path``."""
    return _holder(Path(path) / LOCK_NAME) == _me()


@contextmanager
def exclusive_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of directory ``path`` while the ``with`` body runs.

    ``path`` is created if missing, and removed again at the end if the body left it empty.
    Re-entrant within one process: a nested ``exclusive_dir`` of a directory this process already
    holds does nothing.

    Raises:
        DirectoryBusyError: another live process (this host) or a process on another host holds it.
    """
    path = Path(path)
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    lock = path / LOCK_NAME
    me = _me()
    if _holder(lock) == me:  # this process holds it already (nested use): the outer holder releases
        yield path
        return
    for _ in range(2):
        if _try_create(lock, me):
            break
        held = _holder(lock)
        if held is None and _age(lock) < FRESH_S:
            raise DirectoryBusyError(f"{path} is in use by another scorelid run that is starting; wait "
                                     "for it to finish or use another output directory")
        if held is not None and held.get("host") != me["host"]:
            raise DirectoryBusyError(
                f"{path} is in use by process {held['pid']} on host {held.get('host')!r}; if that run "
                f"is gone, delete {lock}")
        if held is not None and held["pid"] != me["pid"] and _alive(held["pid"]):
            raise DirectoryBusyError(
                f"{path} is in use by another scorelid run (process {held['pid']}); wait for it to "
                "finish or use another output directory")
        lock.unlink(missing_ok=True)  # stale (its process is gone) or unreadable and old: take it over
    else:
        raise DirectoryBusyError(f"could not take the lock {lock}: another run took it at the same time")
    try:
        yield path
    finally:
        if _holder(lock) == me:
            lock.unlink(missing_ok=True)
        if created:  # leave no empty directory behind a job that failed before writing anything
            try:
                path.rmdir()
            except OSError:
                pass
