"""Data with known local intrinsic dimension: the paper's benchmark manifolds, unions, families
(``manifolds``), and closed-form denoisers whose exact LID is known (``analytic``)."""

from scorelid.data.analytic import GaussianSubspace, GaussianSubspaceMixture
from scorelid.data.manifolds import (
    MANIFOLDS,
    FamilyMember,
    dims_family,
    manifold,
    normalization,
    raw_manifold,
    union,
)

__all__ = ["MANIFOLDS", "FamilyMember", "GaussianSubspace", "GaussianSubspaceMixture", "dims_family",
           "manifold", "normalization", "raw_manifold", "union"]
