"""The thermo-row format: one material's harmonic thermodynamics curves as a JSON object.

A row (one line of ``materials.jsonl.gz``, ``from-phonopy`` / ``build-phonondb`` output) has
``id``, ``n_atoms`` (atoms of the cell the curves are per mole of), ``structure`` (a pymatgen
``Structure.as_dict()``, read as plain data), the curves ``cv``, ``s`` in J/(K*mol) and ``u``, ``f``
in J/mol on a temperature grid (K: the row's ``temperatures_K`` or the file's), optionally
``stable`` and ``formula``; a failed build is a row with ``error`` (and ``source``) instead.
This module holds the schema and its checks; :mod:`.thermo_jsonl` loads files of rows.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..observables import THERMODYNAMIC_UNITS
from .phonondb_build import PHONONDB_GRID

__all__ = [
    "OBSERVABLES",
    "PHONONDB_GRID",
    "REQUIRED_FIELDS",
    "UNITS",
    "DataWarning",
    "check_row",
    "empty_split_message",
    "grid_text",
    "observables_of",
    "report_left_out",
    "row_grid",
    "row_n_atoms",
    "same_grid",
    "select_temperatures",
]


class DataWarning(UserWarning):
    """Something was left out of a data set (e.g. a structure that could not be converted)."""


#: Observables of a thermo row, in the order of the file.
OBSERVABLES: tuple[str, ...] = ("cv", "s", "u", "f")
UNITS: dict[str, str] = {o: THERMODYNAMIC_UNITS[o] for o in OBSERVABLES}
#: Fields every usable row has (besides the selected curves).
REQUIRED_FIELDS: tuple[str, ...] = ("id", "n_atoms", "structure")


def select_temperatures(
    grid: Sequence[float],
    temperatures: Sequence[float] | None = None,
    temperature_range: Sequence[float] | None = None,
) -> np.ndarray:
    """Indices of the grid points to keep.

    :param grid: the data set's temperature grid (K).
    :param temperatures: ``None`` (all) or temperatures that must each be on the grid (K, within
        1e-6 K); kept in grid order, duplicates dropped.
    :param temperature_range: ``None`` or ``[low, high]`` (K, inclusive): keep grid points inside.
    Both given: the intersection. An empty selection is an error.
    """
    g = np.asarray(grid, dtype=np.float64)
    keep = np.ones(len(g), dtype=bool)
    if temperatures is not None:
        if isinstance(temperatures, (int, float)):
            temperatures = [temperatures]
        wanted = np.zeros(len(g), dtype=bool)
        for t in temperatures:
            hit = np.flatnonzero(np.abs(g - float(t)) <= 1e-6)
            if hit.size == 0:
                raise DataError(
                    f"temperature {t!r} K is not on the data set's grid; choose from {g.tolist()} "
                    "or use temperature_range=[low, high]"
                )
            wanted[hit] = True
        keep &= wanted
    if temperature_range is not None:
        if len(temperature_range) != 2:
            raise DataError(f"temperature_range must be [low, high] in K, got {temperature_range!r}")
        lo, hi = (float(v) for v in temperature_range)
        if lo > hi:
            raise DataError(f"temperature_range [{lo}, {hi}]: low is above high")
        keep &= (g >= lo - 1e-9) & (g <= hi + 1e-9)
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise DataError(
            f"no grid temperature selected (temperatures={temperatures!r}, temperature_range={temperature_range!r}); "
            f"grid is {g.tolist()}"
        )
    return idx


def observables_of(name: str, observables: Sequence[str] | str | None) -> list[str]:
    if observables is None:
        return list(OBSERVABLES)
    obs = [observables] if isinstance(observables, str) else list(observables)
    bad = [o for o in obs if o not in OBSERVABLES]
    if bad or not obs:
        raise DataError(f"data set {name!r}: unknown observable(s) {bad}; choose from {list(OBSERVABLES)}")
    return obs


def report_left_out(
    failed: list[tuple[str, str]],
    total: int,
    what: str,
    on_error: str,
    *,
    reason: str = "rows are left out",
    stacklevel: int = 4,
) -> None:
    """Warn (:class:`DataWarning`) or raise (``on_error="raise"``) naming the first ten ``(id, error)``
    of ``failed`` and their count: ``"{what}: N of {total} {reason}: ..."``."""
    if not failed:
        return
    shown = "; ".join(f"{i}: {msg}" for i, msg in failed[:10])
    more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
    msg = f"{what}: {len(failed)} of {total} {reason}: {shown}{more}"
    if on_error == "raise":
        raise DataError(msg)
    warnings.warn(msg, DataWarning, stacklevel=stacklevel)


def grid_text(g: np.ndarray) -> str:
    """A temperature grid for messages: its size and its points (K)."""
    pts = [f"{t:g}" for t in np.asarray(g, dtype=np.float64).tolist()]
    return f"{len(pts)} points [{', '.join(pts)}] K"


def same_grid(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=0, atol=1e-6))


def row_grid(row: dict[str, Any], where: str) -> np.ndarray | None:
    """A row's own ``temperatures_K`` (1-D, finite, K), or ``None`` when it carries none."""
    if "temperatures_K" not in row:
        return None
    try:
        t = np.asarray(row["temperatures_K"], dtype=np.float64)
    except (TypeError, ValueError):
        t = None
    if t is None or t.ndim != 1 or t.size == 0 or not np.isfinite(t).all():
        raise DataError(f"{where}: temperatures_K must be a non-empty list of temperatures in K, "
                        f"got {row['temperatures_K']!r}")
    return t


