"""Signals: SIGTERM turned into an exception, so a terminated command unwinds like Ctrl-C.

``terminate_as_interrupt()`` is a context manager under which SIGTERM raises ``Terminated`` (a
``KeyboardInterrupt``): atomic writes remove their temporary files and no half-written output is
left; the same command then resumes from the last saved chunk or checkpoint.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Terminated", "terminate_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised by the handler of ``terminate_as_interrupt``)."""


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` (a ``KeyboardInterrupt``) in the main thread.

    The previous handler is restored on exit.  Outside the main thread this does nothing (Python
    only lets the main thread install signal handlers).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
