"""Training rows from a user's own phonon calculations.

Two sources become rows of the ``phonondb-thermo`` format (plus ``temperatures_K``), which the
``thermo-jsonl`` data set loads for training:

* phonopy's ``thermal_properties.yaml`` (``phonopy -t`` / ``Phonopy.write_yaml_thermal_properties``)
  together with the crystal structure -- :func:`row_from_thermal_properties_yaml`;
* a pymatgen :class:`~pymatgen.phonon.dos.PhononDos` (frequencies in THz, normalised to 3 modes
  per atom of the cell) -- :func:`row_from_phonon_dos`.

Units (what the heads use; everything per mole of the cell the phonon calculation used, whose
atom count is ``n_atoms``):

============ ======================= ==========================================================
observable   ours                    phonopy ``thermal_properties.yaml``
============ ======================= ==========================================================
``cv``       J/(K*mol)               ``heat_capacity`` J/K/mol (unchanged)
``s``        J/(K*mol)               ``entropy`` J/K/mol (unchanged)
``f``        J/mol                   ``free_energy`` kJ/mol × 1000
``u``        J/mol, zero-point incl. ``energy`` kJ/mol × 1000 (else ``f + T s``)
============ ======================= ==========================================================

pymatgen's ``PhononDos`` methods called without a structure give J/(K*mol-c) and J/mol-c ("mole
of cells" -- the same convention), and its ``internal_energy`` and ``helmholtz_free_energy``
include the zero-point energy; at T = 0 (where pymatgen divides by T) we use cv = s = 0 and
u = f = its zero-point energy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .phonondb_build import PHONONDB_GRID

__all__ = [
    "ENERGY_FACTORS",
    "ENTROPY_FACTORS",
    "read_structure",
    "read_thermal_properties_yaml",
    "row_from_phonon_dos",
    "row_from_thermal_properties_yaml",
]

_EV_PER_CELL_TO_J_PER_MOL = 96485.33212331001  # e·N_A, J/mol per eV per cell

#: Energy unit of phonopy's yaml → factor to J/mol.
ENERGY_FACTORS = {"kj/mol": 1000.0, "j/mol": 1.0, "ev": _EV_PER_CELL_TO_J_PER_MOL}
#: Entropy / heat-capacity unit → factor to J/(K*mol).
ENTROPY_FACTORS = {"j/k/mol": 1.0, "j/(k*mol)": 1.0, "j/(k mol)": 1.0, "ev/k": _EV_PER_CELL_TO_J_PER_MOL}


def read_structure(structure: Any) -> Any:
    """A pymatgen ``Structure`` from a Structure, an ASE Atoms, a ``Structure.as_dict()`` dict, or a file.

    Files: anything :func:`cloudphys.inputs.read_inputs` reads that holds exactly one structure
    (CIF, POSCAR/CONTCAR, pymatgen JSON read as plain data, ASE extxyz/traj/JSON), and phonopy's
    ``phonopy.yaml``/``POSCAR-unitcell.yaml`` (its unit cell).
    """
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    from ..inputs import make_item, read_inputs

    if isinstance(structure, Structure):
        return structure
    if isinstance(structure, dict):
        item = make_item("structure dict", structure)
        if item.error is not None or item.structure is None:
            raise DataError(f"structure dict is not a pymatgen Structure.as_dict(): {item.error}")
        return item.structure
    if hasattr(structure, "get_scaled_positions"):  # ASE Atoms
        return AseAtomsAdaptor.get_structure(structure)
    path = Path(structure)
    if not path.is_file():
        raise DataError(f"structure file {path} does not exist")
    if path.suffix in (".yaml", ".yml"):
        return _phonopy_cell_yaml(path)
    items = read_inputs([path])
    if len(items) != 1:
        raise DataError(f"{path} holds {len(items)} structures (CIF blocks or frames); give a file with one")
    st = items[0].structure
    if items[0].error is not None or st is None:
        raise DataError(f"cannot read a crystal structure from {path}: {items[0].error}")
    return st if isinstance(st, Structure) else AseAtomsAdaptor.get_structure(st)


def _phonopy_cell_yaml(path: Path) -> Any:
    """The unit cell of a ``phonopy.yaml`` / ``POSCAR-unitcell.yaml``, read with ``yaml.safe_load``.

    Not phonopy's ``read_cell_yaml``: it parses with PyYAML's full ``Loader``, which runs
    ``!!python/object/apply`` tags -- a structure file must never run code.
    """
    import yaml
    from pymatgen.core import Lattice, Structure

    from ..inputs import DEFAULT_LIMITS, READ_ERRORS, read_error_reason, read_text

    where = f"cannot read a crystal structure from {path}"
    try:
        text, _ = read_text(path, DEFAULT_LIMITS.max_bytes)
    except READ_ERRORS as exc:
        raise DataError(f"{where}: {read_error_reason(exc)}") from None
    if text is None:
        raise DataError(f"{where}: the file is larger than {DEFAULT_LIMITS.max_bytes:,} characters")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(f"{where}: not plain YAML ({' '.join(str(exc).split())})") from None
    cell = None
    if isinstance(doc, dict):
        cell = doc.get("unit_cell") or doc.get("unitcell") or (doc if "points" in doc else None)
    if not isinstance(cell, dict) or "lattice" not in cell or "points" not in cell:
        raise DataError(f"{where}: no unit_cell with 'lattice' and 'points' (phonopy.yaml format)")
    try:
        points = cell["points"]
        symbols = [str(p["symbol"]) for p in points]
        coords = [[float(x) for x in p["coordinates"]] for p in points]
        return Structure(Lattice([[float(x) for x in row] for row in cell["lattice"]]), symbols, coords)
    except Exception as exc:
        raise DataError(f"{where}: malformed unit cell ({type(exc).__name__}: {exc})") from None


def _factor(table: dict[str, float], unit: str, what: str, source: str) -> float:
    key = unit.strip().lower().replace(" ", "")
    for name, value in table.items():
        if key == name.replace(" ", ""):
            return value
    raise DataError(f"{source}: unknown {what} unit {unit!r}; known: {', '.join(table)}")


def read_thermal_properties_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse phonopy's ``thermal_properties.yaml`` into our units.

    :returns: ``{"natom", "temperatures_K", "cv", "s", "u", "f"}`` as numpy arrays (J/(K*mol),
        J/mol per mole of phonopy's cell of ``natom`` atoms).
    """
    import yaml

    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict) or "thermal_properties" not in doc:
        raise DataError(f"{path}: not a phonopy thermal_properties.yaml (no 'thermal_properties' list)")
    units = doc.get("unit", {}) or {}
    ef = _factor(ENERGY_FACTORS, str(units.get("free_energy", "kJ/mol")), "free-energy", str(path))
    sf = _factor(ENTROPY_FACTORS, str(units.get("entropy", "J/K/mol")), "entropy", str(path))
    cf = _factor(ENTROPY_FACTORS, str(units.get("heat_capacity", "J/K/mol")), "heat-capacity", str(path))
    rows = doc["thermal_properties"]
    try:
        t = np.array([float(r["temperature"]) for r in rows])
        f = np.array([float(r["free_energy"]) for r in rows]) * ef
        s = np.array([float(r["entropy"]) for r in rows]) * sf
        cv = np.array([float(r["heat_capacity"]) for r in rows]) * cf
        u = (np.array([float(r["energy"]) for r in rows]) * ef if all("energy" in r for r in rows) else f + t * s)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: malformed thermal_properties entry ({exc})") from exc
    if "natom" not in doc:
        raise DataError(f"{path}: no 'natom' (atoms in the cell the properties refer to)")
    if not np.all(np.isfinite(np.stack([cv, s, u, f]))):
        raise DataError(f"{path}: non-finite values")
    return {"natom": int(doc["natom"]), "temperatures_K": t, "cv": cv, "s": s, "u": u, "f": f}


