"""SCOPE strings from a mix of sources (for the corpus builder and the generic CSV data set).

A *source* is one of:

* ``NAME`` or ``NAME:SPLIT`` -- a registered data set (``cloud-pretrain``, ``cloud-cv:test``,
  ``phonondb-thermo:train``...); without a split, all of its examples;
* a CSV file (optionally ``.gz``) with a ``scope`` or ``cloud`` column (strings) or a ``cif``,
  ``poscar`` or ``structure`` (pymatgen JSON) column (structures, converted);
* a JSON-lines file (``.jsonl``/``.jsonl.gz``) with a ``scope`` or ``structure`` field per row;
* a structure file pymatgen reads (CIF, POSCAR, ``*.vasp``, pymatgen ``*.json``) or a folder of them.

Structures are converted with :mod:`cloudphys.scope` (through the per-user cache for CSV and
JSON-lines files). Nothing is dropped silently: every item that cannot be read or converted is
returned in the failures list with its id and the reason.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import DataError

__all__ = ["SourceStrings", "read_source", "STRING_COLUMNS", "STRUCTURE_COLUMNS", "STRUCTURE_SUFFIXES"]

STRING_COLUMNS = ("scope", "cloud")
STRUCTURE_COLUMNS = ("cif", "poscar", "structure")
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar", ".json", ".mcif")
_STRUCTURE_PREFIXES = ("POSCAR", "CONTCAR")


@dataclass
class SourceStrings:
    """Strings read from one source.

    :param source: the source as given.
    :param ids: one id per string.
    :param strings: the SCOPE strings (as given for string sources; in ``dialect`` for converted
        structures).
    :param converted: whether the strings come from structures.
    :param failures: ``(id, reason)`` for every item left out.
    """

    source: str
    ids: list[str] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)
    converted: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")  # type: ignore[return-value]
    return open(path, encoding="utf-8", newline="")


def _is_structure_file(p: Path) -> bool:
    return p.is_file() and (p.suffix.lower() in STRUCTURE_SUFFIXES or p.name.startswith(_STRUCTURE_PREFIXES))


def _convert(source: Path | None, items: list[tuple[str, Any]], out: SourceStrings, *, dialect: str,
             symprec: float, workers: int, progress: bool, generator_table: Any) -> None:
    from .cache import ScopeCache, convert_structures

    if not items:
        return
    if source is not None:
        cache = ScopeCache(source, dialect=dialect, symprec=symprec)
        missing = set(cache.missing(i for i, _ in items))
        todo = [(i, s) for i, s in items if i in missing]
        ok, bad = convert_structures(todo, dialect=dialect, symprec=symprec, workers=workers, progress=progress,
                                     generator_table=generator_table)
        cache.update(ok, bad)
        scope, errors = cache.scope, cache.errors
    else:
        scope, errors = convert_structures(items, dialect=dialect, symprec=symprec, workers=workers,
                                           progress=progress, generator_table=generator_table)
    for i, _ in items:
        if i in scope:
            out.ids.append(i)
            out.strings.append(scope[i])
        else:
            out.failures.append((i, errors.get(i, "no result from the converter")))
    out.converted = True


def _rows_csv(path: Path) -> Iterator[dict[str, str]]:
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise DataError(f"{path}: empty CSV file")
        yield from reader


def read_source(
    source: str,
    *,
    dialect: str = "default",
    symprec: float = 0.01,
    workers: int = 1,
    progress: bool = False,
    generator_table: Any = None,
    column: str | None = None,
) -> SourceStrings:
    """Read the SCOPE strings of one source (see the module docstring for the forms).

    :param column: CSV column / JSON field to use (default: the first of ``scope``, ``cloud``,
        ``cif``, ``poscar``, ``structure`` present).
    :raises DataError: the source does not exist or has no usable column.
    """
    out = SourceStrings(source)
    conv = dict(dialect=dialect, symprec=symprec, workers=workers, progress=progress, generator_table=generator_table)
    path = Path(source).expanduser()
    if not path.exists():
        return _read_dataset(source, out)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if _is_structure_file(p))
        if not files:
            raise DataError(f"{path}: no structure files (CIF, POSCAR, *.vasp, *.json) inside")
        items = []
        for p in files:
            try:
                items.append((str(p.relative_to(path)), _read_structure_file(p)))
            except DataError as exc:
                out.failures.append((str(p.relative_to(path)), str(exc)))
        _convert(None, items, out, **conv)
        return out
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        items: list[tuple[str, Any]] = []
        col = kind = None
        for k, row in enumerate(_rows_csv(path)):
            if col is None:
                col = _pick_column(path, list(row), column)
                kind = col if col in STRUCTURE_COLUMNS else "scope"
            rid = row.get("id") or row.get("material_id") or f"row:{k}"
            value = row[col]
            if kind in ("cif", "poscar"):
                from ..scope import StructureText

                items.append((rid, StructureText(value, kind)))
            elif kind == "structure":
                try:
                    items.append((rid, json.loads(value)))
                except ValueError as exc:
                    out.failures.append((rid, f"structure column is not JSON: {exc}"))
            elif value.strip():
                out.ids.append(rid)
                out.strings.append(value.strip())
            else:
                out.failures.append((rid, "empty SCOPE string"))
        _convert(path, items, out, **conv)
        return out
    if name.endswith((".jsonl", ".jsonl.gz")):
        from .phonondb import iter_jsonl

        items = []
        for k, row in enumerate(iter_jsonl(path)):
            rid = str(row.get("id", f"line:{k + 1}"))
            key = column or ("scope" if "scope" in row else "structure")
            if "error" in row and key not in row:
                out.failures.append((rid, f"failed build: {row['error']}"))
            elif key not in row:
                out.failures.append((rid, f"no {key!r} field"))
            elif key == "structure":
                items.append((rid, row["structure"]))
            else:
                out.ids.append(rid)
                out.strings.append(str(row[key]).strip())
        _convert(path, items, out, **conv)
        return out
    if _is_structure_file(path):
        try:
            items = [(path.name, _read_structure_file(path))]
        except DataError as exc:
            out.failures.append((path.name, str(exc)))
            return out
        _convert(None, items, out, **conv)
        return out
    raise DataError(f"{source}: not a data set name, CSV, JSON-lines, structure file or folder")


def _pick_column(path: Path, header: list[str], column: str | None) -> str:
    if column is not None:
        if column not in header:
            raise DataError(f"{path}: no column {column!r}; columns are {header}")
        return column
    for c in STRING_COLUMNS + STRUCTURE_COLUMNS:
        if c in header:
            return c
    raise DataError(
        f"{path}: no column with SCOPE strings ({', '.join(STRING_COLUMNS)}) or structures "
        f"({', '.join(STRUCTURE_COLUMNS)}); columns are {header}"
    )


def _read_structure_file(p: Path) -> Any:
    from .labels import read_structure

    return read_structure(p)


def _read_dataset(source: str, out: SourceStrings) -> SourceStrings:
    from ..plugins import get_registry

    name, _, split = source.partition(":")
    reg = get_registry()
    if name not in reg.datasets:
        raise DataError(
            f"{source}: no such file, folder or data set; data sets: {', '.join(sorted(reg.datasets))}"
        )
    spec = reg.datasets[name]
    if split:
        splits = [split]
    elif "all" in spec.splits:
        splits = ["all"]
    else:
        splits = [s for s in spec.splits if s in ("train", "val", "test")] or list(spec.splits)
    params = {"stable": False} if "stable" in getattr(spec, "params", {}) else {}
    for sp in splits:
        got = spec.load(split=sp, **params)
        if isinstance(got, list):
            out.ids.extend(f"{name}:{sp}:{k}" for k in range(len(got)))
            out.strings.extend(got)
        else:
            out.ids.extend(f"{name}:{i}" for i in got.ids)
            out.strings.extend(got.scope)
    return out

