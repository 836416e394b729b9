"""Physics heads: the contract, quadrature, harmonic (oscillator) sums and the built-in Debye head.

Everything a head author needs is exported here (a plugin imports ``cloudphys.physics`` only):
the contract (:class:`PhysicsHead`, :class:`LatentSpec`, :class:`ObservableSpec`, ``R_GAS``), the
four thermodynamic observables declared once (``THERMODYNAMIC_OBSERVABLES``), exact oscillator
thermodynamics (:func:`oscillator_thermo`, :func:`log1mexp`, :func:`work_dtype`), the Debye sums
(:class:`DebyeHead`, :func:`debye_integral`, :func:`debye_function`) and Gauss–Legendre quadrature.
"""

from __future__ import annotations

from ..observables import THERMODYNAMIC_OBSERVABLES, THERMODYNAMIC_UNITS
from .contract import (
    CONDITIONS,
    R_GAS,
    LatentSpec,
    ObservableSpec,
    PhysicsHead,
    check_inputs,
    n_atoms_limit,
    temperature_limit,
    validate_head_class,
)
from .debye import DEBYE_X_CUT, DebyeHead, debye_function, debye_integral
from .harmonic import OSCILLATOR_X_CUT, log1mexp, oscillator_thermo, work_dtype
from .quadrature import gauss_legendre, integrate_0_to

__all__ = [
    "CONDITIONS",
    "DEBYE_X_CUT",
    "OSCILLATOR_X_CUT",
    "R_GAS",
    "THERMODYNAMIC_OBSERVABLES",
    "THERMODYNAMIC_UNITS",
    "LatentSpec",
    "ObservableSpec",
    "PhysicsHead",
    "DebyeHead",
    "check_inputs",
    "debye_function",
    "debye_integral",
    "validate_head_class",
    "gauss_legendre",
    "integrate_0_to",
    "log1mexp",
    "n_atoms_limit",
    "temperature_limit",
    "oscillator_thermo",
    "work_dtype",
]