def row_n_atoms(row: dict[str, Any], where: str, max_atoms: int | None = None) -> float:
    """A row's ``n_atoms``: a positive finite number (≤ ``max_atoms`` when given)."""
    v = row.get("n_atoms")
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    if not ok:
        raise DataError(f"{where}: n_atoms must be a positive number of atoms, got {v!r:.40}")
    if max_atoms is not None and v > max_atoms:
        raise DataError(f"{where}: n_atoms = {v:g} is more than the limit {max_atoms} (max_atoms)")
    return float(v)


def check_row(row: dict[str, Any], where: str, observables: Sequence[str], grid: np.ndarray) -> None:
    """A usable row has the required fields and one value per grid point in each selected curve."""
    missing = [k for k in (*REQUIRED_FIELDS, *observables) if k not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}")
    for o in observables:
        if not isinstance(row[o], list) or len(row[o]) != len(grid):
            n = len(row[o]) if isinstance(row[o], list) else type(row[o]).__name__
            raise DataError(f"{where}: curve {o!r} has {n} values, but the row's temperature grid has "
                            f"{len(grid)} ({grid_text(grid)})")


def empty_split_message(
    name: str, path: str | Path, split: str, *, n_file: int, n_in_split: int, n_broken: int, n_unstable: int,
    n_unconverted: int, limit: int | None, assigned: dict[str, int], random_split: tuple[int, int, int] | None,
    split_source: str | None, valid_size: float, test_size: float, split_seed: int,
) -> str:
    """Why ``split`` of a thermo file has no rows, and how its splits are assigned."""
    head = f"data set {name!r} ({path}): the {split!r} split is empty"
    if limit == 0:
        return f"{head} (limit=0)"
    if n_file == 0:
        return f"{head}: the file has no rows"
    if n_in_split:
        why = [f"{n_in_split} rows are assigned to {split!r} but none is usable"]
        if n_broken:
            why.append(f"{n_broken} are failed builds (rows with an 'error' field)")
        if n_unstable:
            why.append(f"{n_unstable} are dynamically unstable (stable: false; pass stable=false to keep them)")
        if n_unconverted:
            why.append(f"{n_unconverted} have structures that could not be converted to SCOPE strings")
        return f"{head}: " + "; ".join(why)
    counts = ", ".join(f"{n} {k!r}" if k != "None" else f"{n} not listed" for k, n in sorted(assigned.items()))
    if random_split is not None:
        n, n_test, n_val = random_split
        how = (f"without split_file the rows are split at random: RandomState(seed={split_seed}).permutation of the "
               f"file's {n} rows gives 'test' the first floor(test_size*n) = floor({test_size}*{n}) = {n_test}, 'val' "
               f"the next floor(valid_size*n) = floor({valid_size}*{n}) = {n_val} and 'train' the remaining "
               f"{n - n_test - n_val}")
        fix = "write a split_file (id -> train/val/test) or lower test_size / valid_size"
    else:
        how = (f"splits are assigned by {split_source or 'the split mapping'} (id -> train/val/test; rows it does "
               f"not list are not used), which gives the file's rows: {counts or 'none'}")
        fix = f"assign some ids to {split!r} there"
    return f"{head}: {how}; {fix}"


