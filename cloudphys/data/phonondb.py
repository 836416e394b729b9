"""The ``phonondb-thermo`` data set: harmonic thermodynamics of 9,089 phonondb crystals.

Files (under ``phonondb-thermo/`` in the data directory; derived data, not downloadable -- build
``materials.jsonl.gz`` from the public phonondb archives with ``cloudphys data build-phonondb``):

* ``materials.jsonl.gz`` -- one material a line (id, formula, spacegroup, n_atoms, structure,
  min_freq_thz, stable, has_born, curves ``cv``, ``s`` in J/(K*mol) and ``u``, ``f`` in J/mol,
  per mole of primitive cells, on the grid of ``meta.json``);
* ``meta.json`` -- the temperature grid (K) and units;
* ``split.json`` -- id → ``train`` / ``val`` / ``test`` (grouped by reduced formula).

SCOPE strings are computed from the structures with :func:`cloudphys.scope.convert_many` and kept
in the per-user cache (:mod:`cloudphys.data.cache`). A structure that fails to convert is excluded
with a :class:`DataWarning` naming it and the count (``on_error="raise"`` raises instead).
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import DataError
from .base import DataFile, DatasetSpec, Examples
from .cache import ScopeCache, convert_structures
from .download import fetch

__all__ = [
    "DataWarning",
    "OBSERVABLES",
    "UNITS",
    "PHONONDB_FILES",
    "select_temperatures",
    "load_phonondb_thermo",
    "phonondb_spec",
    "iter_jsonl",
    "scope_for_structures",
]


class DataWarning(UserWarning):
    """Something was left out of a data set (e.g. a structure that could not be converted)."""


#: Observables of phonondb-thermo in the order of the file.
OBSERVABLES: tuple[str, ...] = ("cv", "s", "u", "f")
UNITS: dict[str, str] = {"cv": "J/(K*mol)", "s": "J/(K*mol)", "u": "J/mol", "f": "J/mol"}

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


def iter_jsonl(path: str | Path) -> Iterable[dict[str, Any]]:
    """Rows of a (optionally gzip-compressed) JSON-lines file."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path}, line {lineno}: not valid JSON ({exc})") from None


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


def scope_for_structures(
    source: Path,
    items: Sequence[tuple[str, Any]],
    *,
    dialect: str = "default",
    symprec: float = 0.01,
    workers: int = 1,
    progress: bool = False,
    generator_table: Any = None,
    dataset: str = "",
    on_error: str = "warn",
) -> dict[str, str]:
    """SCOPE strings of ``(id, structure)`` pairs read from ``source``, through the per-user cache.

    Failures are warned about (:class:`DataWarning`, naming the ids and their count) and left out of
    the returned mapping, or raised as :class:`DataError` when ``on_error="raise"``.
    """
    if on_error not in ("warn", "raise"):
        raise DataError(f"on_error must be 'warn' or 'raise', got {on_error!r}")
    cache = ScopeCache(source, dialect=dialect, symprec=symprec)
    missing = set(cache.missing(i for i, _ in items))
    if missing:
        todo = [(i, s) for i, s in items if i in missing]
        ok, bad = convert_structures(todo, dialect=dialect, symprec=symprec, workers=workers, progress=progress,
                                     generator_table=generator_table)
        cache.update(ok, bad)
    failed = [(i, cache.errors[i]) for i, _ in items if i not in cache.scope and i in cache.errors]
    lost = [i for i, _ in items if i not in cache.scope and i not in cache.errors]
    failed += [(i, "no result from the converter") for i in lost]
    if failed:
        shown = "; ".join(f"{i}: {msg}" for i, msg in failed[:10])
        more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
        msg = (f"{dataset or source}: {len(failed)} of {len(items)} structures could not be converted to SCOPE "
               f"strings and are left out: {shown}{more}")
        if on_error == "raise":
            raise DataError(msg)
        warnings.warn(msg, DataWarning, stacklevel=3)
    return {i: cache.scope[i] for i, _ in items if i in cache.scope}


