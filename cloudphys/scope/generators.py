"""CLOUD's generator table and the symmetry section of SCOPE strings.

:func:`load_generator_table` is *the* loader of CLOUD's ``data/generator.json`` in cloudphys (the
data sets, the converter and prediction call it): files are read and validated once per
``(path, modification time)``; a :class:`GeneratorTable` passed back in is returned as is.
:func:`symmetry_tokens` gives the symmetry section of a space group in either dialect.

This module sits below :mod:`cloudphys.scope.record` (which renders) and
:mod:`cloudphys.scope.dialects` (which parses), so neither imports the other's functions back.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ScopeError
from . import _grammar as G

__all__ = ["DIALECTS", "GENERATOR_TABLE_ENV", "GeneratorTable", "load_generator_table", "symmetry_tokens"]

#: Names of the dialects :meth:`ScopeRecord.render` writes and :func:`cloudphys.scope.parse` reads.
DIALECTS: tuple[str, ...] = ("default", "cloud")

#: Environment variable naming CLOUD's ``generator.json`` when no table is passed.
GENERATOR_TABLE_ENV = "CLOUDPHYS_GENERATOR_TABLE"


class GeneratorTable(Mapping[int, tuple[str, ...]]):
    """A validated generator table: space-group number → generator tokens (one character each)."""

    __slots__ = ("_data", "source")

    def __init__(self, data: Mapping[int, tuple[str, ...]], source: str) -> None:
        self._data = dict(data)
        self.source = source

    def __getitem__(self, key: int) -> tuple[str, ...]:
        return self._data[key]

    def __iter__(self) -> Iterator[int]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"GeneratorTable({len(self)} groups from {self.source})"

    def as_json(self) -> dict[str, str]:
        """The table as CLOUD writes it (``{"225": "16aODD..."}``)."""
        return {str(k): "".join(v) for k, v in self._data.items()}


def _validate_table(raw: Mapping[Any, Any], source: str) -> GeneratorTable:
    table: dict[int, tuple[str, ...]] = {}
    for key, value in raw.items():
        try:
            number = int(key)
        except (TypeError, ValueError):
            raise ScopeError(f"generator table {source}: key {key!r} is not a space-group number") from None
        if not 1 <= number <= 230:
            raise ScopeError(f"generator table {source}: key {key!r} is not in 1..230")
        if isinstance(value, (tuple, list)) and all(isinstance(c, str) for c in value):
            value = "".join(value)
        if not isinstance(value, str) or G.GENERATOR_RE.fullmatch(value.replace(" ", "")) is None:
            raise ScopeError(f"generator table {source}: entry {key!r} = {value!r} is not a generator string")
        table[number] = tuple(value.replace(" ", ""))
    return GeneratorTable(table, source)


_MAX_TABLE_BYTES = 16 * 1024 * 1024


@lru_cache(maxsize=8)
def _load_table_file(path: str, digest: str, data: bytes) -> GeneratorTable:
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ScopeError(f"cannot read the generator table {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ScopeError(f"generator table {path}: expected a JSON object space-group number → string")
    return _validate_table(raw, path)


def load_generator_table(source: str | os.PathLike[str] | Mapping[Any, str] | None = None) -> GeneratorTable:
    """CLOUD's generator table as space-group number → generator tokens.

    :param source: a path to CLOUD's ``data/generator.json``, a mapping number → string (validated
        once; pass the returned :class:`GeneratorTable` on to avoid re-validation), or ``None`` for
        ``$CLOUDPHYS_GENERATOR_TABLE``. cloudphys does not ship the table.
    """
    if isinstance(source, GeneratorTable):
        return source
    if source is None:
        env = os.environ.get(GENERATOR_TABLE_ENV)
        if not env:
            raise ScopeError(
                "the cloud dialect needs CLOUD's generator table (data/generator.json in the GitHub "
                f"repository ChangwenXu98/CLOUD): pass generator_table=PATH (CLI: --generator-table) "
                f"or set {GENERATOR_TABLE_ENV}"
            )
        source = env
    if isinstance(source, Mapping):
        return _validate_table(source, "(mapping)")
    path = Path(source).expanduser()
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_TABLE_BYTES + 1)
    except OSError as exc:
        raise ScopeError(f"cannot read the generator table {path}: {exc}") from exc
    if len(data) > _MAX_TABLE_BYTES:
        raise ScopeError(f"generator table {path}: larger than {_MAX_TABLE_BYTES:,} bytes; CLOUD's table is ~10 KB")
    # cached per file and content (SHA-256 of the bytes, never the modification time: a table replaced
    # by `cp -p` or unzip is read again)
    return _load_table_file(str(path.resolve()), hashlib.sha256(data).hexdigest(), data)


def symmetry_tokens(
    number: int, dialect: str = "default", generator_table: str | os.PathLike[str] | Mapping[Any, str] | None = None
) -> tuple[str, ...]:
    """Tokens of the symmetry section of space group ``number`` in ``dialect``."""
    if dialect == "default":
        return G.hall_tokens(number)
    if dialect == "cloud":
        table = load_generator_table(generator_table)
        try:
            return table[number]
        except KeyError:
            raise ScopeError(f"the generator table has no entry for space group {number}") from None
    raise ScopeError(f"unknown SCOPE dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
