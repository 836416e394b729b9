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

from typing import Any

#: public name → the submodule defining it (imported on first use, so that ``cloudphys.inputs.limits``
#: -- e.g. the CLI's option definitions -- costs no numpy/spglib import)
_EXPORTS: dict[str, str] = {
    "ScopeCache": "cache", "cache_dir": "cache", "converter_fingerprint": "cache", "geometry_fingerprint": "cache",
    "convert_inputs": "convert", "item_geometry": "convert", "to_records": "convert",
    "LOOKED_FOR": "formats", "STRUCTURE_PREFIXES": "formats", "STRUCTURE_SUFFIXES": "formats",
    "DeferredStructure": "formats", "structure_kind": "formats",
    "ID_COLUMNS": "items", "STRING_COLUMNS": "items", "STRUCTURE_COLUMNS": "items", "InputItem": "items",
    "check_n_atoms": "items", "make_item": "items", "read_inputs": "items",
    "DEFAULT_LIMITS": "limits", "InputLimitError": "limits", "Limits": "limits", "add_limit_options": "limits",
    "as_limits": "limits", "limits_from_options": "limits",
    "plain_structure": "plain", "structure_from_plain": "plain",
    "MAX_JSON_DEPTH": "textio", "READ_ERRORS": "textio", "loads_json": "textio", "open_text": "textio",
    "read_error_reason": "textio", "read_text": "textio",
    "unreadable_message": "textio",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _module(_EXPORTS.get(name))
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def _module(name: str | None) -> Any:
    """The submodule ``name`` (static imports only: nothing is imported by a computed name)."""
    if name == "cache":
        from . import cache as m
    elif name == "convert":
        from . import convert as m
    elif name == "formats":
        from . import formats as m
    elif name == "items":
        from . import items as m
    elif name == "limits":
        from . import limits as m
    elif name == "plain":
        from . import plain as m
    elif name == "textio":
        from . import textio as m
    else:
        return None
    return m


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
