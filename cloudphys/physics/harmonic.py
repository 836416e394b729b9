"""Exact thermodynamics of harmonic oscillators (Einstein modes), the building block of plugin heads.

For one mode of characteristic temperature θ = hν/k_B (K) at temperature T (K), with x = θ/T and
per mole of modes (multiply by the number of modes per cell):

* u  = R·θ·(1/2 + 1/(eˣ − 1))                  (J/mol, zero-point energy R·θ/2 included)
* cv = R·(x/2 / sinh(x/2))²                     (J/(K·mol))
* s  = R·(x/(eˣ − 1) − ln(1 − e⁻ˣ))             (J/(K·mol))
* f  = R·θ/2 + R·T·ln(1 − e⁻ˣ)                  (J/mol)

Numerics (same standard as :mod:`cloudphys.physics.debye`): the Bose factor is written
e⁻ˣ/(1 − e⁻ˣ) = exp(−x)/(−expm1(−x)), so nothing overflows for large x, and ln(1 − e⁻ˣ) is
``log(-expm1(-x))``. Where x ≥ :data:`X_CUT` (T = 0 included) the thermal terms are below e⁻⁵⁰
relative to the zero-point term and are set to exactly zero through ``torch.where`` with a
harmless substitute x = 1 in the unused branch, so values *and* gradients stay finite at T = 0
(the limits Cv = S = 0, U = F = R·θ/2 come out of the same code path).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from .contract import R_GAS

__all__ = ["X_CUT", "oscillator_thermo", "work_dtype"]

#: Beyond x = θ/T = X_CUT the thermal part of a mode is below e⁻⁵⁰ ≈ 2e-22 of R·θ and is dropped.
X_CUT = 50.0

_KNOWN = ("u", "cv", "s", "f")


def work_dtype(*tensors: Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(result dtype, working dtype): float32/float64 compute as themselves, half types in float32."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    return dtype, work


def oscillator_thermo(theta: Tensor, temperature: Tensor, observables: Iterable[str] = _KNOWN) -> dict[str, Tensor]:
    """Thermodynamics of one harmonic mode per mole of modes (see the module docstring).

    :param theta: mode temperature θ in K (> 0), any shape broadcastable with ``temperature``.
    :param temperature: T in K (≥ 0).
    :param observables: subset of ``u`` (J/mol), ``cv`` (J/(K·mol)), ``s`` (J/(K·mol)),
        ``f`` (J/mol).
    :returns: ``{name: tensor}`` of the broadcast shape, in the dtype of the inputs (computed in
        float32 for half types).
    """
    wanted = tuple(observables)
    unknown = [o for o in wanted if o not in _KNOWN]
    if unknown:
        raise ValueError(f"unknown oscillator observables {unknown}; known: {', '.join(_KNOWN)}")
    dtype, work = work_dtype(theta, temperature)
    theta, T = theta.to(work), temperature.to(work)

    inside = T * X_CUT > theta  # x < X_CUT; False at T = 0
    T_in = torch.where(inside, T, theta)  # x = 1 where unused: finite value and gradient
    x = theta / T_in
    em = -torch.expm1(-x)  # 1 − e⁻ˣ, in (0, 1)
    zero = torch.zeros_like(x)
    out: dict[str, Tensor] = {}
    if "u" in wanted or "s" in wanted:
        bose = torch.exp(-x) / em  # 1/(eˣ − 1)
    if "u" in wanted:
        out["u"] = R_GAS * theta * (0.5 + torch.where(inside, bose, zero))
    if "cv" in wanted:
        # x²e⁻ˣ/(1 − e⁻ˣ)² = (x/2 / sinh(x/2))², written without overflow for large x.
        ratio = x / em
        out["cv"] = R_GAS * torch.where(inside, ratio * ratio * torch.exp(-x), zero)
    if "s" in wanted or "f" in wanted:
        log_em = torch.where(inside, torch.log(em), zero)
        if "s" in wanted:
            out["s"] = R_GAS * (torch.where(inside, x * bose, zero) - log_em)
        if "f" in wanted:
            out["f"] = R_GAS * (0.5 * theta + T * log_em)
    return {k: v.to(dtype) for k, v in out.items()}
