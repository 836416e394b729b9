"""The four thermodynamic observables, declared once (torch-free; the bottom layer).

Heads (:mod:`cloudphys.physics`), data sets (:mod:`cloudphys.data`), results and exports read the
names, units and meaning of ``u``, ``cv``, ``s`` and ``f`` from here. All four are extensive: per mole
of the cells a value refers to (the head scales them by the atoms of the cell it is given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["OBSERVABLE_KINDS", "ObservableSpec", "THERMODYNAMIC_OBSERVABLES", "THERMODYNAMIC_UNITS"]


@dataclass(frozen=True)
class ObservableSpec:
    """An observable a head gives.

    :param name: key in the returned mapping, e.g. ``"cv"``.
    :param unit: e.g. ``"J/(K*mol)"``.
    :param extensive: ``True`` if the value is per mole of cells (scales with ``n_atoms``);
        ``False`` if it is intensive or already per atom.
    :param description: one line for docs.
    :param kind: ``"curve"`` (the default: a function of temperature, like ``cv``), ``"probability"``
        (one number in [0, 1] per item, the same at every temperature, e.g. ``p_unstable``; trained
        with a cross-entropy loss) or ``"scalar"`` (one real number per item, the same at every
        temperature, e.g. a predicted lowest phonon frequency). Heads return every kind with the
        shape of the temperature they are given (a per-item value repeated along the curve), so
        curves and per-item values travel together through training, prediction and the outputs.
    """

    name: str
    unit: str
    extensive: bool = True
    description: str = ""
    kind: str = "curve"

    def __post_init__(self) -> None:
        if self.kind not in OBSERVABLE_KINDS:
            raise ValueError(f"observable {self.name!r}: kind must be one of {', '.join(OBSERVABLE_KINDS)}, "
                             f"got {self.kind!r}")
        if self.kind != "curve" and self.extensive:
            raise ValueError(f"observable {self.name!r} of kind {self.kind!r} must be intensive (extensive=False)")

    @property
    def per_item(self) -> bool:
        """``True`` for one value per item (kinds ``probability`` and ``scalar``), not a curve."""
        return self.kind != "curve"

    def as_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "unit": self.unit, "extensive": self.extensive, "description": self.description}
        if self.kind != "curve":  # curves' declarations stay as they were (saved models, listings)
            out["kind"] = self.kind
        return out


#: What an observable may be (:attr:`ObservableSpec.kind`).
OBSERVABLE_KINDS = ("curve", "probability", "scalar")


#: u (zero-point energy included for harmonic models), cv, s, f = u - T*s, per mole of cells.
THERMODYNAMIC_OBSERVABLES: tuple[ObservableSpec, ...] = (
    ObservableSpec("u", "J/mol", True, "internal energy per mole of cells, zero-point energy included"),
    ObservableSpec("cv", "J/(K*mol)", True, "isochoric heat capacity per mole of cells"),
    ObservableSpec("s", "J/(K*mol)", True, "vibrational entropy per mole of cells"),
    ObservableSpec("f", "J/mol", True, "Helmholtz free energy u - T*s per mole of cells"),
)

#: name -> unit of the four observables.
THERMODYNAMIC_UNITS: dict[str, str] = {o.name: o.unit for o in THERMODYNAMIC_OBSERVABLES}
