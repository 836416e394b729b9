"""Physics heads: the contract, quadrature, and the built-in Debye head."""

from __future__ import annotations

from .contract import CONDITIONS, R_GAS, LatentSpec, ObservableSpec, PhysicsHead, check_inputs, validate_head_class
from .debye import DebyeHead
from .quadrature import gauss_legendre, integrate_0_to

__all__ = [
    "CONDITIONS",
    "R_GAS",
    "LatentSpec",
    "ObservableSpec",
    "PhysicsHead",
    "DebyeHead",
    "check_inputs",
    "validate_head_class",
    "gauss_legendre",
    "integrate_0_to",
]
