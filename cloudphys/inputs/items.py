"""``read_inputs``: every kind of user input → one :class:`InputItem` per structure or string.

Sources (a list of any mix, order kept):

* a path: a structure file (:data:`.formats.STRUCTURE_SUFFIXES`, ``POSCAR*``/``CONTCAR*``, ``.gz``
  too; multi-block CIFs and multi-frame extxyz/traj/ASE-JSON give one item per block/frame), a
  folder (its structure files, recursively, sorted by path), a ``.csv[.gz]`` with a ``scope``,
  ``cloud``, ``cif``, ``poscar`` or ``structure`` (pymatgen JSON) column, a ``.jsonl[.gz]`` with a
  ``scope`` or ``structure`` field per line; any other file pymatgen reads (its own formats);
* an object: a pymatgen ``Structure``, an ``ase.Atoms``, a ``Structure.as_dict()``-shaped dict,
  a dict with ``id`` and ``structure`` or ``scope``, an ``(id, object)`` pair, or a SCOPE string.
  A ``str`` is a path when such a file or folder exists or it looks like one (no ``|``), else a
  SCOPE string.

Nothing is dropped: an input that cannot be read is an item with ``.error`` naming the file
(``FILE:LINE`` for a line of a table) and the reason; a file that breaks off (not UTF-8, corrupt
gzip) keeps the items read before and adds one error item saying from which line on.

One module (about 400 lines) on purpose: the source dispatch and the table readers build items the
same way (``FILE:LINE`` names, error items, limits) and :func:`read_inputs` is their only caller.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CloudphysError, StructureError
from .formats import LOOKED_FOR, DeferredStructure, read_structure_file, structure_kind
from .limits import Limits, as_limits
from .plain import plain_structure, structure_from_plain
from .textio import (
    READ_ERRORS,
    CsvRowError,
    iter_csv_rows,
    iter_lines,
    loads_json,
    open_text,
    read_error_reason,
    unreadable_message,
)

__all__ = ["ID_COLUMNS", "STRING_COLUMNS", "STRUCTURE_COLUMNS", "InputItem", "read_inputs"]

#: Table columns / JSON fields holding SCOPE strings, and holding structures (in this order of preference).
STRING_COLUMNS: tuple[str, ...] = ("scope", "cloud")
STRUCTURE_COLUMNS: tuple[str, ...] = ("cif", "poscar", "structure")
#: Columns / fields naming an item (first present wins).
ID_COLUMNS: tuple[str, ...] = ("id", "material_id")


@dataclass(eq=False)
class InputItem:
    """One input: a structure or a SCOPE string, or the reason it could not be read.

    :param name: where it comes from: the file, ``FILE:LINE`` (a table row, a CIF block, an extxyz
        frame), ``FILE@K`` (a trajectory frame), or the position in the given list.
    :param id: the item's own id (an ``id``/``material_id`` column or field) or else ``name``.
    :param source: the file it was read from (``None`` for objects); keys the SCOPE cache.
    :param scope: the SCOPE string given, or (after :func:`~cloudphys.inputs.to_records`) the one
        converted from the structure, in the requested dialect.
    :param n_atoms: atoms in the cell given (a structure's sites; a table's ``n_atoms`` column), or
        ``None`` until known (a CIF is parsed by ``to_records``).
    :param error: why this item has no result (names the item), or ``None``.
    :param record: the :class:`~cloudphys.scope.ScopeRecord` (after ``to_records``).
    :param fields: the other columns of its table row / fields of its JSON line (strings as given).
    :param whole_source: the error concerns the whole source (a missing file, a table without a
        usable column, a folder without structure files): no item of it could be read.
    :param symmetry_warning: set by ``to_records`` where the symmetry found is far lower than at a
        looser tolerance (:func:`cloudphys.scope.symmetry.low_symmetry_warning`).
    :param geometry: set by ``to_records(geometry=True)``: the standardised geometric features of its
        structure (:func:`cloudphys.scope.geometry.geometric_features`, float64
        ``[N_GEOMETRIC_FEATURES]``), or ``None``.
    """

    name: str
    id: str
    source: str | None = None
    scope: str | None = None
    n_atoms: float | None = None
    error: str | None = None
    record: Any = None
    fields: dict[str, Any] = field(default_factory=dict)
    whole_source: bool = False
    symmetry_warning: str | None = None
    raw: Any = field(default=None, repr=False)  # what the converter gets: deferred text, plain dict, object
    _structure: Any = field(default=None, repr=False)
    geometry: Any = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def structure(self) -> Any:
        """The pymatgen ``Structure`` (or ``ase.Atoms``) of this item, parsed on first use; ``None``
        for a SCOPE string or an item with an error (a parse failure sets ``.error``)."""
        if self._structure is None and self.error is None and self.raw is not None:
            try:
                self._structure = load_raw(self.raw)
                if self.n_atoms is None:
                    self.n_atoms = float(len(self._structure))
            except CloudphysError as exc:
                self.fail(str(exc))
            except Exception as exc:
                self.fail(f"cannot read a structure ({type(exc).__name__}: {exc})")
        return self._structure

    def fail(self, reason: str) -> None:
        """Record ``reason`` as this item's error, prefixed with its name."""
        self.error = reason if reason.startswith(self.name) else f"{self.name}: {reason}"


