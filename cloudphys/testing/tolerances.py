"""Tolerances of the head contract battery, per dtype.

Errors are measured against a *scale* per observable and element, so that one number works for
every head, temperature and cell size:

* heat capacity and entropy (J/(K·mol)): 3·n·R + |reference value| (s grows like ln T);
* energies (u, f in J/mol): 3·n·R·max(T, :data:`ENERGY_FLOOR_K`) + |reference value|. The floor
  keeps the scale positive at T = 0 for a head without zero-point energy (u(0) = 0: a two-level
  Schottky head), where 3·n·R·T and u both vanish; for T ≥ 1 K it changes nothing;
* anything else: |reference value| (+ 1e-300).
"""

from __future__ import annotations

import torch

__all__ = ["TOLERANCES", "tolerance", "IDENTITY_RTOL", "BATCH_RTOL", "LIMIT_RTOL", "GRADCHECK", "ENERGY_FLOOR_K"]

#: Agreement with float64 (evaluated at the same, rounded inputs), relative to the scale.
TOLERANCES: dict[torch.dtype, float] = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,  # the heads' float32 accuracy target; all four heads stay below 1e-6 here
    torch.bfloat16: 2e-2,
    torch.float16: 2e-3,
}

#: Thermodynamic identities (autograd derivatives vs returned values), float64.
IDENTITY_RTOL = 1e-8
#: Batched vs one sample at a time, float64.
BATCH_RTOL = 1e-11
#: Limits: T = 0 (cv = s = 0, u = f) and the classical limit cv → 3nR, u → 3nRT.
LIMIT_RTOL = 1e-4
#: K: the energy scale is never below 3·n·R × this temperature (an absolute floor of about
#: 25 J/mol per atom), so relative checks of u and f stay defined where u(0) = 0.
ENERGY_FLOOR_K = 1.0
#: ``torch.autograd.gradcheck`` settings (float64, outputs normalised to order one).
GRADCHECK = {"eps": 1e-6, "atol": 1e-5, "rtol": 1e-3}


def tolerance(dtype: torch.dtype) -> float:
    """Agreement tolerance with float64 for results computed in ``dtype``."""
    try:
        return TOLERANCES[dtype]
    except KeyError:
        raise ValueError(f"no tolerance for dtype {dtype}; known: {sorted(map(str, TOLERANCES))}") from None
