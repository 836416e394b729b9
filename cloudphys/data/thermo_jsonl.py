"""Loading files of thermo rows (:mod:`.thermo`): the ``thermo-jsonl`` data set and phonondb-thermo's reader.

Lines are read through :mod:`cloudphys.inputs` (one gzip/text opener, each line within the
per-item byte budget); structures are converted to SCOPE strings with
:func:`cloudphys.inputs.to_records` (the per-user cache, worker processes). A row whose structure
cannot be converted, or whose ``n_atoms`` is not a positive number, is left out with a
:class:`~.thermo.DataWarning` naming it and the count (``on_error="raise"``: a :class:`DataError`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..bounds import Count, Fraction, Kelvin, Seed, Tolerance, Workers
from ..errors import DataError
from ..inputs import (
    DEFAULT_LIMITS,
    READ_ERRORS,
    make_item,
    open_text,
    to_records,
    unreadable_message,
)
from ..inputs.textio import iter_lines, loads_json
from .base import Examples, check_split, reject_unknown
from .thermo import (
    PHONONDB_GRID,
    UNITS,
    check_row,
    empty_split_message,
    grid_text,
    observables_of,
    report_left_out,
    row_grid,
    row_n_atoms,
    same_grid,
    select_temperatures,
)

__all__ = ["iter_jsonl", "load_thermo_jsonl", "load_thermo_rows", "scope_for_rows"]


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` of a (gzip-compressed or plain) JSON-lines file of objects.

    :raises DataError: a line that is not a JSON object, longer than the per-item byte budget, or a
        file that cannot be read (naming the file, the line and the reason).
    """
    path = Path(path)
    lines_read = 0
    limit = DEFAULT_LIMITS.max_bytes
    try:
        with open_text(path) as fh:
            for lineno, line, size in iter_lines(fh, limit):
                lines_read = lineno
                if line is None:
                    raise DataError(f"{path}, line {lineno}: the line has {size:,} characters, more than the "
                                    f"limit {limit:,} (max_bytes)")
                if not line.strip():
                    continue
                try:
                    row = loads_json(line)
                except (ValueError, RecursionError) as exc:
                    raise DataError(f"{path}, line {lineno}: not valid JSON ({exc})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}, line {lineno}: expected a JSON object, got {type(row).__name__}")
                yield lineno, row
    except READ_ERRORS as exc:
        raise DataError(unreadable_message(path, lines_read, exc)) from None