def load_phonondb_thermo(
    split: str = "train",
    *,
    observables: Sequence[str] | str | None = None,
    temperatures: Sequence[float] | None = None,
    temperature_range: Sequence[float] | None = None,
    stable: bool = True,
    limit: int | None = None,
    dialect: str = "default",
    symprec: float = 0.01,
    workers: int = 1,
    on_error: str = "warn",
    progress: bool = False,
    **unknown: Any,
) -> Examples:
    """Phonon thermodynamics curves of phonondb crystals.

    :param split: ``train``, ``val``, ``test`` (from ``split.json``) or ``all``.
    :param observables: subset of ``cv``, ``s``, ``u``, ``f`` (default all four).
    :param temperatures: grid temperatures to keep (K; each must be on the 28-point grid).
    :param temperature_range: ``[low, high]`` K, keep the grid points inside (inclusive).
    :param stable: keep only dynamically stable materials (lowest mesh frequency > -0.1 THz).
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
    if unknown:
        raise DataError(f"data set {name!r} has no parameter(s) {', '.join(sorted(unknown))}")
    if split not in ("train", "val", "test", "all"):
        raise DataError(f"data set {name!r} has no split {split!r}; choose one of train, val, test, all")
    if observables is None:
        obs = list(OBSERVABLES)
    else:
        obs = [observables] if isinstance(observables, str) else list(observables)
        bad = [o for o in obs if o not in OBSERVABLES]
        if bad or not obs:
            raise DataError(f"data set {name!r}: unknown observable(s) {bad}; choose from {list(OBSERVABLES)}")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 0):
        raise DataError(f"limit must be a non-negative integer, got {limit!r}")

    files = PHONONDB_FILES
    meta_path = fetch(files["phonondb-thermo/meta.json"], dataset=name)
    split_path = fetch(files["phonondb-thermo/split.json"], dataset=name)
    mat_path = fetch(files["phonondb-thermo/materials.jsonl.gz"], dataset=name)
    with open(meta_path, encoding="utf-8") as fh:
        meta = json.load(fh)
    grid = np.asarray(meta["temperatures_K"], dtype=np.float64)
    t_idx = select_temperatures(grid, temperatures, temperature_range)
    split_of: dict[str, str] = {}
    if split != "all":
        with open(split_path, encoding="utf-8") as fh:
            split_of = json.load(fh)

    rows: list[dict[str, Any]] = []
    for row in iter_jsonl(mat_path):
        if limit is not None and len(rows) >= limit:
            break
        if split != "all" and split_of.get(row["id"]) != split:
            continue
        if stable and not row.get("stable", False):
            continue
        rows.append(row)

    generator_table = None
    if dialect == "cloud":
        from .cloud import CLOUD_FILES

        with open(fetch(CLOUD_FILES["cloud/generator.json"], dataset=name), encoding="utf-8") as fh:
            generator_table = json.load(fh)
    scope = scope_for_structures(
        mat_path, [(r["id"], r["structure"]) for r in rows], dialect=dialect, symprec=symprec, workers=workers,
        progress=progress, generator_table=generator_table, dataset=name, on_error=on_error,
    )
    rows = [r for r in rows if r["id"] in scope]
    targets = {
        o: np.asarray([r[o] for r in rows], dtype=np.float64).reshape(len(rows), len(grid))[:, t_idx] for o in obs
    }
    return Examples(
        ids=[r["id"] for r in rows],
        scope=[scope[r["id"]] for r in rows],
        n_atoms=np.asarray([r["n_atoms"] for r in rows], dtype=np.float64),
        temperatures=grid[t_idx].copy(),
        targets=targets,
        units={o: UNITS[o] for o in obs},
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
        },
        licence=_LICENCE,
        source=_SOURCE,
        load=load_phonondb_thermo,
        splits=("train", "val", "test", "all"),
        params={
            "observables": list(OBSERVABLES),
            "temperatures": None,
            "temperature_range": None,
            "stable": True,
            "limit": None,
            "dialect": "default",
            "symprec": 0.01,
            "workers": 1,
            "on_error": "warn",
        },
    )
