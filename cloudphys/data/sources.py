"""SCOPE strings from a mix of sources (for the corpus builder and the generic CSV data set).

A *source* is one of:

* ``NAME`` or ``NAME:SPLIT`` -- a registered data set (``cloud-pretrain``, ``cloud-cv:test``,
  ``phonondb-thermo:train``...); without a split, all of its examples;
* anything :func:`cloudphys.inputs.read_inputs` reads: a CSV (optionally ``.gz``) with a ``scope``
  or ``cloud`` column (strings) or a ``cif``, ``poscar`` or ``structure`` column (structures); a
  JSON-lines file with a ``scope`` or ``structure`` field per row; a structure file or a folder.

Structures are converted with :func:`cloudphys.inputs.to_records` (through the per-user cache).
Nothing is dropped silently: every item that cannot be read or converted is returned in the
failures list with its id and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..inputs import (
    STRING_COLUMNS,
    STRUCTURE_COLUMNS,
    STRUCTURE_SUFFIXES,
    read_inputs,
    to_records,
)

__all__ = ["STRING_COLUMNS", "STRUCTURE_COLUMNS", "STRUCTURE_SUFFIXES", "SourceStrings", "read_source"]


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
    :raises DataError: the source is neither a file, a folder nor a data set; a table without a
        usable column; a folder without structure files.
    """
    out = SourceStrings(source)
    path = Path(source).expanduser()
    if not path.exists():
        return _read_dataset(source, out)
    items = read_inputs([path], column=column)
    if items and all(it.whole_source for it in items):
        raise DataError(items[0].error)  # the source as a whole is unusable, not one item of it
    out.converted = any(it.scope is None for it in items if it.error is None)
    if dialect == "cloud" and generator_table is None and out.converted:
        from .cloud import generator_table as cloud_table

        generator_table = cloud_table()
    to_records(items, dialect=dialect, symprec=symprec, workers=workers, progress=progress,
               generator_table=generator_table)
    for it in items:
        if it.error is None and it.scope:
            out.ids.append(it.id)
            out.strings.append(it.scope)
        else:
            out.failures.append((it.id, it.error or "empty SCOPE string"))
    return out


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
    params = {"stable": False} if "stable" in (getattr(spec, "params", None) or {}) else {}
    for sp in splits:
        got = spec.load(split=sp, **params)
        if isinstance(got, list):
            out.ids.extend(f"{name}:{sp}:{k}" for k in range(len(got)))
            out.strings.extend(got)
        else:
            out.ids.extend(f"{name}:{i}" for i in got.ids)
            out.strings.extend(got.scope)
    return out

