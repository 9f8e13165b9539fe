"""Data with known local intrinsic dimension: the paper's benchmark manifolds, unions, families."""

from scorelid.data.manifolds import (
    MANIFOLDS,
    FamilyMember,
    dims_family,
    manifold,
    normalization,
    raw_manifold,
    union,
)

__all__ = ["MANIFOLDS", "FamilyMember", "dims_family", "manifold", "normalization", "raw_manifold", "union"]
