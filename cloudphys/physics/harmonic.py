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

Below x = :data:`SERIES_X` (T ≫ θ) the Bose terms use Taylor series in x, with
ln x = ln θ − ln T, so that autograd never forms 1/x² (which overflows float32 at T/θ ≳ 1e19
although the derivatives themselves are small): values and gradients are finite at every finite
T up to :func:`cloudphys.physics.contract.temperature_limit`.

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

__all__ = ["OSCILLATOR_X_CUT", "SERIES_X", "X_SPLIT", "bose_series", "bose_x", "oscillator_thermo", "work_dtype"]

#: Beyond x = θ/T = OSCILLATOR_X_CUT the thermal part of a mode (cv/R ≈ x²e⁻ˣ, s/R ≈ (x + 1)e⁻ˣ) is below
#: 1e-340, far below half the smallest subnormal float64 (2.5e-324): it rounds to 0 in every dtype
#: and is dropped.
OSCILLATOR_X_CUT = 800.0
#: Below x = θ/T = SERIES_X the Bose terms use their Taylor series (see :func:`bose_series`).
SERIES_X = 1e-2
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
    zero = torch.zeros_like(x)
    # Below SERIES_X (T ≫ θ) the closed forms divide by 1 − e⁻ˣ ≈ x, and autograd's intermediate
    # derivatives (∝ 1/x²) overflow although the result's are small: series there, in
    # xs = x; the closed forms get the harmless xl = 1 (the double-where trick).
    small = x < SERIES_X
    xs = torch.where(small, x, zero)
    xl = torch.where(small, torch.ones_like(x), x)
    g_s = bose_series(xs)  # x/(eˣ − 1)
    ratio_s = g_s + xs  # x/(1 − e⁻ˣ)
    h = torch.exp(-0.5 * xl)  # e^{−x/2}: a normal number wherever cv or s is
    q = h * h  # e⁻ˣ (may be subnormal or 0: used only where that cannot matter)
    em = -torch.expm1(-xl)  # 1 − e⁻ˣ, in (0, 1]
    ratio_l = xl / em
    out: dict[str, Tensor] = {}
    if "u" in wanted:
        # θ/(eˣ − 1) = T·x/(eˣ − 1): the series keeps T·g(x) well scaled as T → ∞.
        thermal = torch.where(small, T_in * g_s, theta * (q / em))
        out["u"] = R_GAS * (0.5 * theta + torch.where(inside, thermal, zero))
    if "cv" in wanted:
        # x²e⁻ˣ/(1 − e⁻ˣ)² = (x/2 / sinh(x/2))², squared last so that nothing underflows early.
        xh = torch.where(small, ratio_s * torch.exp(-0.5 * xs), ratio_l * h)
        out["cv"] = R_GAS * torch.where(inside, xh * xh, zero)
    if "s" in wanted or "f" in wanted:
        # ln(1 − e⁻ˣ) ≤ 0: ln x − ln(x/(1 − e⁻ˣ)) with ln x = ln θ − ln T below SERIES_X;
        # log(1 − e⁻ˣ) up to x = ln 2, log1p(−e⁻ˣ) beyond (accurate value and derivative where
        # e⁻ˣ ≪ 1). Both e⁻ˣ and 1 − e⁻ˣ equal 1/2 at x = ln 2, so clamping each at 1/2 gives the
        # unused branch a harmless argument (finite value, zero gradient).
        log_l = torch.where(xl > _LN2, torch.log1p(-q.clamp(max=0.5)), torch.log(em.clamp(max=0.5)))
        log_s = torch.log(theta) - torch.log(T_in) - torch.log(ratio_s)
        log_em = torch.where(inside, torch.where(small, log_s, log_l), zero)
    if "s" in wanted:
        near = ratio_l * q - log_l  # x·e⁻ˣ/(1 − e⁻ˣ) − ln(1 − e⁻ˣ)
        far = h * (h * (ratio_l + 1.0 + 0.5 * q))  # the same for x > X_SPLIT, without underflow
        s_l = torch.where(xl > X_SPLIT, far, near)
        out["s"] = R_GAS * torch.where(inside, torch.where(small, g_s - log_s, s_l), zero)
    if "f" in wanted:
        out["f"] = R_GAS * (0.5 * theta + T * log_em)
    return {k: v.to(dtype) for k, v in out.items()}


def bose_series(x: Tensor) -> Tensor:
    """x/(eˣ − 1) by its Taylor series 1 − x/2 + x²/12 − x⁴/720 + x⁶/30240, for 0 ≤ x ≤ SERIES_X.

    At x = SERIES_X the first dropped term (x⁸/1209600) is 8e-23 relative: exact in float64.
    """
    x2 = x * x
    return 1.0 - 0.5 * x + x2 * (1.0 / 12.0 + x2 * (-1.0 / 720.0 + x2 * (1.0 / 30240.0)))


def bose_x(x: Tensor) -> Tensor:
    """g(x) = x/(eˣ − 1) for x ≥ 0 (g(0) = 1), with finite value and gradient at every x ≥ 0.

    The series below :data:`SERIES_X`, x·e⁻ˣ/(1 − e⁻ˣ) above (no overflow of eˣ).
    """
    small = x < SERIES_X
    xs = torch.where(small, x, torch.zeros_like(x))
    xl = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, bose_series(xs), xl * torch.exp(-xl) / -torch.expm1(-xl))
