"""The ``scorelid`` command line: thin subcommands over the library.

Each subcommand lives in its own module ``scorelid.cli.<name>`` exposing
``add_parser(subparsers) -> argparse.ArgumentParser`` whose parser sets ``func=run`` with
``run(args) -> int``.

Exit codes:

* 0: success.
* 2: a user error: bad arguments, options, data or model files, a busy output directory, a
  missing optional dependency, out of memory.  These are ``ValueError``, ``OSError`` (and its
  ``FileNotFoundError``, ``PermissionError``, ... family), ``MemoryError``/``torch.OutOfMemoryError``
  and scorelid's own ``scorelid.errors.ScoreLIDError`` types.  One line on stderr,
  ``scorelid COMMAND: error: MESSAGE``; no traceback.
* 3: an internal error: any other exception (``RuntimeError``, ``KeyError``, ``TypeError``, ...)
  is a bug in scorelid (or in a library it calls), not the user's mistake.  One line,
  ``scorelid COMMAND: internal error: TYPE: MESSAGE (a bug in scorelid; rerun with --debug for the
  traceback)``.
* 130 / 143: interrupted (below).

``scorelid --debug COMMAND ...`` or ``SCORELID_DEBUG=1`` lets either kind of error propagate with
its full traceback.  A ``RankFailure`` (a torchrun rank failed) is classified by the failing
rank's own exception where this process is that rank.

Interruptions: Ctrl-C (SIGINT) prints ``scorelid: interrupted`` and exits 130; SIGTERM (what
``kill``, batch schedulers and torchrun send) is turned into the same kind of exception, prints
``scorelid: terminated`` and exits 143.  Both unwind normally, so atomic writes remove their
temporary files, and the same command resumes from the last saved chunk or checkpoint.  Library
warnings are printed as one line, ``scorelid COMMAND: warning: ...``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from scorelid.errors import RankFailure, ScoreLIDError

__all__ = ["COMMANDS", "EXIT_INTERNAL", "EXIT_USER", "is_user_error", "main"]

# Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ("train", "estimate", "bench", "report", "images", "compare", "curve", "real", "export")

EXIT_USER = 2  # the user can fix it: bad input, busy directory, missing extra
EXIT_INTERNAL = 3  # a bug in scorelid

#: exceptions a user can cause (``OSError`` covers ``FileNotFoundError``, ``PermissionError``, ...)
USER_ERRORS = (ScoreLIDError, ValueError, OSError, MemoryError)


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the user's to fix (exit 2) rather than a bug in scorelid (exit 3)."""
    if isinstance(exc, RankFailure) and exc.__cause__ is not None:
        return is_user_error(exc.__cause__)  # this rank failed: its own error decides
    if isinstance(exc, USER_ERRORS):
        return True
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return oom is not None and isinstance(exc, oom)


def build_parser() -> argparse.ArgumentParser:
    from scorelid import __version__

    parser = argparse.ArgumentParser(
        prog="scorelid",
        description="Local intrinsic dimension of data from diffusion models.",
    )
    parser.add_argument("--version", action="version", version=f"scorelid {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"scorelid.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"scorelid.cli.{name}":
                continue  # subcommand not part of this build
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from scorelid.runtime.signals import Terminated, terminate_as_interrupt

    debug = args.debug or bool(os.environ.get("SCORELID_DEBUG"))
    finished = False
    try:
        with terminate_as_interrupt(), warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _one_line_warning(args.command)
            code = int(args.func(args) or 0)
            finished = True
            return code
    except Terminated:
        print("scorelid: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("scorelid: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        text = str(exc).strip()
        if is_user_error(exc):
            msg = _first_line(text) or type(exc).__name__
            print(f"scorelid {args.command}: error: {msg}", file=sys.stderr)
            return EXIT_USER
        what = f"{type(exc).__name__}: {_first_line(text)}" if text else type(exc).__name__
        print(f"scorelid {args.command}: internal error: {what} "
              "(a bug in scorelid; rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        from scorelid.runtime.distributed import shutdown

        shutdown(wait=finished)  # leave torchrun's process group cleanly (no-op in one process)


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _one_line_warning(command: str):
    """A ``warnings.showwarning`` printing ``scorelid COMMAND: warning: MESSAGE`` (first line)."""

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
        print(f"scorelid {command}: warning: {text}", file=file or sys.stderr)

    return show
