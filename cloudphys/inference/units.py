"""Unit strings of a prediction's values, shared by its table (:mod:`.result`) and its figures (:mod:`.plot`)."""

from __future__ import annotations

__all__ = ["per_atom_unit"]


def per_atom_unit(unit: str) -> str:
    """``"J/(K*mol)"`` → ``"J/(K·mol-atom)"``: the unit of an extensive observable divided by the atoms."""
    return unit.replace("*", "·").replace("mol", "mol-atom")
