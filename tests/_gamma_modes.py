"""Compare phonopy curves up to the noise of the three acoustic modes at Γ.

phonopy's acoustic frequencies at Γ come out as numerical noise of either sign (~1e-7 THz), and the
ones that come out positive are counted as classical modes (hν ≪ kT at every T ≥ 5 K). Which ones
do depends on the machine's linear algebra, so two machines building the same archive can count
m ∈ {-3, …, 3} more such modes. Each, with mesh weight w = 1/N_q, per mole of cells adds exactly

    Δcv = w R,   Δu = w R T,   Δs = w R (ln T + const),   Δf = Δu − T Δs

(the constant depends on the noise frequency). :func:`assert_curves_agree` fits the integer m and the
entropy constant from the 1000 K point and requires every value to agree within the tolerance once
those are removed -- any other difference fails.
"""

from __future__ import annotations

import numpy as np

from cloudphys.data.phonondb_build import gamma_mode_corrections

__all__ = ["assert_curves_agree", "gamma_mode_corrections"]

#: Half a unit of the last decimal stored in materials.jsonl.gz (cv, s: 1e-6; u, f: 1e-3).
ROUNDING = {"cv": 5e-7, "s": 5e-7, "u": 5e-4, "f": 5e-4}


def assert_curves_agree(built: dict, ref: dict, temperatures, n_q: int, *, rtol: float = 1e-4,
                        observables=("cv", "s", "u", "f"), label: str = "") -> int:
    """Every value of ``built`` within ``rtol`` (+ stored rounding) of ``ref`` after the Γ-mode part.

    :returns: m, the number of Γ acoustic modes ``built`` counts more than ``ref``.
    """
    m, model = gamma_mode_corrections(built, ref, temperatures, n_q)
    T = np.asarray(temperatures, dtype=np.float64)
    for obs in observables:
        a = np.asarray(built[obs], dtype=np.float64) - model[obs]
        b = np.asarray(ref[obs], dtype=np.float64)
        # both sides are rounded; the fitted entropy constant carries the rounding of s (times T in f)
        tol = rtol * np.abs(b) + 2 * ROUNDING[obs] + {"s": 1e-6, "f": 2e-6 * T}.get(obs, 0.0)
        bad = np.abs(a - b) > tol
        assert not bad.any(), (label, obs, f"m={m}", np.asarray(temperatures)[bad], a[bad], b[bad])
    return m
