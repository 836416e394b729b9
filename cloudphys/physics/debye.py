"""The Debye model as a differentiable physics head (built-in plugin ``debye``).

For a cell of ``n`` atoms with Debye temperature θ at temperature T, with x = θ/T and the Debye
function D₃(x) = 3/x³ ∫₀ˣ t³/(eᵗ − 1) dt (per mole of cells, R in J/(K·mol)):

* U  = 9/8·n·R·θ + 3·n·R·T·D₃(x)                      (J/mol, zero-point energy included)
* Cv = 3·n·R·[4·D₃(x) − 3x/(eˣ − 1)]                  (J/(K·mol))
* S  = n·R·[4·D₃(x) − 3·ln(1 − e⁻ˣ)]                  (J/(K·mol))
* F  = U − T·S = 9/8·n·R·θ + n·R·T·[3·ln(1 − e⁻ˣ) − D₃(x)]   (J/mol)

All four come from the one integral J(u) = ∫₀ᵘ t³/expm1(t) dt, evaluated by Gauss–Legendre
quadrature over [0, min(x, x_c)] with x_c = :data:`DEBYE_X_CUT` = 50: the integrand decays like
t³e⁻ᵗ, so the part beyond x_c is below 1e-17 of the total, while a fixed number of nodes stays
accurate for any θ/T (see docs/physics.md). ``expm1`` and ``log(-expm1(-x))`` /
``log1p(-exp(-x))`` keep every term finite and accurate.

D₃ is never formed as 3·J(x)/x³ (x³ underflows and 1/x³ overflows once T/θ ≳ 1e13 in float32):
below the cut-off it is D₃(x) = 3·∫₀¹ s²·g(x·s) ds with g(y) = y/(eʸ − 1) ∈ (0, 1], the same
Gauss–Legendre sum in the variable s = t/x, finite with finite gradients at every finite T; beyond
the cut-off (T = 0 included) it is 3·r³·J(x_c) with r = T/θ, so that Cv = S = 0 and
U = F = 9/8·n·R·θ come out of the same code path with finite gradients.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Sequence

import torch
from torch import Tensor

from ..bounds import Bound
from ..hookspecs import hookimpl
from ..observables import THERMODYNAMIC_OBSERVABLES
from .contract import R_GAS, LatentSpec, PhysicsHead
from .harmonic import log1mexp
from .quadrature import gauss_legendre, integrate_0_to

__all__ = ["DebyeHead", "debye_integral", "debye_function", "DEBYE_X_CUT", "default_order"]

#: Upper cut-off of the Debye integral in units of x = θ/T: the tail ∫_{x_c}^∞ t³/(eᵗ − 1) dt is
#: < 1e-17 of the total, below float64 rounding. (Unrelated to the oscillators' cut-off
#: :data:`cloudphys.physics.harmonic.OSCILLATOR_X_CUT`, which is where their terms leave float64.)
DEBYE_X_CUT = 50.0

_DEFAULT_ORDER = {torch.float64: 40, torch.float32: 24}
#: A quadrature order a config may give (beyond 1024 nodes nothing changes but the memory of leggauss).
QuadratureOrder = Annotated[int, Bound(ge=2, le=1024, remedy="the default (24 in float32, 40 in float64) is accurate")]


def default_order(dtype: torch.dtype) -> int:
    """Gauss–Legendre nodes used for ``dtype`` (40 in float64, 24 otherwise)."""
    return _DEFAULT_ORDER.get(dtype, 24)


def _j3_integrand(t: Tensor) -> Tensor:
    return t * t * t / torch.expm1(t)


def debye_integral(upper: Tensor, order: int | None = None) -> Tensor:
    """J(u) = ∫₀ᵘ t³/(eᵗ − 1) dt for u in [0, DEBYE_X_CUT] by Gauss–Legendre quadrature."""
    return integrate_0_to(_j3_integrand, upper, order or default_order(upper.dtype))


def _bose_clamped(y: Tensor) -> Tensor:
    """g(y) = y/(eʸ − 1) for 0 ≤ y ≤ DEBYE_X_CUT, y clamped below at the dtype's epsilon ε.

    g(y) = 1 − y/2 + O(y²), so the clamp changes values by < ε/2 relative, and it keeps autograd's
    intermediate y/expm1(y)² ≤ 1/ε: finite gradients at any T (the dropped derivative −1/2 below
    ε changes ∂/∂T of the observables by < ε relative).
    """
    y = y.clamp(min=torch.finfo(y.dtype).eps)
    return y / torch.expm1(y)


def debye_function(x: Tensor, order: int | None = None) -> Tensor:
    """D₃(x) = 3/x³·∫₀ˣ t³/(eᵗ − 1) dt = 3·∫₀¹ s²·g(x·s) ds for x in [0, DEBYE_X_CUT].

    The same Gauss–Legendre sum as 3·J(x)/x³ in the variable s = t/x, but it never forms x³ or
    1/x³ (which leave float32 once T/θ ≳ 1e13): finite with finite gradients for every x ≥ 0.
    """
    nodes, weights = gauss_legendre(order or default_order(x.dtype), x.dtype, x.device)
    return (_bose_clamped(x.unsqueeze(-1) * nodes) * (3.0 * nodes * nodes * weights)).sum(-1)


class DebyeHead(PhysicsHead):
    """Debye model: one Debye temperature per material gives u, cv, s, f at any temperature."""

    name = "debye"
    description = "Debye model (3n acoustic-like modes up to k·θ_D), Gauss–Legendre quadrature"
    latents = (
        LatentSpec(
            "theta_D", "K", lower=1.0, upper=5000.0, typical=300.0, scale="log",
            description="Debye temperature",
        ),
    )
    observables = THERMODYNAMIC_OBSERVABLES

    def __init__(self, observables: Sequence[str] | None = None, order: QuadratureOrder | None = None) -> None:
        super().__init__(observables)
        if order is not None and int(order) < 2:
            raise ValueError(f"quadrature order must be >= 2, got {order}")
        self.order = None if order is None else int(order)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "order": self.order}

    def compute(
        self, latents: dict[str, Tensor], temperature: Tensor, n_atoms: Tensor, observables: tuple[str, ...]
    ) -> dict[str, Tensor]:
        theta = latents["theta_D"]
        dtype = torch.promote_types(theta.dtype, temperature.dtype)
        work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        theta, T, n = theta.to(work), temperature.to(work), n_atoms.to(work)
        nR = n * R_GAS

        # x = θ/T where it is below the cut-off; elsewhere (T = 0 included) a harmless
        # substitute, so that neither the value nor the gradient of the unused branch is inf.
        order = self.order or default_order(work)
        inside = T * DEBYE_X_CUT > theta
        T_in = torch.where(inside, T, theta)
        x = theta / T_in
        # D₃(x) below the cut-off (no x³, no 1/x³); 3·r³·J(x_c) beyond it, r = T/θ < 1/x_c.
        r = torch.where(inside, torch.zeros_like(T), T / theta)
        j_cut = debye_integral(x.new_full((), DEBYE_X_CUT), order)
        d3 = torch.where(inside, debye_function(x, order), 3.0 * r * r * r * j_cut)

        out: dict[str, Tensor] = {}
        zpe = 1.125 * nR * theta
        if "u" in observables:
            out["u"] = zpe + 3.0 * nR * T * d3
        if "cv" in observables:
            boson = torch.where(inside, _bose_clamped(x), torch.zeros_like(x))
            out["cv"] = 3.0 * nR * (4.0 * d3 - 3.0 * boson)
        if "s" in observables or "f" in observables:
            # ln(1 − e⁻ˣ) by the oscillators' log1mexp: log1p(−e⁻ˣ) above ln 2 (−expm1(−x) rounds to
            # 1 once e⁻ˣ is below the dtype's epsilon and the log loses all of its digits),
            # log(−expm1(−x)) below, ln θ − ln T − ln(x/(1 − e⁻ˣ)) for x < 0.01 (autograd never
            # forms 1/x, which times T overflows float32 once T ≫ θ); dropped beyond the cut-off
            # (below e⁻⁵⁰ relative).
            log_term = torch.where(inside, log1mexp(x, torch.log(theta) - torch.log(T_in)), torch.zeros_like(x))
            if "s" in observables:
                out["s"] = nR * (4.0 * d3 - 3.0 * log_term)
            if "f" in observables:
                out["f"] = zpe + nR * T * (3.0 * log_term - d3)
        return {k: v.to(dtype) for k, v in out.items()}


@hookimpl
def register_heads(register: Callable[[type], None]) -> None:
    register(DebyeHead)
