"""The geometric inputs of an encoder (issue 20 §3): computed from a structure by
:mod:`cloudphys.scope.geometry` (their home, below the encoders so that conversion and the SCOPE
cache can compute them), re-exported here where the encoders read them."""

from __future__ import annotations

from ..scope.geometry import (  # noqa: F401
    ALL_GEOMETRIC_FEATURES,
    BOND_FEATURES,
    GEOMETRIC_FEATURES,
    GEOMETRY_LAYOUTS,
    GEOMETRY_MEAN,
    GEOMETRY_STD,
    N_GEOMETRIC_FEATURES,
    NEEDS_STRUCTURE,
    SHELL,
    geometric_features,
    geometry_layout,
    geometry_rows,
    n_geometric_features,
    raw_geometric_features,
    reads_geometry,
    standardise,
)

__all__ = [
    "ALL_GEOMETRIC_FEATURES",
    "BOND_FEATURES",
    "GEOMETRIC_FEATURES",
    "GEOMETRY_LAYOUTS",
    "GEOMETRY_MEAN",
    "GEOMETRY_STD",
    "N_GEOMETRIC_FEATURES",
    "NEEDS_STRUCTURE",
    "geometric_features",
    "geometry_layout",
    "geometry_rows",
    "n_geometric_features",
    "raw_geometric_features",
    "reads_geometry",
    "standardise",
]
