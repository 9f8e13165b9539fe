"""Shared cases and sample-size rule for the closed-form estimator tests."""

import math

SIGMA = 0.01
CASES = [(1, 8), (16, 64), (40, 64)]


def points_for(d: int, rel_tol: float, per_draw_var: float, k: int, z: float = 6.0) -> int:
    """Smallest number of points N such that z standard errors of a mean over N points x k draws
    (per-draw variance ``per_draw_var``) fit inside ``rel_tol * d``."""
    return math.ceil(per_draw_var * (z / (rel_tol * d)) ** 2 / k)
