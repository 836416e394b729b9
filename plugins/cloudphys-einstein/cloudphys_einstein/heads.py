"""Einstein and Debye+Einstein heads.

Units as in the built-in Debye head: per mole of cells of ``n`` atoms, u and f in J/mol (u with
the zero-point energy, f = u − T·s), cv and s in J/(K·mol).

* ``einstein``: all 3·n modes at one Einstein temperature θ_E,
  u = 3nRθ_E(1/2 + 1/(e^{θ_E/T} − 1)) and so on (see :mod:`cloudphys.physics.harmonic`).
* ``debye-einstein``: per primitive cell of p atoms, the 3 acoustic branches as a Debye solid of
  Debye temperature θ_D (the Debye head with one atom: 3 modes, zero-point energy 9/8·R·θ_D), the
  3(p − 1) optical branches as Einstein modes at θ_E; a given cell of n atoms holds n/p primitive
  cells. p is the condition ``n_atoms_primitive`` (``predict`` takes it from each structure, so
  per-atom values do not depend on the cell the crystal is written in); ``n_atoms`` when not
  given, as before. Needs p ≥ 1.

Both reuse the core numerics: Gauss–Legendre Debye integral with a cut-off (``DebyeHead``) and the
overflow-free oscillator sums of :func:`cloudphys.physics.harmonic.oscillator_thermo`, finite with
finite gradients at T = 0.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from cloudphys.physics import DebyeHead, LatentSpec, PhysicsHead, oscillator_thermo, work_dtype

__all__ = ["EinsteinHead", "DebyeEinsteinHead"]

_THETA_E = LatentSpec(
    "theta_E", "K", lower=1.0, upper=5000.0, typical=300.0, scale="log",
    description="Einstein temperature (hν/k_B of the Einstein modes)",
)


class EinsteinHead(PhysicsHead):
    """Einstein model: all 3·n modes at one Einstein temperature θ_E."""

    name = "einstein"
    description = "Einstein model: 3n harmonic modes at one Einstein temperature θ_E (exact sums)"
    latents = (_THETA_E,)
    observables = DebyeHead.observables

    def compute(
        self, latents: dict[str, Tensor], temperature: Tensor, n_atoms: Tensor, observables: tuple[str, ...]
    ) -> dict[str, Tensor]:
        theta = latents["theta_E"]
        dtype, work = work_dtype(theta, temperature)
        modes = 3.0 * n_atoms.to(work)
        per_mode = oscillator_thermo(theta.to(work), temperature.to(work), observables)
        return {k: (modes * v).to(dtype) for k, v in per_mode.items()}


class DebyeEinsteinHead(PhysicsHead):
    """Debye θ_D for the 3 acoustic branches, Einstein θ_E for the 3(p − 1) optical branches of each
    primitive cell of p atoms (``n_atoms_primitive``)."""

    name = "debye-einstein"
    description = "per primitive cell of p atoms: 3 acoustic modes as a Debye solid (θ_D) + 3(p−1) optical at θ_E"
    # n_atoms_primitive: the split into acoustic and optical modes is per primitive cell (issue 12 §1)
    conditions = ("temperature", "n_atoms", "n_atoms_primitive")
    latents = (
        LatentSpec(
            "theta_D", "K", lower=1.0, upper=5000.0, typical=200.0, scale="log",
            description="Debye temperature of the 3 acoustic branches",
        ),
        LatentSpec(
            "theta_E", "K", lower=1.0, upper=5000.0, typical=400.0, scale="log",
            description="Einstein temperature of the 3(n−1) optical branches",
        ),
    )
    observables = DebyeHead.observables

    def __init__(self, observables: Sequence[str] | None = None, order: int | None = None) -> None:
        super().__init__(observables)
        # The acoustic part is the built-in Debye head evaluated for one atom (3 modes).
        self.acoustic = DebyeHead(order=order)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "order": self.acoustic.order}

    def compute(
        self, latents: dict[str, Tensor], temperature: Tensor, n_atoms: Tensor, observables: tuple[str, ...],
        n_atoms_primitive: Tensor | None = None,
    ) -> dict[str, Tensor]:
        theta_d, theta_e = latents["theta_D"], latents["theta_E"]
        dtype, work = work_dtype(theta_d, theta_e, temperature)
        T, n = temperature.to(work), n_atoms.to(work)
        p = n if n_atoms_primitive is None else n_atoms_primitive.to(work)
        what = "n_atoms" if n_atoms_primitive is None else "n_atoms_primitive"
        if not torch.jit.is_scripting() and bool((p.detach() < 1).any()):
            bad = float(p.detach()[p.detach() < 1][0])
            raise ValueError(
                f"head {self.name!r}: invalid {what} {bad!r} (must be >= 1: 3 acoustic + 3(p-1) optical modes "
                "per primitive cell of p atoms)"
            )
        # primitive cells in the given cell: 3 acoustic modes each (the Debye head, one atom each)
        cells = torch.ones_like(n) if n_atoms_primitive is None else n / p
        acoustic = self.acoustic.compute({"theta_D": theta_d.to(work)}, T, cells, observables)
        optical = oscillator_thermo(theta_e.to(work), T, observables)
        optical_modes = 3.0 * (n - cells)
        return {k: (acoustic[k] + optical_modes * optical[k]).to(dtype) for k in observables}
