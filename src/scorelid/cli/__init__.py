"""The ``scorelid`` command line: thin subcommands over the library.

Each subcommand lives in its own module ``scorelid.cli.<name>`` exposing
``add_parser(subparsers) -> argparse.ArgumentParser`` whose parser sets ``func=run`` with
``run(args) -> int``.  Library errors (``ValueError``, ``FileNotFoundError``, ``OSError``, ...)
become one line on stderr and exit code 2; no traceback (``scorelid --debug COMMAND ...`` or
``SCORELID_DEBUG=1`` shows it).

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

__all__ = ["COMMANDS", "main"]

# Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ("train", "estimate", "bench", "report", "images", "compare", "curve", "real")

EXPECTED_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, OSError,
                   KeyError, RuntimeError)


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
    except EXPECTED_ERRORS as exc:
        if debug:
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, KeyError):
            msg = f"missing key {msg}"
        print(f"scorelid {args.command}: error: {msg}", file=sys.stderr)
        return 2
    finally:
        from scorelid.runtime.distributed import shutdown

        shutdown(wait=finished)  # leave torchrun's process group cleanly (no-op in one process)


def _one_line_warning(command: str):
    """A ``warnings.showwarning`` printing ``scorelid COMMAND: warning: MESSAGE`` (first line)."""

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
        print(f"scorelid {command}: warning: {text}", file=file or sys.stderr)

    return show
