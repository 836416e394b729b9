"""The generic ``csv`` data set: a CSV of SCOPE strings or structures with target columns.

Example config::

    data:
      name: csv
      path: my_data.csv            # columns: cif (or scope/cloud/poscar/structure), n_atoms, cv_300
      targets: {cv: cv_300}        # observable -> column, at `temperature`
      temperature: 300
      # or curves: targets: {cv: {cv_100: 100, cv_300: 300}}  (column -> K; same K for all observables)

Splits: a ``split`` column (``train``/``val``/``test``) if present; else ``test_path`` is the test
split and ``path`` is split into train/val like CLOUD (``RandomState(seed).shuffle``, first
``floor(valid_size n)`` validation); else one seeded permutation of ``path``: first
``floor(test_size n)`` rows ``test``, next ``floor(valid_size n)`` ``val``, rest ``train``.
``n_atoms`` comes from ``n_atoms_column`` or, for structures, the number of sites.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..bounds import Fraction, Kelvin, Seed, Tolerance, Workers
from ..errors import DataError
from ..inputs import (
    DEFAULT_LIMITS,
    READ_ERRORS,
    check_n_atoms,
    open_text,
    read_inputs,
    to_records,
    unreadable_message,
)
from ..inputs.textio import CsvRow, iter_csv_rows
from .base import DatasetSpec, Examples, check_split, reject_unknown
from .sources import STRING_COLUMNS, STRUCTURE_COLUMNS
from .thermo import UNITS, report_left_out

__all__ = ["corpus_spec", "csv_spec", "load_csv"]

_DEFAULT_UNITS = UNITS  # the thermo observables' units, declared once in .thermo


def _header(path: Path) -> list[str]:
    """The header of a CSV (read within the per-item byte budget)."""
    try:
        with open_text(path, newline="") as fh:
            for rec in iter_csv_rows(fh, DEFAULT_LIMITS.max_bytes):
                if isinstance(rec, CsvRow):
                    return [h.strip() for h in rec.fields]
                raise DataError(f"{path}: cannot read the header: {rec.reason}")
    except READ_ERRORS as exc:
        raise DataError(unreadable_message(path, 0, exc)) from None
    raise DataError(f"{path}: empty CSV file")


def _target_layout(targets: Mapping[str, Any] | None,
                   temperature: float | None) -> tuple[list[float], dict[str, list[str]]]:
    """(temperatures, observable → columns in temperature order)."""
    if not targets:
        raise DataError("data set 'csv' needs targets= (observable -> column, or -> {column: temperature K})")
    temps: list[float] | None = None
    cols: dict[str, list[str]] = {}
    for obs, spec in targets.items():
        if isinstance(spec, str):
            t = [float("nan") if temperature is None else float(temperature)]
            c = [spec]
        elif isinstance(spec, Mapping):
            pairs = sorted(((float(k), str(col)) for col, k in spec.items()), key=lambda p: p[0])
            t = [p[0] for p in pairs]
            c = [p[1] for p in pairs]
        else:
            raise DataError(f"csv targets[{obs!r}] must be a column name or {{column: temperature}}, got {spec!r}")
        if temps is None:
            temps = t
        elif not np.allclose(temps, t, equal_nan=True):
            raise DataError("csv targets: every observable must use the same temperatures")
        cols[obs] = c
    return temps or [], cols


def load_csv(
    split: str = "train",
    *,
    path: str | None = None,
    targets: Mapping[str, Any] | None = None,
    temperature: Kelvin | None = None,
    units: Mapping[str, str] | None = None,
    column: str | None = None,
    n_atoms_column: str = "n_atoms",
    id_column: str | None = None,
    split_column: str = "split",
    test_path: str | None = None,
    valid_size: Fraction = 0.25,
    test_size: Fraction = 0.1,
    seed: Seed = 0,
    dialect: str = "default",
    symprec: Tolerance = 0.01,
    workers: Workers = 1,
    on_error: str = "warn",
    **unknown: Any,
) -> Examples:
    """A split of a CSV of SCOPE strings or structures with targets (see the module docstring).

    :param column: the string/structure column (default: first of scope, cloud, cif, poscar, structure).
    :param targets: observable → column (at ``temperature`` K) or observable → {column: K}.
    :param units: observable → unit (default J/(K*mol) for cv, s; J/mol for u, f; else "").
    :param on_error: ``warn`` (leave unreadable/unconvertible rows out with a DataWarning) or ``raise``.
    """

    name = "csv"
    reject_unknown(name, unknown)
    if not path:
        raise DataError(f"data set {name!r} needs path= (a CSV file)")
    check_split(name, split)
    temps, tcols = _target_layout(targets, temperature)
    src = Path(test_path if (split == "test" and test_path) else path).expanduser()
    if not src.is_file():
        raise DataError(f"data set {name!r}: file {src} does not exist")
    header = _header(src)
    for obs, cs in tcols.items():
        for c in cs:
            if c not in header:
                raise DataError(f"{src}: no target column {c!r} (for {obs}); columns are {header}")
    col = column or next((c for c in STRING_COLUMNS + STRUCTURE_COLUMNS if c in header), None)
    if col is None or col not in header:
        raise DataError(f"{src}: no column {column or 'scope/cloud/cif/poscar/structure'!r}; columns are {header}")
    if on_error not in ("warn", "raise"):
        raise DataError(f"on_error must be 'warn' or 'raise', got {on_error!r}")
    items = read_inputs([src], column=col)  # one item per data row (a row that cannot be read: its error)
    if items and all(it.whole_source for it in items):
        raise DataError(str(items[0].error))
    idc = id_column or next((c for c in ("id", "material_id") if c in header), None)
    ids = [(str(it.fields.get(idc) or "") if idc else "") or f"row:{k}" for k, it in enumerate(items)]
    if len(set(ids)) != len(ids):
        raise DataError(f"{src}: ids in column {idc!r} are not unique")
    n_rows = len(items)

    # which rows belong to the split
    if split == "all" or (split == "test" and test_path):
        keep = np.arange(n_rows)
    elif split_column in header:
        keep = np.array([k for k, it in enumerate(items) if str(it.fields.get(split_column, "")).strip() == split],
                        dtype=int)
    elif test_path:
        idx = np.arange(n_rows)
        np.random.RandomState(seed).shuffle(idx)
        n_val = int(math.floor(valid_size * n_rows))
        keep = idx[:n_val] if split == "val" else idx[n_val:]
    else:
        order = np.random.RandomState(seed).permutation(n_rows)
        n_test, n_val = int(math.floor(test_size * n_rows)), int(math.floor(valid_size * n_rows))
        keep = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}[split]

    chosen = [items[int(k)] for k in keep]
    table = None
    if dialect == "cloud" and any(it.error is None and it.scope is None for it in chosen):
        from .cloud import generator_table

        table = generator_table()
    given = {id(it): it.scope for it in chosen if it.error is None and it.scope is not None}
    to_records(chosen, dialect=dialect, symprec=symprec, workers=workers, generator_table=table)
    for it in chosen:  # a given string that does not parse is kept as written: encoding the split
        if id(it) in given and it.record is None:  # reports every bad string in one DataError
            it.error, it.scope = None, given[id(it)]
    failures: list[tuple[str, str]] = []
    out_ids: list[str] = []
    out_scope: list[str] = []
    out_n: list[float] = []
    values: dict[str, list[list[float]]] = {o: [] for o in tcols}
    for k, it in zip(keep, chosen):
        rid = ids[int(k)]
        if it.error is not None or not it.scope:
            failures.append((rid, it.error or "no SCOPE string"))
            continue
        f = it.fields
        try:
            if n_atoms_column != "n_atoms" and str(f.get(n_atoms_column, "")).strip():
                n_at = check_n_atoms(f[n_atoms_column])
            elif it.n_atoms is not None:
                n_at = float(it.n_atoms)
            else:
                n_at = float("nan")
            vals = {o: [float(f[c]) if str(f[c]).strip() else float("nan") for c in cs] for o, cs in tcols.items()}
        except (TypeError, ValueError, KeyError) as exc:
            failures.append((rid, f"{it.name}: bad number ({exc})"))
            continue
        out_ids.append(rid)
        out_scope.append(it.scope)
        out_n.append(n_at)
        for o in tcols:
            values[o].append(vals[o])
    report_left_out(failures, len(keep), f"csv ({src})", on_error)
    unit_map = dict(_DEFAULT_UNITS)
    unit_map.update(units or {})
    return Examples(
        ids=out_ids,
        scope=out_scope,
        n_atoms=np.asarray(out_n, dtype=np.float64),
        temperatures=np.asarray(temps, dtype=np.float64),
        targets={o: np.asarray(v, dtype=np.float64).reshape(len(out_ids), len(temps)) for o, v in values.items()},
        units={o: unit_map.get(o, "") for o in tcols},
        dialect=dialect if col in STRUCTURE_COLUMNS else _strings_dialect(out_scope),
    )


def _strings_dialect(strings: list[str]) -> str | None:
    """The dialect most of the given strings are written in (``None`` for no strings)."""
    from ..scope import dialect_of

    kinds = [dialect_of(t) for t in strings]
    return max(set(kinds), key=kinds.count) if kinds else None


def csv_spec() -> DatasetSpec:
    """The :class:`DatasetSpec` of the generic ``csv`` data set."""
    return DatasetSpec(
        name="csv",
        description="your CSV of SCOPE strings or structures (cif/poscar/structure) with target columns, path=FILE",
        files=(),
        columns={
            "scope | cloud | cif | poscar | structure": "SCOPE string, or a structure (CIF/POSCAR text, pymatgen JSON)",
            "n_atoms": "atoms per cell the targets refer to (default for structures: number of sites)",
            "<targets>": "observable columns, per mole of cells (cv, s in J/(K*mol); u, f in J/mol)",
            "split": "optional: train / val / test",
            "id | material_id": "optional identifier",
        },
        licence="yours",
        source="your own data (see docs/data.md)",
        load=load_csv,
        splits=("train", "val", "test", "all"),
        dialect=None,  # the file's: converted structures in the `dialect` parameter, given strings as written
    )


def corpus_spec() -> DatasetSpec:
    """The :class:`DatasetSpec` of ``corpus-csv`` (unlabelled strings; ``build-corpus`` output)."""
    from .corpus import load_corpus_csv

    return DatasetSpec(
        name="corpus-csv",
        description="your unlabelled SCOPE strings (build-corpus output or any scope/cloud CSV), path=FILE",
        files=(),
        columns={"scope | cloud": "SCOPE string", "split": "train / val (held out)"},
        licence="yours",
        source="cloudphys data build-corpus",
        labelled=False,
        load=load_corpus_csv,
        splits=("train", "val", "all"),
    )
