"""Noise scales: grids, LID curves across sigma, rules that pick a level, and ``sigma="auto"``.

* ``grid``: the default grid and ``"a:b:k"`` parsing;
* ``curve``: ``lid_curve(D, x, sigmas)`` -> ``[S, N]``, every level through ``scorelid.estimate``;
* ``select``: rules that pick a level per point from its curve;
* ``auto``: ``estimate_auto`` and the public ``estimate`` that accepts ``sigma="auto"``;
* ``plot``: the LID-curve figure.
"""

from scorelid.sigma.auto import AUTO_NOISE, AutoResult, estimate, estimate_auto
from scorelid.sigma.curve import lid_curve
from scorelid.sigma.grid import DEFAULT_GRID, log_grid, parse_sigmas, validate_sigmas
from scorelid.sigma.select import DEFAULT_RULE, RULES, select, slope

__all__ = ["AUTO_NOISE", "DEFAULT_GRID", "DEFAULT_RULE", "RULES", "AutoResult", "estimate", "estimate_auto",
           "lid_curve", "log_grid", "parse_sigmas", "select", "slope", "validate_sigmas"]
