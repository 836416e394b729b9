"""Validation: unknown keys, typed sections, bounds, plugin sections, pretraining sources.

Every check raises a one-line :class:`~cloudphys.errors.ConfigError` naming the key, the value
and the valid choices or the remedy, before any work starts.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..bounds import check_bound
from ..errors import ConfigError
from .coerce import coerce, split_annotated
from .plugin_params import Kind, param_schema
from .section import PluginSection

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["build_section", "check_fields", "check_source", "plugin_section", "unknown_keys"]


def unknown_keys(what: str, keys: Iterable[Any], valid: Iterable[str]) -> None:
    """Refuse keys not in ``valid`` (the message lists the valid ones)."""
    valid = sorted(valid)
    bad = [k for k in keys if k not in valid]
    if bad:
        raise ConfigError(
            f"unknown key{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))} in {what}; valid: {', '.join(valid)}"
        )


def build_section(cls: type, what: str, raw: Any) -> Any:
    """Dataclass ``cls`` from the mapping ``raw``: unknown keys refused, values coerced to the field types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"section {what!r} must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown_keys(f"section {what!r}", raw, fields)
    hints = typing.get_type_hints(cls, include_extras=True)
    return cls(**{key: coerce(f"{what}.{key}", value, hints[key]) for key, value in raw.items()})


def check_fields(obj: Any, what: str) -> None:
    """Check every field of dataclass ``obj``: its type (:func:`~.coerce.coerce`) and the
    :class:`~.bounds.Bound` in its metadata (so an object built in Python is checked too)."""
    hints = typing.get_type_hints(type(obj), include_extras=True)
    values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    for f in dataclasses.fields(obj):
        coerce(f"{what}.{f.name}", values[f.name], hints[f.name])
        check_bound(f"{what}.{f.name}", values[f.name], f.metadata.get("bound"), values)


def plugin_section(kind: Kind, raw: Any, table: Mapping[str, Any]) -> Any:
    """A :class:`~.section.PluginSection` for section ``kind`` naming one of ``table``'s plugins.

    Parameters are checked against the plugin's :func:`~.plugin_params.param_schema`: unknown
    keys refused, values coerced to the annotated types and checked against annotated bounds.
    """
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"section {kind!r} must be a mapping with a 'name', got {raw!r}")
    if "name" not in raw:
        raise ConfigError(f"section {kind!r} needs 'name'; available: {', '.join(sorted(table)) or 'none'}")
    name = raw["name"]
    if not isinstance(name, str) or name not in table:
        raise ConfigError(f"unknown {kind} {name!r}; available: {', '.join(sorted(table)) or 'none'}")
    params = {k: v for k, v in raw.items() if k != "name"}
    bad_keys = [k for k in params if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError(f"{kind} {name!r}: keys must be strings, got {bad_keys[0]!r}")
    schema = param_schema(kind, table[name])
    if schema is not None:
        unknown_keys(f"{kind} {name!r}", params, set(schema) | {"name"})
        for key, value in list(params.items()):
            if key in schema:  # the type, and the bound annotated on it
                params[key] = coerce(f"{kind}.{key}", value, schema[key].hint)
        # bounds relating two parameters (num_heads divides hidden_size): given or default values
        siblings = {k: p.default for k, p in schema.items()} | params
        for key, p in schema.items():
            bound = split_annotated(p.hint)[1]
            if bound is not None and bound.divides and (key in params or bound.divides in params):
                check_bound(f"{kind}.{key}", siblings[key], bound, siblings)
    return PluginSection(str(name), copy.deepcopy(params))


def check_source(what: str, src: Any, registry: PluginRegistry | None = None, *,
                 file_keys: tuple[str, ...] = ("path", "column")) -> str:
    """Check one ``pretrain.sources`` / ``exclude`` entry; return its kind, ``"dataset"`` or ``"file"``.

    ``{name: DATASET, ...}`` is a data set: every other key (``path`` included) is ``split`` or
    one of its parameters. ``{path: FILE, column: COL}`` (no ``name``) is a file. With
    ``registry``, a data set entry is also checked against the data set: its name, its split,
    its parameters (``path`` only where the data set takes one).

    :raises ConfigError: naming the entry and what is wrong with it.
    """
    if not isinstance(src, Mapping):
        raise ConfigError(f"{what} must be a mapping, {{name: DATASET, split: ..., **params}} or "
                          f"{{path: FILE, column: COL}}; got {src!r}")
    bad = [k for k in src if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{what}: keys must be strings, got {bad[0]!r}")
    if "name" not in src:
        if "path" not in src:
            raise ConfigError(f"{what} needs 'name' (a data set) or 'path' (a file of strings); got {src!r}")
        extra = sorted(k for k in src if k not in file_keys)
        if extra:
            raise ConfigError(
                f"{what}: a file entry (no 'name') takes only {', '.join(file_keys)}, got {extra}; for a "
                f"data set with parameters write {{name: DATASET, path: ..., ...}} (e.g. name: corpus-csv)"
            )
        for key in file_keys:
            if key in src and src[key] is not None and not isinstance(src[key], str):
                raise ConfigError(f"{what}.{key} must be a string, got {src[key]!r}")
        if not src["path"]:
            raise ConfigError(f"{what}.path must be a file, got {src['path']!r}")
        return "file"
    name = src["name"]
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what}.name must be a data set name, got {name!r}")
    if "split" in src and not isinstance(src["split"], str):
        raise ConfigError(f"{what}.split must be a string, got {src['split']!r}")
    if "path" in src and (not isinstance(src["path"], str) or not src["path"]):
        raise ConfigError(f"{what}.path must be a file path (a string), got {src['path']!r}")
    if registry is None:
        return "dataset"
    if name not in registry.datasets:
        hint = " (for a file of strings, leave out 'name': {path: FILE})" if "path" in src else ""
        raise ConfigError(f"{what}: unknown data set {name!r}; available: "
                          f"{', '.join(sorted(registry.datasets)) or 'none'}{hint}")
    spec = registry.datasets[name]
    split = src.get("split", "train")
    splits = tuple(getattr(spec, "splits", ()) or ())
    if splits and split not in splits:
        raise ConfigError(f"{what}: data set {name!r} has no split {split!r}; available: {', '.join(splits)}")
    params = [k for k in src if k not in ("name", "split")]
    schema = param_schema("data", spec)
    if schema is not None:
        if "path" in params and "path" not in schema:
            with_path = sorted(n for n, s in registry.datasets.items() if "path" in (param_schema("data", s) or ()))
            raise ConfigError(
                f"{what}: data set {name!r} takes no 'path' parameter, so {{name: {name}, path: ...}} is "
                f"ambiguous; for a file of strings leave out 'name' ({{path: FILE, column: COL}}), or name a "
                f"data set that reads a file ({', '.join(with_path) or 'none'})"
            )
        unknown_keys(f"{what} (data set {name!r})", params, set(schema) | {"name", "split"})
        for key in params:
            coerce(f"{what}.{key}", src[key], schema[key].hint)
    return "dataset"
