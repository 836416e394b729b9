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
from .phonondb_build import PHONONDB_GRID

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
    "load_thermo_rows",
    "load_thermo_jsonl",
    "thermo_jsonl_spec",
]


class DataWarning(UserWarning):
    """Something was left out of a data set (e.g. a structure that could not be converted)."""


#: Observables of phonondb-thermo in the order of the file.
OBSERVABLES: tuple[str, ...] = ("cv", "s", "u", "f")
UNITS: dict[str, str] = {"cv": "J/(K*mol)", "s": "J/(K*mol)", "u": "J/mol", "f": "J/mol"}
#: The 28-point grid of phonondb-thermo's meta.json (K), default for rows without their own grid.
PHONONDB_GRID_DEFAULT: tuple[float, ...] = PHONONDB_GRID

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
    )


def _observables(name: str, observables: Sequence[str] | str | None) -> list[str]:
    if observables is None:
        return list(OBSERVABLES)
    obs = [observables] if isinstance(observables, str) else list(observables)
    bad = [o for o in obs if o not in OBSERVABLES]
    if bad or not obs:
        raise DataError(f"data set {name!r}: unknown observable(s) {bad}; choose from {list(OBSERVABLES)}")
    return obs


def _report(failed: list[tuple[str, str]], total: int, what: str, on_error: str) -> None:
    if not failed:
        return
    shown = "; ".join(f"{i}: {msg}" for i, msg in failed[:10])
    more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
    msg = f"{what}: {len(failed)} of {total} rows are left out: {shown}{more}"
    if on_error == "raise":
        raise DataError(msg)
    warnings.warn(msg, DataWarning, stacklevel=4)


def load_thermo_rows(
    path: str | Path,
    split: str,
    *,
    name: str,
    grid: np.ndarray | None,
    split_of: dict[str, str] | None,
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
    split_seed: int = 0,
    valid_size: float = 0.1,
    test_size: float = 0.1,
) -> Examples:
    """Examples from a JSON-lines file of thermo rows (phonondb-thermo format).

    :param grid: the temperature grid (K); ``None``: every row carries ``temperatures_K`` and all
        must be equal.
    :param split_of: id → split; ``None``: a random split of the ids (``RandomState(split_seed)``
        permutation of the rows in file order: the first ``floor(test_size n)`` are ``test``, the
        next ``floor(valid_size n)`` ``val``, the rest ``train``), drawn before filtering.
    Rows with an ``error`` field (failed builds) are left out with a :class:`DataWarning`.
    """
    obs = _observables(name, observables)
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 0):
        raise DataError(f"limit must be a non-negative integer, got {limit!r}")
    if on_error not in ("warn", "raise"):
        raise DataError(f"on_error must be 'warn' or 'raise', got {on_error!r}")
    if grid is not None:
        select_temperatures(grid, temperatures, temperature_range)  # fail early on a bad selection
    if split_of is None and split != "all":
        ids = [r.get("id") for r in iter_jsonl(path)]
        order = np.random.RandomState(split_seed).permutation(len(ids))
        n_test, n_val = int(np.floor(test_size * len(ids))), int(np.floor(valid_size * len(ids)))
        split_of = {}
        for k, j in enumerate(order):
            split_of[str(ids[j])] = "test" if k < n_test else ("val" if k < n_test + n_val else "train")
    rows: list[dict[str, Any]] = []
    broken: list[tuple[str, str]] = []
    row_grid = grid
    for lineno, row in enumerate(iter_jsonl(path), start=1):
        if limit is not None and len(rows) >= limit:
            break
        rid = str(row.get("id", f"line {lineno}"))
        if split != "all" and (split_of or {}).get(rid) != split:
            continue
        if "error" in row:
            broken.append((rid, f"failed build ({row.get('source', '?')}): {row['error']}"))
            continue
        missing = [k for k in ("id", "n_atoms", "structure", *obs) if k not in row]
        if missing:
            raise DataError(f"{path}, line {lineno} ({rid}): missing field(s) {', '.join(missing)}")
        if stable and not row.get("stable", True):
            continue
        if grid is None:
            t_row = np.asarray(row.get("temperatures_K", ()), dtype=np.float64)
            if t_row.size == 0:
                raise DataError(f"{path}, line {lineno} ({rid}): no 'temperatures_K' (and no grid given)")
            if row_grid is None:
                row_grid = t_row
            elif t_row.shape != row_grid.shape or not np.allclose(t_row, row_grid, rtol=0, atol=1e-6):
                raise DataError(
                    f"{path}, line {lineno} ({rid}): temperatures_K differ from the first row's; all rows of "
                    "one file must share one temperature grid"
                )
        rows.append(row)
    _report(broken, len(rows) + len(broken), f"{name} ({path})", on_error)
    if row_grid is None:
        row_grid = np.asarray(PHONONDB_GRID_DEFAULT, dtype=np.float64)
    t_idx = select_temperatures(row_grid, temperatures, temperature_range)

    generator_table = None
    if dialect == "cloud":
        from .cloud import CLOUD_FILES

        with open(fetch(CLOUD_FILES["cloud/generator.json"], dataset=name), encoding="utf-8") as fh:
            generator_table = json.load(fh)
    scope = scope_for_structures(
        Path(path), [(str(r["id"]), r["structure"]) for r in rows], dialect=dialect, symprec=symprec,
        workers=workers, progress=progress, generator_table=generator_table, dataset=name, on_error=on_error,
    )
    rows = [r for r in rows if str(r["id"]) in scope]
    targets = {}
    for o in obs:
        values = np.asarray([r[o] for r in rows], dtype=np.float64)
        if values.shape != (len(rows), len(row_grid)):
            raise DataError(f"{path}: curve {o!r} does not have one value per grid temperature ({len(row_grid)})")
        targets[o] = values.reshape(len(rows), len(row_grid))[:, t_idx]
    return Examples(
        ids=[str(r["id"]) for r in rows],
        scope=[scope[str(r["id"])] for r in rows],
        n_atoms=np.asarray([r["n_atoms"] for r in rows], dtype=np.float64),
        temperatures=row_grid[t_idx].copy(),
        targets=targets,
        units={o: UNITS[o] for o in obs},
    )


