"""Export predictions in other tools' formats: phonopy's ``thermal_properties.yaml``.

The layout, keys and units are those of phonopy's own writer
(``phonopy.phonon.thermal_properties.ThermalProperties._get_tp_yaml_lines``): temperature in K,
free_energy in kJ/mol, entropy and heat_capacity in J/K/mol, energy (= free_energy + T·entropy)
in kJ/mol, all per mole of the unit cell of ``natom`` atoms — here the cell the user gave. Keys
that describe phonopy's q-point mesh take the values of a full-mesh calculation
(``cutoff_frequency: 0``, ``exclude_gamma_acoustic: false``, every mode integrated); a comment
line says the file is a cloudphys prediction, not a phonon calculation. phonopy's
``phonopy.file_IO.read_thermal_properties_yaml`` and ``phonopy-qha`` read it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["thermal_properties_yaml_lines", "total_dos_dat_lines", "write_thermal_properties_yaml", "export_phonopy"]

NEEDED = ("u", "cv", "s", "f")


def thermal_properties_yaml_lines(structure: Any, *, model: str = "") -> list[str]:
    """phonopy's ``thermal_properties.yaml`` lines for one :class:`~cloudphys.inference.result.StructurePrediction`.

    Raises :class:`DataError` naming the structure if it failed, lacks one of u, cv, s, f, or
    has a non-integer number of atoms (phonopy's ``natom``).
    """
    name = structure.name
    if structure.error is not None:
        raise DataError(f"{name}: cannot export a failed prediction ({structure.error})")
    missing = [o for o in NEEDED if o not in structure.observable_names]
    if missing:
        raise DataError(f"{name}: the phonopy format needs u, cv, s and f; the prediction lacks {missing} "
                        "(predict with every observable)")
    n = float(structure.n_atoms or 0)
    if not (n > 0 and math.isclose(n, round(n))):
        raise DataError(f"{name}: phonopy's natom must be a whole number of atoms, got n_atoms = {structure.n_atoms!r}")
    T = structure.temperatures
    fe = structure.values("f", "cell") / 1000.0  # J/mol -> kJ/mol
    s = structure.values("s", "cell")
    cv = structure.values("cv", "cell")
    if not np.all(np.isfinite(np.stack([fe, s, cv]))):
        raise DataError(f"{name}: non-finite predicted values; nothing exported")
    zpe = structure.zero_point_energy
    natom = int(round(n))
    lines = [
        "# Thermal properties / unit cell (natom)",
        f"# predicted by cloudphys{' model ' + model if model else ''} for {name} (not a phonon calculation)",
        "",
        "unit:",
        "  temperature:   K",
        "  free_energy:   kJ/mol",
        "  entropy:       J/K/mol",
        "  heat_capacity: J/K/mol",
        "",
        "natom: %-5d" % natom,
        "cutoff_frequency: %.5f" % 0.0,
        "exclude_gamma_acoustic: false",
        "num_modes: %d" % (3 * natom),
        "num_integrated_modes: %d" % (3 * natom),
        "",
    ]
    if zpe is not None and math.isfinite(zpe):
        lines += ["zero_point_energy: %15.7f" % (zpe / 1000.0), ""]
    lines.append("thermal_properties:")
    for i, t in enumerate(T):
        lines.append("- temperature:   %15.7f" % t)
        lines.append("  free_energy:   %15.7f" % fe[i])
        lines.append("  entropy:       %15.7f" % s[i])
        lines.append("  heat_capacity: %15.7f" % cv[i])
        lines.append("  energy:        %15.7f" % (fe[i] + s[i] * t / 1000))
        lines.append("")
    return lines


def write_thermal_properties_yaml(structure: Any, path: str | Path, *, model: str = "") -> Path:
    """Write one structure's prediction as phonopy's ``thermal_properties.yaml`` at ``path`` (atomically:
    an existing file is replaced whole, never torn)."""
    from ..outputs import write_text

    path = Path(path)
    text = "\n".join(thermal_properties_yaml_lines(structure, model=model))
    return write_text(path, text)


def _safe(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "item"
    return s[:120]


def total_dos_dat_lines(structure: Any, grid: Any = None, *, model: str = "") -> list[str]:
    """phonopy's ``total_dos.dat`` lines (``# header``, then frequency in THz and states/THz per cell, one
    point a line, ``%20.10f%20.10f`` as phonopy writes them) of one structure's predicted DOS on ``grid``
    (:meth:`~cloudphys.inference.result.StructurePrediction.total_dos`)."""
    f, cell, _ = structure.total_dos(grid)
    if not np.all(np.isfinite(cell)):
        raise DataError(f"{structure.name}: no DOS per cell (no n_atoms, or non-finite values)")
    head = [f"# predicted by cloudphys{' model ' + model if model else ''} for {structure.name} (not a phonon "
            "calculation): histogram DOS averaged over grid cells; frequency (THz), DOS (states/THz per cell of "
            f"natom = {structure.n_atoms:g} atoms)"]
    return head + ["%20.10f%20.10f" % (a, b) for a, b in zip(f, cell)]


def export_phonopy(prediction: Any, out_dir: str | Path, *, dos_grid: Any = None) -> dict[str, Path | str]:
    """``out_dir/<name>/thermal_properties.yaml`` for every structure of a :class:`Prediction`, and
    ``total_dos.dat`` beside it for DOS heads (on ``dos_grid``, the grid of ``predict --dos``).

    :returns: ``{name: path}`` for written files and ``{name: reason}`` for structures that could
        not be exported (failed inputs, non-integer ``n_atoms``); nothing is skipped silently.
        Folder names are the input names made file-system safe (``_2``, ``_3`` ... on a clash). An
        existing ``thermal_properties.yaml`` is replaced atomically; a *file* where a structure's folder
        goes is left alone and that structure gets a reason instead.
    """
    from ..outputs import clean_text, write_text

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"--phonopy-yaml {out_dir}: exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    done: dict[str, Path | str] = {}
    used: set[str] = set()
    for s in prediction:
        try:
            lines = thermal_properties_yaml_lines(s, model=prediction.model)
        except DataError as exc:
            done[s.name] = str(exc)
            continue
        base = folder = _safe(clean_text(s.name).replace("\\", "/").rsplit("/", 1)[-1] or s.name)
        k = 2
        while folder in used:
            folder, k = f"{base}_{k}", k + 1
        used.add(folder)
        target = out_dir / folder
        if target.exists() and not target.is_dir():
            done[s.name] = (f"{target} exists and is a file, not a folder; it is left alone (move it, or choose "
                            "another --phonopy-yaml folder)")
            continue
        target.mkdir(exist_ok=True)
        done[s.name] = write_text(target / "thermal_properties.yaml", "\n".join(lines))
        if prediction.dos is not None:
            write_text(target / "total_dos.dat", "\n".join(total_dos_dat_lines(s, dos_grid, model=prediction.model))
                       + "\n")
    return done