def load_raw(raw: Any) -> Any:
    """A structure object from what an item carries (deferred text, plain dict, object)."""
    if isinstance(raw, DeferredStructure):
        return raw.load_structure()
    if isinstance(raw, dict):
        return structure_from_plain(raw)
    return raw


def _error_item(name: str, reason: str, source: str | None = None, ident: str | None = None,
                whole: bool = False) -> InputItem:
    item = InputItem(name=name, id=ident or name, source=source, whole_source=whole)
    item.fail(reason)
    return item


def _count(obj: Any) -> int | None:
    try:
        return len(obj)
    except TypeError:
        return None


def _looks_like_scope(text: str) -> bool:
    return "|" in text


# ------------------------------------------------------------------------------------------
# objects
# ------------------------------------------------------------------------------------------

def _derives_from(obj: Any, module: str) -> bool:
    return any(cls.__module__.startswith(module) for cls in type(obj).__mro__)


def _object_item(name: str, ident: str, obj: Any, limits: Limits, source: str | None = None,
                 fields: dict[str, Any] | None = None) -> InputItem:
    item = InputItem(name=name, id=ident, source=source, fields=fields or {})
    try:
        if isinstance(obj, str):
            text = obj.strip()
            if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@"):  # a cell neutralised by our CSV writer
                text = text[1:]
            if not text:
                raise StructureError("empty SCOPE string")
            if len(text) > limits.max_bytes:
                raise limits.too_big("the SCOPE string", len(text), "max_bytes")
            item.scope = text
        elif isinstance(obj, Mapping):
            item.raw = plain_structure(obj, limits)
            item.n_atoms = float(len(item.raw["sites"]))
        elif _derives_from(obj, "pymatgen.core") or _derives_from(obj, "ase.atoms"):
            n = _count(obj)
            if n is not None and n > limits.max_atoms:
                raise limits.too_big("the number of atoms", n, "max_atoms")
            item.raw = item._structure = obj
            item.n_atoms = float(n) if n is not None else None
        elif isinstance(obj, DeferredStructure):
            item.raw = obj
        elif isinstance(obj, CloudphysError):
            raise obj
        else:
            raise StructureError(
                f"cannot read a {type(obj).__module__}.{type(obj).__name__}: expected a path, a pymatgen Structure, "
                "an ase.Atoms, a Structure.as_dict() dict or a SCOPE string")
    except CloudphysError as exc:
        item.fail(str(exc))
    return item


