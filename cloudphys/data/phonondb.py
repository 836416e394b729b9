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
        grid_source=f"meta.json ({meta_path})", split_source=f"split.json ({split_path})",
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


def _grid_text(g: np.ndarray) -> str:
    """A temperature grid for messages: its size and its points (K)."""
    pts = [f"{t:g}" for t in np.asarray(g, dtype=np.float64).tolist()]
    return f"{len(pts)} points [{', '.join(pts)}] K"


def _same_grid(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=0, atol=1e-6))


def _row_grid(row: dict[str, Any], where: str) -> np.ndarray | None:
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


def load_thermo_rows(
    path: str | Path,
    split: str,
    *,
    name: str,
    grid: np.ndarray | Sequence[float] | None,
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
    default_grid: np.ndarray | Sequence[float] | None = None,
    grid_source: str = "the data set's grid",
    split_source: str | None = None,
) -> Examples:
    """Examples from a JSON-lines file of thermo rows (phonondb-thermo format).

    The temperature grid (K) every curve is read on:

    * ``grid`` given (e.g. meta.json's, described by ``grid_source``): rows without
      ``temperatures_K`` are on it, and a row with ``temperatures_K`` must carry exactly it;
    * ``grid=None``: the grid of the file's first row -- its ``temperatures_K``, or ``default_grid``
      for a row without one (``default_grid=None``: such a row is an error) -- and every row must
      be on that grid.

    Every row of the file is checked (not only those of ``split``, failed builds aside), so all
    splits share one grid; a row on another grid is a :class:`DataError` naming it and both grids,
    and a curve whose length is not its grid's is one too.

    :param split_of: id → split (``split_source`` says where it comes from, for messages);
        ``None``: a random split of the ids (``RandomState(split_seed)`` permutation of the rows in
        file order: the first ``floor(test_size n)`` are ``test``, the next ``floor(valid_size n)``
        ``val``, the rest ``train``), drawn before filtering.
    :returns: :class:`Examples`; a split without rows gives an empty one (0 rows, the grid's
        temperatures), except ``train``, which must have rows (:class:`DataError` saying why it is
        empty and how splits are assigned).
    Rows with an ``error`` field (failed builds) are left out with a :class:`DataWarning`.
    """
    obs = _observables(name, observables)
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 0):
        raise DataError(f"limit must be a non-negative integer, got {limit!r}")
    if on_error not in ("warn", "raise"):
        raise DataError(f"on_error must be 'warn' or 'raise', got {on_error!r}")
    known = None if grid is None else np.asarray(grid, dtype=np.float64)
    fallback = known  # the grid of a row without temperatures_K
    if fallback is None and default_grid is not None:
        fallback = np.asarray(default_grid, dtype=np.float64)
    if known is not None:
        select_temperatures(known, temperatures, temperature_range)  # fail early on a bad selection
    random_split = None
    if split_of is None and split != "all":
        ids = [r.get("id") for r in iter_jsonl(path)]
        order = np.random.RandomState(split_seed).permutation(len(ids))
        n_test, n_val = int(np.floor(test_size * len(ids))), int(np.floor(valid_size * len(ids)))
        split_of = {}
        for k, j in enumerate(order):
            split_of[str(ids[j])] = "test" if k < n_test else ("val" if k < n_test + n_val else "train")
        random_split = (len(ids), n_test, n_val)
    rows: list[dict[str, Any]] = []
    broken: list[tuple[str, str]] = []
    in_use, in_use_from = known, grid_source
    n_file = n_in_split = n_unstable = 0
    assigned: dict[str, int] = {}
    for lineno, row in enumerate(iter_jsonl(path), start=1):
        if limit is not None and len(rows) >= limit:
            break
        n_file += 1
        rid = str(row.get("id", f"line {lineno}"))
        where = f"{path}, line {lineno} ({rid})"
        t_row = None
        if "error" not in row:
            own = _row_grid(row, where)
            t_row = own if own is not None else fallback
            if t_row is None:
                raise DataError(f"{where}: no 'temperatures_K' (and no grid given)")
            if in_use is None:
                in_use, in_use_from = t_row, f"the first row, {rid} (line {lineno})"
            elif not _same_grid(t_row, in_use):
                mine = (f"temperatures_K = {_grid_text(t_row)}" if own is not None else
                        f"no temperatures_K, so it is taken to be on {_grid_text(t_row)}")
                raise DataError(
                    f"{where}: this row is on another temperature grid than the one in use: it has {mine}; the grid "
                    f"in use (from {in_use_from}) is {_grid_text(in_use)}. All rows of one file must share one grid: "
                    "rebuild the row on that grid (build-phonondb --meta META.json, or phonopy's "
                    "run_thermal_properties(temperatures=...)) or keep it in a separate file"
                )
        if split != "all":
            got = (split_of or {}).get(rid)
            assigned[str(got)] = assigned.get(str(got), 0) + 1
            if got != split:
                continue
        n_in_split += 1
        if "error" in row:
            broken.append((rid, f"failed build ({row.get('source', '?')}): {row['error']}"))
            continue
        missing = [k for k in ("id", "n_atoms", "structure", *obs) if k not in row]
        if missing:
            raise DataError(f"{where}: missing field(s) {', '.join(missing)}")
        for o in obs:
            if not isinstance(row[o], list) or len(row[o]) != len(t_row):
                n = len(row[o]) if isinstance(row[o], list) else type(row[o]).__name__
                raise DataError(f"{where}: curve {o!r} has {n} values, but the row's temperature grid has "
                                f"{len(t_row)} ({_grid_text(t_row)})")
        if stable and not row.get("stable", True):
            n_unstable += 1
            continue
        rows.append(row)
    _report(broken, len(rows) + len(broken), f"{name} ({path})", on_error)
    if in_use is None:
        in_use = np.asarray(PHONONDB_GRID_DEFAULT, dtype=np.float64)
    t_idx = select_temperatures(in_use, temperatures, temperature_range)

    scope: dict[str, str] = {}
    if rows:
        generator_table = None
        if dialect == "cloud":
            from .cloud import CLOUD_FILES

            with open(fetch(CLOUD_FILES["cloud/generator.json"], dataset=name), encoding="utf-8") as fh:
                generator_table = json.load(fh)
        scope = scope_for_structures(
            Path(path), [(str(r["id"]), r["structure"]) for r in rows], dialect=dialect, symprec=symprec,
            workers=workers, progress=progress, generator_table=generator_table, dataset=name, on_error=on_error,
        )
    n_read = len(rows)
    rows = [r for r in rows if str(r["id"]) in scope]
    if not rows and split == "train":
        raise DataError(_empty_split_message(
            name, path, split, n_file=n_file, n_in_split=n_in_split, n_broken=len(broken), n_unstable=n_unstable,
            n_unconverted=n_read, limit=limit, assigned=assigned, random_split=random_split,
            split_source=split_source, valid_size=valid_size, test_size=test_size, split_seed=split_seed,
        ))
    targets = {}
    for o in obs:
        values = np.asarray([r[o] for r in rows], dtype=np.float64).reshape(len(rows), len(in_use))
        targets[o] = values[:, t_idx]
    return Examples(
        ids=[str(r["id"]) for r in rows],
        scope=[scope[str(r["id"])] for r in rows],
        n_atoms=np.asarray([r["n_atoms"] for r in rows], dtype=np.float64).reshape(len(rows)),
        temperatures=in_use[t_idx].copy(),
        targets=targets,
        units={o: UNITS[o] for o in obs},
    )


def _empty_split_message(
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
    The temperature grid is the rows' ``temperatures_K`` (the same for every row of the file); a
    row without one is taken to be on the phonondb 28-point grid, and a row on another grid than
    the file's first row is a :class:`DataError`. A split without rows gives an empty
    :class:`Examples` (0 rows, the file's temperatures); an empty ``train`` split is a
    :class:`DataError` saying how the splits were assigned.
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
        if not isinstance(split_of, dict):
            raise DataError(f"data set {name!r}: split_file {split_file} must be a JSON object id -> train/val/test, "
                            f"got {type(split_of).__name__}")
    return load_thermo_rows(
        p, split, name=name, grid=None, default_grid=PHONONDB_GRID_DEFAULT,
        split_of=split_of, observables=observables, temperatures=temperatures,
        temperature_range=temperature_range, stable=stable, limit=limit, dialect=dialect, symprec=symprec,
        workers=workers, on_error=on_error, progress=progress, split_seed=seed, valid_size=valid_size,
        test_size=test_size, split_source=f"split_file {split_file}" if split_file else None,
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
