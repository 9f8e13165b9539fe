"""The ``scorelid`` command line: thin subcommands over the library.

Each subcommand lives in its own module ``scorelid.cli.<name>`` exposing
``add_parser(subparsers) -> argparse.ArgumentParser`` whose parser sets ``func=run`` with
``run(args) -> int``.  Library errors (``ValueError``, ``FileNotFoundError``, ``OSError``, ...)
become one line on stderr and exit code 2; no traceback (``scorelid --debug COMMAND ...`` or
``SCORELID_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
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
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("scorelid: interrupted", file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as exc:
        if args.debug or os.environ.get("SCORELID_DEBUG"):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, KeyError):
            msg = f"missing key {msg}"
        print(f"scorelid {args.command}: error: {msg}", file=sys.stderr)
        return 2
    finally:
        from scorelid.distributed import shutdown

        shutdown()  # leave torchrun's process group cleanly (no-op in one process)
