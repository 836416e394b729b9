"""The four thermodynamic observables, declared once (torch-free; the bottom layer).

Heads (:mod:`cloudphys.physics`), data sets (:mod:`cloudphys.data`), results and exports read the
names, units and meaning of ``u``, ``cv``, ``s`` and ``f`` from here. All four are extensive: per mole
of the cells a value refers to (the head scales them by the atoms of the cell it is given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ObservableSpec", "THERMODYNAMIC_OBSERVABLES", "THERMODYNAMIC_UNITS"]


@dataclass(frozen=True)
class ObservableSpec:
    """An observable a head gives.

    :param name: key in the returned mapping, e.g. ``"cv"``.
    :param unit: e.g. ``"J/(K*mol)"``.
    :param extensive: ``True`` if the value is per mole of cells (scales with ``n_atoms``);
        ``False`` if it is intensive or already per atom.
    :param description: one line for docs.
    """

    name: str
    unit: str
    extensive: bool = True
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "unit": self.unit, "extensive": self.extensive, "description": self.description}


#: u (zero-point energy included for harmonic models), cv, s, f = u - T*s, per mole of cells.
THERMODYNAMIC_OBSERVABLES: tuple[ObservableSpec, ...] = (
    ObservableSpec("u", "J/mol", True, "internal energy per mole of cells, zero-point energy included"),
    ObservableSpec("cv", "J/(K*mol)", True, "isochoric heat capacity per mole of cells"),
    ObservableSpec("s", "J/(K*mol)", True, "vibrational entropy per mole of cells"),
    ObservableSpec("f", "J/mol", True, "Helmholtz free energy u - T*s per mole of cells"),
)

#: name -> unit of the four observables.
THERMODYNAMIC_UNITS: dict[str, str] = {o.name: o.unit for o in THERMODYNAMIC_OBSERVABLES}