def scope_for_rows(
    path: Path,
    rows: Sequence[tuple[int, dict[str, Any]]],
    *,
    dialect: str = "default",
    symprec: float = 0.01,
    workers: int = 1,
    progress: bool = False,
    dataset: str = "",
    on_error: str = "warn",
) -> dict[str, str]:
    """SCOPE strings of ``(line number, row)`` structures, keyed ``PATH:LINE``, through the cache.

    Failures are warned about (:class:`DataWarning`, naming the rows and their count) and left out
    of the returned mapping, or raised as :class:`DataError` when ``on_error="raise"``.
    """
    if on_error not in ("warn", "raise"):
        raise DataError(f"on_error must be 'warn' or 'raise', got {on_error!r}")
    table = None
    if dialect == "cloud":
        from .cloud import generator_table

        table = generator_table()
    items = [make_item(f"{path}:{ln}", r["structure"], id=str(r["id"]), source=str(path)) for ln, r in rows]
    to_records(items, dialect=dialect, symprec=symprec, workers=workers, progress=progress, generator_table=table)
    failed = [(it.id, it.error) for it in items if it.error is not None]
    report_left_out(failed, len(items), f"{dataset or path}", on_error,
                    reason="structures could not be converted to SCOPE strings and are left out")
    return {it.name: it.scope for it in items if it.error is None and it.scope is not None}


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
    min_freq_thz: float | None = None,
    split_seed: int = 0,
    valid_size: float = 0.1,
    test_size: float = 0.1,
    default_grid: np.ndarray | Sequence[float] | None = None,
    grid_source: str = "the data set's grid",
    split_source: str | None = None,
    stability: bool = False,
    geometry: bool = False,
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

    :param stability: keep every material, stable or not, and add the labels ``p_unstable`` (1 for
        a dynamically unstable material -- ``stable: false``, or its ``min_freq_thz`` at or below the
        ``min_freq_thz`` threshold when one is given -- 0 otherwise) and ``min_freq_thz`` (THz), the
        same at every temperature; the curves of unstable materials become missing labels (NaN), so
        thermodynamic heads still learn from the stable materials only.
    :param geometry: also compute the geometric features of each structure (``Examples.geometry``,
        :mod:`cloudphys.scope.geometry`; what a model with ``encoder.geometric_features`` reads).
        A structure they cannot be computed for gets a NaN row (such a model names it and refuses).
    """
    obs = observables_of(name, observables)
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
        ids = [r.get("id") for _, r in iter_jsonl(path)]
        order = np.random.RandomState(split_seed).permutation(len(ids))
        n_test, n_val = int(np.floor(test_size * len(ids))), int(np.floor(valid_size * len(ids)))
        split_of = {}
        for k, j in enumerate(order):
            split_of[str(ids[j])] = "test" if k < n_test else ("val" if k < n_test + n_val else "train")
        random_split = (len(ids), n_test, n_val)
    rows: list[tuple[int, dict[str, Any]]] = []
    broken: list[tuple[str, str]] = []
    in_use, in_use_from = known, grid_source
    n_file = n_in_split = n_unstable = 0
    assigned: dict[str, int] = {}
    for lineno, row in iter_jsonl(path):
        if limit is not None and len(rows) >= limit:
            break
        n_file += 1
        rid = str(row.get("id", f"line {lineno}"))
        where = f"{path}, line {lineno} ({rid})"
        t_row = None
        if "error" not in row:
            own = row_grid(row, where)
            t_row = own if own is not None else fallback
            if t_row is None:
                raise DataError(f"{where}: no 'temperatures_K' (and no grid given)")
            if in_use is None:
                in_use, in_use_from = t_row, f"the first row, {rid} (line {lineno})"
            elif not same_grid(t_row, in_use):
                mine = (f"temperatures_K = {grid_text(t_row)}" if own is not None else
                        f"no temperatures_K, so it is taken to be on {grid_text(t_row)}")
                raise DataError(
                    f"{where}: this row is on another temperature grid than the one in use: it has {mine}; the grid "
                    f"in use (from {in_use_from}) is {grid_text(in_use)}. All rows of one file must share one grid: "
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
        check_row(row, where, obs, t_row)
        try:
            row_n_atoms(row, where)
        except DataError as exc:
            broken.append((rid, str(exc)))
            continue
        if stability:  # every material: unstable ones are labelled, their curves left out below
            pass
        elif min_freq_thz is not None:  # a threshold of its own instead of the stable flag
            lowest = row.get("min_freq_thz")
            if lowest is None or not float(lowest) > float(min_freq_thz):
                n_unstable += 1
                continue
        elif stable and not row.get("stable", True):
            n_unstable += 1
            continue
        rows.append((lineno, row))
    report_left_out(broken, len(rows) + len(broken), f"{name} ({path})", on_error)
    if in_use is None:
        in_use = np.asarray(PHONONDB_GRID, dtype=np.float64)
    t_idx = select_temperatures(in_use, temperatures, temperature_range)

    scope: dict[str, str] = {}
    if rows:
        scope = scope_for_rows(Path(path), rows, dialect=dialect, symprec=symprec, workers=workers,
                               progress=progress, dataset=name, on_error=on_error)
    n_read = len(rows)
    kept = [r for ln, r in rows if f"{path}:{ln}" in scope]
    kept_scope = [scope[f"{path}:{ln}"] for ln, r in rows if f"{path}:{ln}" in scope]
    rows = kept  # type: ignore[assignment]
    if not rows and split == "train":
        raise DataError(empty_split_message(
            name, path, split, n_file=n_file, n_in_split=n_in_split, n_broken=len(broken), n_unstable=n_unstable,
            n_unconverted=n_read, limit=limit, assigned=assigned, random_split=random_split,
            split_source=split_source, valid_size=valid_size, test_size=test_size, split_seed=split_seed,
        ))
    targets = {}
    for o in obs:
        values = np.asarray([r[o] for r in rows], dtype=np.float64).reshape(len(rows), len(in_use))
        targets[o] = values[:, t_idx]
    units = {o: UNITS[o] for o in obs}
    spectra = dos_labels(rows, name)
    if stability:
        unstable = np.asarray([_is_unstable(r, min_freq_thz) for r in rows], dtype=bool)
        for o in obs:
            targets[o][unstable] = np.nan  # untrustworthy curves: missing labels, not zeros
        nT = len(t_idx)
        lowest = np.asarray([float(r["min_freq_thz"]) if r.get("min_freq_thz") is not None else np.nan for r in rows],
                            dtype=np.float64)
        targets["p_unstable"] = np.repeat(unstable.astype(np.float64)[:, None], nT, axis=1)
        targets["min_freq_thz"] = np.repeat(lowest[:, None], nT, axis=1)
        units.update(p_unstable="", min_freq_thz="THz")
        if "dos" in spectra:  # an unstable material's DOS is no label either (thermodynamic heads: stable only)
            spectra["dos"][unstable] = np.nan
    return Examples(
        **spectra,
        geometry=structure_geometry(rows) if geometry else None,
        ids=[str(r["id"]) for r in rows],
        scope=kept_scope,
        n_atoms=np.asarray([r["n_atoms"] for r in rows], dtype=np.float64).reshape(len(rows)),
        temperatures=in_use[t_idx].copy(),
        targets=targets,
        units=units,
        dialect=dialect,
    )


def structure_geometry(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """``[N, N_GEOMETRIC_FEATURES]`` standardised geometric features of the rows' structures (NaN row where they cannot
    be computed: the model that reads them names such a row)."""
    from ..errors import StructureError
    from ..scope.geometry import N_GEOMETRIC_FEATURES, geometric_features

    out = np.full((len(rows), N_GEOMETRIC_FEATURES), np.nan)
    for k, r in enumerate(rows):
        try:
            out[k] = geometric_features(r["structure"])
        except (StructureError, KeyError, TypeError, ValueError):
            pass
    return out


def _is_unstable(row: Mapping[str, Any], min_freq_thz: float | None) -> bool:
    """A row's label for ``stability``: its ``stable`` flag, or its lowest frequency against a threshold."""
    if min_freq_thz is not None:
        lowest = row.get("min_freq_thz")
        return lowest is None or not float(lowest) > float(min_freq_thz)
    return not row.get("stable", True)