def make_item(name: str, obj: Any, *, id: str | None = None, source: str | None = None,
              limits: Limits | dict[str, Any] | None = None, fields: dict[str, Any] | None = None) -> InputItem:
    """One :class:`InputItem` from an object a caller already read (a structure dict from its own
    table, a Structure, an Atoms, a SCOPE string); errors are recorded on the item, never raised."""
    return _object_item(name, id or name, obj, as_limits(limits), source=source, fields=fields)


# ------------------------------------------------------------------------------------------
# tables
# ------------------------------------------------------------------------------------------

def check_n_atoms(raw: Any, limits: Limits | None = None) -> float:
    """A declared ``n_atoms`` (text or number) checked: a positive finite number ≤ ``max_atoms``."""
    if isinstance(raw, bool):
        raise TypeError(f"n_atoms must be a number, got {raw!r}")
    try:
        n = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"n_atoms must be a number, got {str(raw)!r:.40}") from None
    if not math.isfinite(n) or n <= 0:
        raise ValueError(f"n_atoms must be a positive number of atoms, got {str(raw)!r:.40}")
    lim = as_limits(limits)
    if n > lim.max_atoms:
        raise ValueError(str(lim.too_big("n_atoms", int(n), "max_atoms")))
    return n


def _pick(keys: Sequence[str], wanted: Sequence[str]) -> str | None:
    return next((c for c in wanted if c in keys), None)


def _table_item(name: str, source: str, row: Mapping[str, Any], col: str, limits: Limits) -> InputItem:
    ident_col = _pick(list(row), ID_COLUMNS)
    ident = row.get(ident_col) if ident_col else None
    ident = str(ident) if ident not in (None, "") else name
    value = row.get(col)
    others = {k: v for k, v in row.items() if k != col}
    if col in ("cif", "poscar"):
        text = value if isinstance(value, str) else ""
        obj: Any = (DeferredStructure(col, text, limits) if text.strip()
                    else StructureError(f"empty {col!r} field"))
    elif col == "structure":
        obj = value
        if isinstance(value, str):
            try:
                obj = loads_json(value)
            except (ValueError, RecursionError) as exc:
                obj = StructureError(f"the 'structure' field is not JSON ({exc})")
        if obj is None:
            obj = StructureError("no 'structure' value")
    else:
        obj = value if isinstance(value, str) else ("" if value is None else str(value))
    item = _object_item(name, ident, obj, limits, source=source, fields=others)
    if item.error is None and row.get("n_atoms") not in (None, ""):
        try:
            item.n_atoms = check_n_atoms(row["n_atoms"], limits)
        except (TypeError, ValueError) as exc:
            item.fail(f"bad n_atoms: {exc}")
    return item


def _iter_csv(path: Path, limits: Limits, column: str | None) -> Iterator[InputItem]:
    where = str(path)
    lines_read = 0
    try:
        with open_text(path, newline="") as fh:
            header: list[str] | None = None
            col = None
            for rec in iter_csv_rows(fh, limits.max_bytes):
                if isinstance(rec, CsvRowError):
                    if header is None:
                        yield _error_item(where, f"cannot read the header: {rec.reason}", where, whole=True)
                        return
                    yield _error_item(f"{where}:{rec.first_line}", rec.reason, where)
                    lines_read = rec.last_line
                    continue
                lines_read = rec.last_line
                if header is None:
                    header = [h.strip().lstrip("\ufeff") for h in rec.fields]
                    col = _table_column(header, column)
                    if col is None:
                        wanted = column or "/".join(STRING_COLUMNS + STRUCTURE_COLUMNS)
                        yield _error_item(where, f"a CSV input needs a {wanted} column (has {', '.join(header)})",
                                          where, whole=True)
                        return
                    continue
                name = f"{where}:{rec.first_line}"
                if len(rec.fields) != len(header):
                    yield _error_item(name, f"{len(rec.fields)} fields, but the header has {len(header)}", where)
                    continue
                yield _table_item(name, where, dict(zip(header, rec.fields)), col, limits)  # type: ignore[arg-type]
            if header is None:
                yield _error_item(where, "empty CSV file (no header)", where, whole=True)
    except READ_ERRORS as exc:
        yield _error_item(where, unreadable_message(path, lines_read, exc), where, whole=lines_read == 0)


