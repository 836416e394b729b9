"""Registration of the thermo-row data sets: ``phonondb-thermo`` and ``thermo-jsonl``.

``phonondb-thermo``: harmonic thermodynamics of 9,089 phonondb crystals. Files (under
``phonondb-thermo/`` in the data directory; derived data, not downloadable -- build
``materials.jsonl.gz`` from the public phonondb archives with ``cloudphys data build-phonondb``):

* ``materials.jsonl.gz`` -- one material a line in the thermo-row format (:mod:`.thermo`: id,
  formula, spacegroup, n_atoms, structure, min_freq_thz, stable, has_born, curves ``cv``, ``s`` in
  J/(K*mol) and ``u``, ``f`` in J/mol, per mole of primitive cells, on the grid of ``meta.json``);
* ``meta.json`` -- the temperature grid (K) and units;
* ``split.json`` -- id → ``train`` / ``val`` / ``test`` (grouped by reduced formula).

``thermo-jsonl``: your own rows (:func:`.thermo_jsonl.load_thermo_jsonl`). Both declare the
``default`` SCOPE dialect (strings converted from the structures; ``dialect="cloud"`` converts to
CLOUD's instead, and ``Examples.dialect`` says which). Each data set's parameters are declared once,
by its loader's signature.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..bounds import Count, Kelvin, Tolerance, Workers
from .base import DataFile, DatasetSpec, Examples, check_split, reject_unknown
from .download import fetch
from .thermo import OBSERVABLES, UNITS, DataWarning, select_temperatures
from .thermo_jsonl import iter_jsonl, load_thermo_jsonl, load_thermo_rows

__all__ = [
    "OBSERVABLES",
    "PHONONDB_FILES",
    "UNITS",
    "DataWarning",
    "iter_jsonl",
    "load_phonondb_thermo",
    "load_thermo_jsonl",
    "load_thermo_rows",
    "phonondb_spec",
    "select_temperatures",
    "thermo_jsonl_spec",
]

PHONONDB_FILES: dict[str, DataFile] = {
    f.path: f
    for f in (
        DataFile("phonondb-thermo/materials.jsonl.gz", size=9241740),
        DataFile("phonondb-thermo/meta.json", size=510),
        DataFile("phonondb-thermo/split.json", size=190396),
    )
}

_SOURCE = (
    "Kyoto phonon database (phonondb, release 2018-04-17, A. Togo; PBEsol force sets of Materials "
    "Project structures; https://github.com/atztogo/phonondb, mirror "
    "https://github.com/WMD-group/phononDB), post-processed with phonopy 4.10.0 (mesh length 40, "
    "Gamma-centred, BORN where present); rebuild with `cloudphys data build-phonondb`"
)
_LICENCE = "CC BY 4.0 (phonondb, A. Togo)"


def load_phonondb_thermo(
    split: str = "train",
    *,
    observables: Sequence[str] | str | None = None,
    temperatures: Sequence[Kelvin] | None = None,
    temperature_range: Sequence[Kelvin] | None = None,
    stable: bool = True,
    limit: Count | None = None,
    dialect: str = "default",
    symprec: Tolerance = 0.01,
    workers: Workers = 1,
    on_error: str = "warn",
    progress: bool = False,
    min_freq_thz: float | None = None,
    stability: bool = False,
    geometry: bool = False,
    **unknown: Any,
) -> Examples:
    """Phonon thermodynamics curves of phonondb crystals.

    :param split: ``train``, ``val``, ``test`` (from ``split.json``) or ``all``.
    :param observables: subset of ``cv``, ``s``, ``u``, ``f`` (default all four).
    :param temperatures: grid temperatures to keep (K; each must be on the 28-point grid).
    :param temperature_range: ``[low, high]`` K, keep the grid points inside (inclusive).
    :param stable: keep only dynamically stable materials (lowest mesh frequency > -0.1 THz).
    :param min_freq_thz: instead of ``stable``: keep the materials whose lowest mesh frequency is
        above this (THz), e.g. -0.5 to add mildly unstable ones (their curves leave out the few
        imaginary modes phonopy drops).
    :param stability: all materials, stable or not, with the labels ``p_unstable`` (1: dynamically
        unstable) and ``min_freq_thz`` (THz) for a stability head; the curves of the unstable ones
        are missing labels (NaN), so thermodynamic heads still learn from stable materials only
        (``stable`` is then ignored; ``min_freq_thz``, if given, is the threshold of the label).
    :param geometry: also compute each structure's geometric features (``Examples.geometry``; a
        model with ``encoder.geometric_features`` asks for them itself).
    :param limit: keep only the first ``limit`` materials (file order) after filtering.
    :param dialect: SCOPE dialect (``default``; ``cloud`` reads ``cloud/generator.json``).
    :param symprec: spglib tolerance for the conversion (Å).
    :param workers: processes for converting structures not yet in the cache.
    :param on_error: ``warn`` (leave unconvertible structures out, with a :class:`DataWarning`) or
        ``raise``.
    :returns: :class:`Examples`; ``n_atoms`` = atoms in the primitive cell; targets per mole of
        primitive cells (cv, s in J/(K*mol); u, f in J/mol, u with zero-point energy).
    """
    name = "phonondb-thermo"
    reject_unknown(name, unknown)
    check_split(name, split)
    files = PHONONDB_FILES
    meta_path = fetch(files["phonondb-thermo/meta.json"], dataset=name)
    split_path = fetch(files["phonondb-thermo/split.json"], dataset=name)
    mat_path = fetch(files["phonondb-thermo/materials.jsonl.gz"], dataset=name)
    with open(meta_path, encoding="utf-8") as fh:
        grid = np.asarray(json.load(fh)["temperatures_K"], dtype=np.float64)
    split_of: dict[str, str] = {}
    if split != "all":
        with open(split_path, encoding="utf-8") as fh:
            split_of = json.load(fh)
    return load_thermo_rows(
        mat_path, split, name=name, grid=grid, split_of=split_of, observables=observables,
        temperatures=temperatures, temperature_range=temperature_range, stable=stable, limit=limit,
        dialect=dialect, symprec=symprec, workers=workers, on_error=on_error, progress=progress,
        min_freq_thz=min_freq_thz, stability=stability, grid_source=f"meta.json ({meta_path})",
        split_source=f"split.json ({split_path})", geometry=geometry,
    )


def phonondb_spec() -> DatasetSpec:
    """The :class:`DatasetSpec` of ``phonondb-thermo``."""
    return DatasetSpec(
        name="phonondb-thermo",
        description="harmonic Cv, S, U, F (0-1000 K, 28 points) of 9,089 phonondb crystals (5,324 stable)",
        files=tuple(PHONONDB_FILES.values()),
        columns={
            "id": "Materials Project id",
            "structure": "pymatgen Structure.as_dict() of the primitive cell (converted to SCOPE)",
            "n_atoms": "atoms in the primitive cell",
            "cv": "isochoric heat capacity, J/(K*mol) per mole of primitive cells",
            "s": "vibrational entropy, J/(K*mol) per mole of primitive cells",
            "u": "vibrational internal energy incl. zero-point energy, J/mol per mole of primitive cells",
            "f": "Helmholtz free energy u - T s, J/mol per mole of primitive cells",
            "stable": "lowest phonon frequency on the mesh > -0.1 THz",
            "p_unstable": "with stability=true: 1 if dynamically unstable (not stable), else 0",
            "min_freq_thz": "lowest phonon frequency on the mesh, THz (label with stability=true)",
        },
        licence=_LICENCE,
        source=_SOURCE,
        load=load_phonondb_thermo,
        splits=("train", "val", "test", "all"),
        dialect="default",
    )


def thermo_jsonl_spec() -> DatasetSpec:
    """The :class:`DatasetSpec` of ``thermo-jsonl`` (your own rows; ``path=`` required)."""
    return DatasetSpec(
        name="thermo-jsonl",
        description="your own phonon thermodynamics rows (from-phonopy / build-phonondb output), path=FILE",
        files=(),
        columns={
            "id": "identifier",
            "structure": "pymatgen Structure.as_dict() (converted to SCOPE)",
            "n_atoms": "atoms in the cell the curves refer to",
            "temperatures_K": "temperature grid (K), optional (default: phonondb's 28 points)",
            "cv": "J/(K*mol) per mole of cells", "s": "J/(K*mol) per mole of cells",
            "u": "J/mol per mole of cells, zero-point energy included", "f": "J/mol per mole of cells",
            "stable": "optional; false rows are excluded by default",
        },
        licence="yours",
        source="your own phonopy / pymatgen calculations (see docs/data.md)",
        load=load_thermo_jsonl,
        splits=("train", "val", "test", "all"),
        dialect="default",
    )
