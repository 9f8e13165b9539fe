"""LID estimators: DSM, ISM, FLIPD, normal bundle and error bundle, behind ``estimate``."""

from scorelid.estimators.api import METHODS, estimate

__all__ = ["METHODS", "estimate"]
