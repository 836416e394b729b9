"""Strings kept out of training: ``train.exclude`` and ``pretrain.exclude`` (the leakage rule).

An entry names a registered data set (``{name: cloud-cv, split: test, ...}``, its parameters
included) or, without ``name``, a file (``{path: FILE, column: COL}``: a CSV's ``scope``/``cloud``
column or a text file of one string a line). A training string is excluded when its **canonical**
SCOPE string (:func:`cloudphys.scope.canonical_text` in the default dialect: the same for every
description of one crystal, in either dialect) equals that of an excluded string -- so a
phonondb structure converted to the ``cloud`` dialect and a CLOUD test string written by
CLOUD's converter are compared as crystals, not as bytes. A string that does not parse is
compared as written.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import PretrainConfig
from ..data.base import Examples
from ..data.shards import leakage_key
from ..errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["drop_excluded", "entry_strings", "excluded_keys", "keep_mask", "leakage_key"]


def entry_strings(entry: Mapping[str, Any], registry: PluginRegistry, what: str = "source") -> list[str]:
    """The SCOPE strings of one ``sources`` / ``exclude`` entry (see the module docstring)."""
    kind = PretrainConfig.check_source(what, entry, registry)
    entry = dict(entry)
    if kind == "file":
        path = Path(entry.pop("path")).expanduser()
        column = entry.pop("column", None)
        if not path.is_file():
            raise DataError(f"{what}: file {path} not found")
        if path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                cols = reader.fieldnames or []
                col = column or next((c for c in ("scope", "cloud") if c in cols), None)
                if col not in cols:
                    raise DataError(f"{what} {path}: no column {col or 'scope/cloud'!r}; columns: {cols}")
                return [row[col].strip() for row in reader if row[col].strip()]
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    name = entry.pop("name")
    split = entry.pop("split", "train")
    spec = registry.dataset(name)
    if split not in spec.splits:
        raise ConfigError(f"{what} {name!r}: no split {split!r}; available: {', '.join(spec.splits)}")
    out = spec.load(split=split, **entry)
    return list(out.scope) if isinstance(out, Examples) else [str(s) for s in out]


def excluded_keys(entries: Sequence[Mapping[str, Any]], registry: PluginRegistry, section: str) -> set[str]:
    """The leakage keys of every string of ``entries`` (``section``: ``train`` or ``pretrain``, for messages)."""
    keys: set[str] = set()
    for i, entry in enumerate(entries):
        keys.update(leakage_key(s) for s in entry_strings(entry, registry, f"{section}.exclude[{i}]"))
    return keys


def keep_mask(strings: Iterable[str], keys: set[str]) -> np.ndarray:
    """``True`` for each string whose leakage key is not in ``keys``."""
    return np.array([leakage_key(s) not in keys for s in strings], dtype=bool)


def drop_excluded(ex: Examples, keys: set[str]) -> tuple[Examples, list[str]]:
    """``ex`` without the examples whose crystal is in ``keys``; also the ids that were removed."""
    from .batching import take

    if not keys or not len(ex):
        return ex, []
    keep = keep_mask(ex.scope, keys)
    removed = [i for i, k in zip(ex.ids, keep) if not k]
    if not removed:
        return ex, []
    return take(ex, np.flatnonzero(keep)), removed