def dos_labels(rows: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    """The phonon-DOS labels of thermo rows (``dos``, ``dos_fmax_thz``, ``dos_nonpositive_modes``) as
    :class:`Examples` fields: a row without them (or with a DOS of another length than the first,
    or non-finite values) gets a NaN row and trains on its curves alone; no row with one: ``{}``."""
    k = next((len(r["dos"]) for r in rows if isinstance(r.get("dos"), list) and r["dos"]), None)
    if k is None:
        return {}
    dos = np.full((len(rows), k), np.nan)
    fmax = np.full(len(rows), np.nan)
    atom = np.zeros(len(rows))
    for i, r in enumerate(rows):
        d, f = r.get("dos"), r.get("dos_fmax_thz")
        if not isinstance(d, list) or len(d) != k or f is None:
            continue
        try:
            v, fv, av = np.asarray(d, dtype=np.float64), float(f), float(r.get("dos_nonpositive_modes", 0.0) or 0.0)
        except (TypeError, ValueError):
            continue
        if np.all(np.isfinite(v)) and (v >= 0).all() and np.isfinite(fv) and fv > 0 and np.isfinite(av) and av >= 0:
            dos[i], fmax[i], atom[i] = v, fv, av
    return {"dos": dos, "dos_fmax_thz": fmax, "dos_atom": atom}


def load_thermo_jsonl(
    split: str = "train",
    *,
    path: str | None = None,
    split_file: str | None = None,
    valid_size: Fraction = 0.1,
    test_size: Fraction = 0.1,
    seed: Seed = 0,
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
    stability: bool = False,
    geometry: bool = False,
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
    reject_unknown(name, unknown)
    if not path:
        raise DataError(f"data set {name!r} needs path= (a .jsonl or .jsonl.gz file of thermo rows)")
    check_split(name, split)
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
        p, split, name=name, grid=None, default_grid=PHONONDB_GRID,
        split_of=split_of, observables=observables, temperatures=temperatures,
        temperature_range=temperature_range, stable=stable, limit=limit, dialect=dialect, symprec=symprec,
        workers=workers, on_error=on_error, progress=progress, split_seed=seed, valid_size=valid_size,
        test_size=test_size, split_source=f"split_file {split_file}" if split_file else None, stability=stability,
        geometry=geometry,
    )