def load_thermo_jsonl(
    split: str = "train",
    *,
    path: str | None = None,
    split_file: str | None = None,
    valid_size: float = 0.1,
    test_size: float = 0.1,
    seed: int = 0,
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
    """Your own thermo rows (``cloudphys data from-phonopy`` / ``build-phonondb`` output).

    :param path: the ``.jsonl`` or ``.jsonl.gz`` file (required).
    :param split_file: JSON id → ``train``/``val``/``test``; without it a seeded random split
        (``test_size``, ``valid_size``, ``seed``; see :func:`load_thermo_rows`).
    Other parameters as in :func:`load_phonondb_thermo`; rows without ``stable`` count as stable.
    The temperature grid is each row's ``temperatures_K`` (identical for all rows), else the
    phonondb 28-point grid.
    """
    name = "thermo-jsonl"
    if unknown:
        raise DataError(f"data set {name!r} has no parameter(s) {', '.join(sorted(unknown))}")
    if not path:
        raise DataError(f"data set {name!r} needs path= (a .jsonl or .jsonl.gz file of thermo rows)")
    if split not in ("train", "val", "test", "all"):
        raise DataError(f"data set {name!r} has no split {split!r}; choose one of train, val, test, all")
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"data set {name!r}: file {p} does not exist")
    split_of = None
    if split_file:
        try:
            split_of = json.loads(Path(split_file).expanduser().read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"data set {name!r}: cannot read split_file {split_file}: {exc}") from exc
    has_grid = None
    for row in iter_jsonl(p):
        if "error" not in row:
            has_grid = "temperatures_K" in row
            break
    return load_thermo_rows(
        p, split, name=name, grid=None if has_grid else np.asarray(PHONONDB_GRID_DEFAULT, dtype=np.float64),
        split_of=split_of, observables=observables, temperatures=temperatures,
        temperature_range=temperature_range, stable=stable, limit=limit, dialect=dialect, symprec=symprec,
        workers=workers, on_error=on_error, progress=progress, split_seed=seed, valid_size=valid_size,
        test_size=test_size,
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
        params={
            "path": None, "split_file": None, "valid_size": 0.1, "test_size": 0.1, "seed": 0,
            "observables": list(OBSERVABLES), "temperatures": None, "temperature_range": None, "stable": True,
            "limit": None, "dialect": "default", "symprec": 0.01, "workers": 1, "on_error": "warn",
        },
    )
