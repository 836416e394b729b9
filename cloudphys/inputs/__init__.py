"""The one path from user input to SCOPE records.

::

    from cloudphys.inputs import read_inputs, to_records
    items = read_inputs(["cifs/", "rows.jsonl.gz", "table.csv", structure, "P 1 | 1a | Si 1"])
    to_records(items, dialect="default", workers=2)
    for it in items:
        print(it.id, it.scope if it.ok else it.error)

:func:`read_inputs` reads files, folders, tables and objects into :class:`InputItem` (never
dropping one, order kept, per-item :class:`Limits`); :func:`to_records` converts them (cached,
optionally in worker processes). ``cloudphys scope``, prediction, the data sets and the
pretraining corpus all read their inputs here. Data never runs code: see :mod:`.plain`.
"""

from __future__ import annotations

from .cache import ScopeCache, cache_dir, converter_fingerprint
from .convert import convert_inputs, to_records
from .formats import (
    LOOKED_FOR,
    STRUCTURE_PREFIXES,
    STRUCTURE_SUFFIXES,
    DeferredStructure,
    structure_kind,
)
from .items import (
    ID_COLUMNS,
    STRING_COLUMNS,
    STRUCTURE_COLUMNS,
    InputItem,
    check_n_atoms,
    make_item,
    read_inputs,
)
from .limits import DEFAULT_LIMITS, InputLimitError, Limits, as_limits
from .plain import plain_structure, structure_from_plain
from .textio import (
    READ_ERRORS,
    open_text,
    read_error_reason,
    read_text,
    unreadable_message,
)

__all__ = [
    "DEFAULT_LIMITS",
    "ID_COLUMNS",
    "LOOKED_FOR",
    "READ_ERRORS",
    "STRING_COLUMNS",
    "STRUCTURE_COLUMNS",
    "STRUCTURE_PREFIXES",
    "STRUCTURE_SUFFIXES",
    "DeferredStructure",
    "InputItem",
    "InputLimitError",
    "Limits",
    "ScopeCache",
    "as_limits",
    "cache_dir",
    "check_n_atoms",
    "convert_inputs",
    "converter_fingerprint",
    "make_item",
    "open_text",
    "plain_structure",
    "read_error_reason",
    "read_inputs",
    "read_text",
    "structure_from_plain",
    "structure_kind",
    "to_records",
    "unreadable_message",
]