def _row(mid: str, structure: Any, n_atoms: int, temps: np.ndarray, curves: dict[str, np.ndarray],
         source: str) -> dict[str, Any]:
    from .phonondb_build import structure_dict

    if n_atoms <= 0:
        raise DataError(f"{source}: n_atoms must be positive, got {n_atoms}")
    nsites = len(structure)
    if nsites % n_atoms and n_atoms % nsites:
        raise DataError(
            f"{source}: the structure has {nsites} atoms but the phonon cell has {n_atoms}; "
            "give the structure of the cell used in the phonon calculation"
        )
    scale = nsites / n_atoms
    comp = structure.composition
    row: dict[str, Any] = {
        "id": mid,
        "formula": comp.reduced_formula,
        "n_atoms": int(n_atoms),
        "structure": structure_dict(structure.lattice.matrix, [str(sp) for sp in structure.species],
                                    structure.frac_coords),
        "temperatures_K": [float(x) for x in temps],
        "source": source,
    }
    if scale != 1:
        row["structure_cell_atoms"] = nsites  # SCOPE does not depend on the cell; n_atoms does
    for key in ("cv", "s", "u", "f"):
        row[key] = [float(v) for v in curves[key]]
    return row


def row_from_thermal_properties_yaml(
    path: str | os.PathLike[str],
    structure: Any,
    *,
    id: str | None = None,
) -> dict[str, Any]:
    """A training row from phonopy's ``thermal_properties.yaml`` and the crystal structure.

    :param path: the yaml file.
    :param structure: the crystal (see :func:`read_structure`); any cell of it works for the
        SCOPE string, ``n_atoms`` comes from the yaml's ``natom``.
    :param id: identifier of the row (default: the yaml's parent folder name).
    """
    data = read_thermal_properties_yaml(path)
    st = read_structure(structure)
    mid = id or Path(path).resolve().parent.name
    return _row(mid, st, data["natom"], data["temperatures_K"], data, str(path))


