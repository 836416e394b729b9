"""Exact thermodynamics of harmonic oscillators (Einstein modes), the building block of plugin heads.

For one mode of characteristic temperature θ = hν/k_B (K) at temperature T (K), with x = θ/T and
per mole of modes (multiply by the number of modes per cell):

* u  = R·θ·(1/2 + 1/(eˣ − 1))                  (J/mol, zero-point energy R·θ/2 included)
* cv = R·(x/2 / sinh(x/2))²                     (J/(K·mol))
* s  = R·(x/(eˣ − 1) − ln(1 − e⁻ˣ))             (J/(K·mol))
* f  = R·θ/2 + R·T·ln(1 − e⁻ˣ)                  (J/mol)

Numerics (same standard as :mod:`cloudphys.physics.debye`: relative error ≤ 1e-10 in float64 and
≤ 1e-5 in float32 for every observable and every x; u and f relative to R·(T + θ), cv and s
relative to their own value wherever that is a normal number of the dtype). Nothing overflows and
no intermediate result is subnormal where the result is not:

* with h = e^{−x/2} and 1 − e⁻ˣ = ``-expm1(-x)``, cv/R = (x·h/(1 − e⁻ˣ))², so cv keeps full
  relative precision down to the dtype's smallest normal number (x ≈ 96 in float32, ≈ 720 in
  float64) although e⁻ˣ itself is subnormal there;
* s/R = x·e⁻ˣ/(1 − e⁻ˣ) − ln(1 − e⁻ˣ) for x ≤ :data:`X_SPLIT`; beyond, where e⁻ˣ may be
  subnormal while s is not, s/R = h·(h·(x/(1 − e⁻ˣ) + 1 + e⁻ˣ/2)), from
  −ln(1 − q) = q·(1 + q/2 + O(q²)) with q = e⁻ˣ < 2.1e-9 (the O(q²) term is below 1e-17 relative);
* the Bose factor 1/(eˣ − 1) = e⁻ˣ/(1 − e⁻ˣ) (its tiny values only matter relative to R·θ/2);
  ln(1 − e⁻ˣ) is ``log(-expm1(-x))`` for x ≤ ln 2 and ``log1p(-exp(-x))`` above, so that its
  autograd derivative e⁻ˣ/(1 − e⁻ˣ) is also relatively accurate (S = −∂F/∂T holds to rounding).

T ≫ θ (x → 0): the closed forms divide by 1 − e⁻ˣ ≈ x, and autograd's intermediate derivatives
(∝ 1/x²) overflow float32 at T/θ ≳ 1e19 although the derivatives themselves are small. So x is
clamped below at the dtype's epsilon ε wherever only x/(1 − e⁻ˣ) = 1 + x/2 + … or
x/(eˣ − 1) = 1 − x/2 + … enter (values change < ε/2 relative), the thermal energy is written
θ/(eˣ − 1) = T·x/(eˣ − 1), and below x = :data:`X_SMALL` ln(1 − e⁻ˣ) = ln θ − ln T −
ln(x/(1 − e⁻ˣ)) (:func:`log1mexp`): values and gradients are finite at every finite T up to
:func:`cloudphys.physics.contract.temperature_limit`.

Where x ≥ :data:`OSCILLATOR_X_CUT` (T = 0 included) every thermal term is below half the smallest subnormal
number of float64, i.e. exactly 0 in any dtype; it is set to 0 through ``torch.where`` with a
harmless substitute x = 1 in the unused branch (the double-``where`` trick), so values *and*
gradients stay finite on both sides and at T = 0 (the limits Cv = S = 0, U = F = R·θ/2 come out of
the same code path).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from .contract import R_GAS

__all__ = ["OSCILLATOR_X_CUT", "X_SMALL", "X_SPLIT", "log1mexp", "oscillator_thermo", "work_dtype"]

#: Beyond x = θ/T = OSCILLATOR_X_CUT the thermal part of a mode (cv/R ≈ x²e⁻ˣ, s/R ≈ (x + 1)e⁻ˣ) is below
#: 1e-340, far below half the smallest subnormal float64 (2.5e-324): it rounds to 0 in every dtype
#: and is dropped.
OSCILLATOR_X_CUT = 800.0
#: Below x = θ/T = X_SMALL, ln(1 − e⁻ˣ) is computed as ln x − ln(x/(1 − e⁻ˣ)) (see :func:`log1mexp`).
X_SMALL = 1e-2
#: Above x = X_SPLIT the entropy uses the form h·(h·(x/(1 − e⁻ˣ) + 1 + e⁻ˣ/2)), h = e^{−x/2}.
X_SPLIT = 20.0

_KNOWN = ("u", "cv", "s", "f")
_LN2 = 0.6931471805599453


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

    inside = T * OSCILLATOR_X_CUT > theta  # x < OSCILLATOR_X_CUT; False at T = 0
    T_in = torch.where(inside, T, theta)  # x = 1 where unused: finite value and gradient
    x = theta / T_in
    xc = x.clamp(min=torch.finfo(work).eps)  # see the module docstring (T ≫ θ)
    h = torch.exp(-0.5 * xc)  # e^{−x/2}: a normal number wherever cv or s is
    q = h * h  # e⁻ˣ (may be subnormal or 0: used only where that cannot matter)
    em = -torch.expm1(-xc)  # 1 − e⁻ˣ, in (0, 1]
    ratio = xc / em  # x/(1 − e⁻ˣ) ≥ 1
    zero = torch.zeros_like(x)
    out: dict[str, Tensor] = {}
    if "u" in wanted:
        # θ/(eˣ − 1) = T·x·e⁻ˣ/(1 − e⁻ˣ): well scaled as T → ∞ (its tiny values at large x only
        # matter relative to R·θ/2).
        out["u"] = R_GAS * (0.5 * theta + torch.where(inside, T_in * (ratio * q), zero))
    if "cv" in wanted:
        # x²e⁻ˣ/(1 − e⁻ˣ)² = (x/2 / sinh(x/2))², squared last so that nothing underflows early.
        xh = ratio * h
        out["cv"] = R_GAS * torch.where(inside, xh * xh, zero)
    if "s" in wanted or "f" in wanted:
        log_em = torch.where(inside, _log1mexp(x, torch.log(theta) - torch.log(T_in), q, em, ratio), zero)
    if "s" in wanted:
        near = ratio * q - log_em  # x·e⁻ˣ/(1 − e⁻ˣ) − ln(1 − e⁻ˣ)
        far = h * (h * (ratio + 1.0 + 0.5 * q))  # the same for x > X_SPLIT, without underflow
        out["s"] = R_GAS * torch.where(inside, torch.where(x > X_SPLIT, far, near), zero)
    if "f" in wanted:
        out["f"] = R_GAS * (0.5 * theta + T * log_em)
    return {k: v.to(dtype) for k, v in out.items()}


def _log1mexp(x: Tensor, log_x: Tensor, q: Tensor, em: Tensor, ratio: Tensor) -> Tensor:
    # ln(1 − e⁻ˣ) ≤ 0: log1p(−e⁻ˣ) above ln 2 (accurate value and derivative where e⁻ˣ ≪ 1),
    # log(1 − e⁻ˣ) down to X_SMALL, ln x − ln(x/(1 − e⁻ˣ)) below. Both e⁻ˣ and 1 − e⁻ˣ equal 1/2 at
    # x = ln 2, so clamping each at 1/2 gives the unused branch a harmless argument.
    return torch.where(
        x > _LN2,
        torch.log1p(-q.clamp(max=0.5)),
        torch.where(x < X_SMALL, log_x - torch.log(ratio), torch.log(em.clamp(max=0.5))),
    )


def log1mexp(x: Tensor, log_x: Tensor) -> Tensor:
    """ln(1 − e⁻ˣ) for x > 0, with finite value and gradient at every x (see the module docstring).

    :param x: x > 0 (any shape).
    :param log_x: ln x, computed by the caller in a well-scaled form (e.g. ln θ − ln T), used
        below :data:`X_SMALL`, where ln(1 − e⁻ˣ) = ln x − ln(x/(1 − e⁻ˣ)).
    """
    xc = x.clamp(min=torch.finfo(x.dtype).eps)
    em = -torch.expm1(-xc)
    return _log1mexp(x, log_x, torch.exp(-xc), em, xc / em)