def _table_column(keys: Sequence[str], column: str | None) -> str | None:
    if column is not None:
        return column if column in keys else None
    return _pick(keys, STRING_COLUMNS + STRUCTURE_COLUMNS)


def _iter_jsonl(path: Path, limits: Limits, column: str | None) -> Iterator[InputItem]:
    where = str(path)
    lines_read = 0
    try:
        with open_text(path) as fh:
            for lineno, line, size in iter_lines(fh, limits.max_bytes):
                lines_read = lineno
                name = f"{where}:{lineno}"
                if line is None:
                    yield _error_item(name, str(limits.too_big("the line", size, "max_bytes")), where)
                    continue
                if not line.strip():
                    continue
                try:
                    row = loads_json(line)
                except (ValueError, RecursionError) as exc:
                    yield _error_item(name, f"not valid JSON ({exc})", where)
                    continue
                if not isinstance(row, dict):
                    yield _error_item(name, f"expected a JSON object, got {type(row).__name__}", where)
                    continue
                col = _table_column(list(row), column) if column else _pick(list(row), ("scope", "structure", "cloud"))
                if col is None:
                    ident = row.get("id")
                    why = (f"failed build: {row['error']}" if "error" in row else
                           f"expected an object with 'id' and {column or 'structure'!r} (or 'scope')")
                    yield _error_item(name, why, where, str(ident) if ident is not None else None)
                    continue
                yield _table_item(name, where, row, col, limits)
    except READ_ERRORS as exc:
        yield _error_item(where, unreadable_message(path, lines_read, exc), where, whole=lines_read == 0)


# ------------------------------------------------------------------------------------------
# paths
# ------------------------------------------------------------------------------------------

def _table_kind(path: Path) -> str | None:
    name = path.name.lower()
    base = name.removesuffix(".gz")
    if base.endswith(".csv"):
        return "csv"
    if base.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return None


def _iter_file(path: Path, limits: Limits, column: str | None) -> Iterator[InputItem]:
    kind = _table_kind(path)
    if kind == "csv":
        yield from _iter_csv(path, limits, column)
        return
    if kind == "jsonl":
        yield from _iter_jsonl(path, limits, column)
        return
    where = str(path)
    try:
        found = read_structure_file(path, limits)
    except READ_ERRORS as exc:
        yield _error_item(where, f"cannot read the file: {read_error_reason(exc)}", where)
        return
    for name, obj in found:  # the file is the source (the SCOPE cache's key), one structure or many
        yield _object_item(name, name, obj, limits, source=where)


def _iter_folder(path: Path, limits: Limits) -> Iterator[InputItem]:
    where = str(path)
    try:
        files = sorted(p for p in path.rglob("*") if p.is_file() and structure_kind(p) is not None)
    except OSError as exc:
        yield _error_item(where, f"cannot list the folder: {read_error_reason(exc)}", where, whole=True)
        return
    if not files:
        yield _error_item(where, f"the folder has no structure files (looked for {LOOKED_FOR})", where, whole=True)
    for p in files:
        yield from _iter_file(p, limits, None)


def _iter_path(path: Path, limits: Limits, column: str | None) -> Iterator[InputItem]:
    if path.is_dir():
        yield from _iter_folder(path, limits)
    elif not path.exists():
        yield _error_item(str(path), "no such file or folder", str(path), whole=True)
    else:
        yield from _iter_file(path, limits, column)


def _is_object(src: Any) -> bool:
    """Whether ``src`` is an in-memory object (a structure, Atoms, a structure dict) read as one item
    (the last branch of :func:`_iter_source`), not a path, SCOPE string, ``(id, object)`` or table row."""
    return not (isinstance(src, (InputItem, os.PathLike, str))
                or (isinstance(src, tuple) and len(src) == 2 and isinstance(src[0], (str, int)))
                or (isinstance(src, Mapping) and ("structure" in src or "scope" in src) and "sites" not in src))


