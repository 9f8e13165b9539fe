"""LID estimators: DSM, ISM, FLIPD, normal bundle and error bundle, behind ``estimate``."""

from scorelid.estimators.api import AUTO_BUNDLE_MAX_N, METHODS, estimate, resolve_method

__all__ = ["AUTO_BUNDLE_MAX_N", "METHODS", "estimate", "resolve_method"]
