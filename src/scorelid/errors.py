"""scorelid's own exception types: conditions the user can cause and fix.

Every type derives from ``ScoreLIDError`` and also from the built-in type the same condition raised
before these types existed (``ValueError`` or ``RuntimeError``), so code that catches the built-in
type keeps working.  The command line prints any ``ScoreLIDError`` (like ``ValueError`` and
``OSError``) as one line with exit code 2; other exceptions are treated as bugs in scorelid (see
``scorelid.cli``).

This module imports nothing from scorelid, so any module may import it.
"""

from __future__ import annotations

__all__ = [
    "DirectoryBusyError",
    "InputError",
    "MissingDependencyError",
    "ModelLoadError",
    "RankFailure",
    "ScoreLIDError",
    "TrainingDivergedError",
]


class ScoreLIDError(Exception):
    """Base of the errors a user can cause: bad input, a busy directory, a missing extra."""


class InputError(ScoreLIDError, ValueError):
    """A bad argument or option (e.g. a device string torch cannot parse)."""


class ModelLoadError(ScoreLIDError, ValueError):
    """A model directory that exists but cannot be loaded (damaged or foreign files)."""


class MissingDependencyError(ScoreLIDError, RuntimeError):
    """An optional dependency is not installed; the message names the extra to install."""


class DirectoryBusyError(ScoreLIDError, RuntimeError):
    """Another live scorelid process holds the directory's lock."""


class TrainingDivergedError(ScoreLIDError, RuntimeError):
    """The training loss became NaN or inf (too high a learning rate, or bad data scale)."""


class RankFailure(ScoreLIDError, RuntimeError):
    """Raised on every rank when any rank failed; the message names the rank(s) and the cause.

    On the failing rank ``__cause__`` is that rank's own exception; the command line classifies a
    ``RankFailure`` by it (a bug on the failing rank is reported as an internal error there).
    """