def row_from_phonon_dos(
    dos: Any,
    structure: Any,
    *,
    id: str,
    temperatures: Sequence[float] = PHONONDB_GRID,
    n_atoms: int | None = None,
) -> dict[str, Any]:
    """A training row from a pymatgen ``PhononDos`` (or its ``as_dict()``/JSON file) and the structure.

    :param n_atoms: atoms of the cell the DOS belongs to (default: the number of atoms of
        ``structure``); checked against the DOS's normalisation (3 modes per atom, within 5 %).
    """
    from pymatgen.phonon.dos import PhononDos

    if isinstance(dos, (str, os.PathLike)):
        dos = json.loads(Path(dos).read_text())
    if isinstance(dos, dict):
        dos = PhononDos.from_dict(dos)
    if not isinstance(dos, PhononDos):
        raise DataError(f"expected a pymatgen PhononDos, got {type(dos).__name__}")
    st = read_structure(structure)
    n = int(n_atoms) if n_atoms is not None else len(st)
    freqs = np.asarray(dos.frequencies, dtype=float)
    dens = np.asarray(dos.densities, dtype=float)
    modes = float(np.trapezoid(dens, freqs)) if hasattr(np, "trapezoid") else float(np.trapz(dens, freqs))
    if not abs(modes - 3 * n) <= 0.05 * 3 * n:
        raise DataError(
            f"{id}: the DOS integrates to {modes:.3f} modes but a cell of {n} atoms has {3 * n}; "
            "pass n_atoms= for the cell the DOS belongs to"
        )
    temps = np.asarray(temperatures, dtype=float)
    zpe = float(dos.zero_point_energy())
    curves: dict[str, list[float]] = {"cv": [], "s": [], "u": [], "f": []}
    for t in temps:
        if t <= 0:
            curves["cv"].append(0.0)
            curves["s"].append(0.0)
            curves["u"].append(zpe)
            curves["f"].append(zpe)
        else:
            curves["cv"].append(float(dos.cv(t)))
            curves["s"].append(float(dos.entropy(t)))
            curves["u"].append(float(dos.internal_energy(t)))
            curves["f"].append(float(dos.helmholtz_free_energy(t)))
    return _row(id, st, n, temps, {k: np.asarray(v) for k, v in curves.items()}, "PhononDos")
