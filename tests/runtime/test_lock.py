"""One writer per output directory: live holders refuse, stale locks are taken over."""

import json
import os
import socket
import subprocess
import sys

import pytest

from scorelid.runtime.lock import LOCK_NAME, DirectoryBusyError, exclusive_dir, holds_lock


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no such process any more


def test_second_holder_refused_and_released_after(tmp_path):
    d = tmp_path / "run"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        d.mkdir()
        (d / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        busy = f"in use by another scorelid run \\(process {sleeper.pid}\\)"
        with pytest.raises(DirectoryBusyError, match=busy):
            with exclusive_dir(d):
                pass
        assert (d / LOCK_NAME).is_file()  # the live holder's lock is left alone
    finally:
        sleeper.kill()
        sleeper.wait()
    with exclusive_dir(d):  # its process has gone: the stale lock is taken over
        assert holds_lock(d)
        assert json.loads((d / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (d / LOCK_NAME).exists() and not holds_lock(d)


def test_stale_other_host_reentrant_and_cleanup(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    with exclusive_dir(d):
        with exclusive_dir(d):  # nested in the same process: no-op
            pass
        assert holds_lock(d)  # the inner exit did not release the outer hold
    (d / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "some-other-node"}))
    with pytest.raises(DirectoryBusyError, match="on host 'some-other-node'; if that run is gone, delete"):
        with exclusive_dir(d):
            pass
    # an unreadable lock: fresh means a run between creating and writing it, old means a crash
    (d / LOCK_NAME).write_text("")
    with pytest.raises(DirectoryBusyError, match="that is starting"):
        with exclusive_dir(d):
            pass
    os.utime(d / LOCK_NAME, (0, 0))
    with exclusive_dir(d):
        pass
    # a directory created for the job and left empty is removed; one with output stays
    new = tmp_path / "new"
    with pytest.raises(RuntimeError, match="boom"):
        with exclusive_dir(new):
            raise RuntimeError("boom")
    assert not new.exists()
    with exclusive_dir(new):
        (new / "out.txt").write_text("x")
    assert sorted(p.name for p in new.iterdir()) == ["out.txt"]
