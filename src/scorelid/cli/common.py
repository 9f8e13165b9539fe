"""Options and checks shared by the subcommands.

* ``add_force(parser)`` adds ``--force``; ``refuse_overwrite(path, force)`` raises
  ``FileExistsError`` naming the path when a finished output exists and ``--force`` was not given.
  A finished output is one that was written completely (outputs are written atomically, so a file
  at ``path`` is always a finished one); in-progress state (``OUT.parts/``, ``OUT.partial/``,
  checkpoints) is not an output and is resumed, not refused.
"""

from __future__ import annotations

import argparse

from scorelid.io import refuse_overwrite  # the check lives with the other output helpers

__all__ = ["add_force", "refuse_overwrite"]


def add_force(parser: argparse.ArgumentParser) -> None:
    """Add ``--force``: overwrite a finished output instead of refusing."""
    parser.add_argument("--force", action="store_true",
                        help="overwrite a finished output (default: refuse and exit non-zero)")