def _iter_source(index: int, src: Any, limits: Limits, column: str | None) -> Iterator[InputItem]:
    if isinstance(src, InputItem):
        yield src
    elif isinstance(src, os.PathLike) or (isinstance(src, str) and not _looks_like_scope(src)):
        yield from _iter_path(Path(src).expanduser(), limits, column)
    elif isinstance(src, tuple) and len(src) == 2 and isinstance(src[0], (str, int)):
        yield _object_item(str(src[0]), str(src[0]), src[1], limits)
    elif isinstance(src, Mapping) and ("structure" in src or "scope" in src) and "sites" not in src:
        name = str(src.get("id", index))
        col = "scope" if "scope" in src else "structure"
        yield _table_item(name, None, src, col, limits)  # type: ignore[arg-type]
    else:
        name = _formula(src) or str(index)
        yield _object_item(name, name, src, limits)


def _formula(obj: Any) -> str | None:
    """The reduced formula of an in-memory structure (pymatgen ``Structure``, ``ase.Atoms``, an
    ``as_dict()`` dict) as its readable id, or ``None`` (a SCOPE string, anything else, any failure)."""
    try:
        if _derives_from(obj, "pymatgen.core"):
            return str(obj.composition.reduced_formula)
        symbols: list[str] | None = None
        if _derives_from(obj, "ase.atoms"):
            symbols = [str(x) for x in obj.get_chemical_symbols()]
        elif isinstance(obj, Mapping) and isinstance(obj.get("sites"), list):
            symbols = []
            for site in obj["sites"]:
                for sp in site.get("species", []):
                    symbols.append(str(sp["element"]))
        if not symbols:
            return None
        from pymatgen.core import Composition

        return str(Composition(dict(Counter(symbols))).reduced_formula)
    except Exception:  # an id is a convenience: a structure the formula cannot be taken of keeps its index
        return None


def _index_repeats(items: list[InputItem], named: list[tuple[int, int]]) -> None:
    """Formula ids that occur more than once among the in-memory inputs get ``#INDEX`` (their place in
    the list given): ``[si, nacl, si]`` → ``Si#0``, ``NaCl``, ``Si#2``."""
    counts = Counter(items[pos].id for pos, _ in named)
    for pos, index in named:
        it = items[pos]
        if counts[it.id] > 1:
            new = f"{it.id}#{index}"
            if it.error is not None and it.error.startswith(it.name):
                it.error = new + it.error[len(it.name):]
            it.name = it.id = new


def _is_single(sources: Any) -> bool:
    """Whether ``sources`` is one source (a path, an object, an ``(id, object)`` pair), not a list."""
    if isinstance(sources, (str, os.PathLike, Mapping, InputItem)) or not isinstance(sources, Iterable):
        return True
    if _derives_from(sources, "ase.atoms") or _derives_from(sources, "pymatgen.core"):
        return True
    return (isinstance(sources, tuple) and len(sources) == 2 and isinstance(sources[0], (str, int))
            and not isinstance(sources[1], (str, os.PathLike)))


def read_inputs(sources: Any, *, limits: Limits | dict[str, Any] | None = None,
                column: str | None = None) -> list[InputItem]:
    """One :class:`InputItem` per input, in order (see the module docstring for the sources).

    :param sources: one source or a list/tuple of them.
    :param limits: per-item :class:`~cloudphys.inputs.Limits` (default :data:`DEFAULT_LIMITS`).
    :param column: the table column / JSON field to read (default: the first of ``scope``,
        ``cloud``, ``cif``, ``poscar``, ``structure`` present).
    """
    lim = as_limits(limits)
    if _is_single(sources):
        sources = [sources]
    items: list[InputItem] = []
    named: list[tuple[int, int]] = []  # (position in items, index given) of in-memory structures
    for k, src in enumerate(sources):
        if _is_object(src):
            named.append((len(items), k))
        items.extend(_iter_source(k, src, lim, column))
    _index_repeats(items, named)
    return items
