"""One coercion function driven by type hints: a raw config value → the declared type.

Used for the fixed sections (dataclass field types) and for plugin parameters (the annotations of
the plugin's signature) alike. It understands ``bool``, ``int``, ``float``, ``str``, ``Literal``,
``X | None``, unions, ``list[X]`` / ``Sequence[X]`` / ``tuple[X, ...]``, ``dict[K, V]`` /
``Mapping[K, V]`` and ``Annotated[X, Bound(...)]``; anything else passes through unchanged.
"""

from __future__ import annotations

import collections.abc
import math
import types
import typing
from typing import Any, Literal

from ..bounds import Bound, check_bound, show
from ..errors import ConfigError

__all__ = ["coerce", "split_annotated", "type_name"]

_UNION_TYPES = (typing.Union, getattr(types, "UnionType", typing.Union))
_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.MutableSequence, collections.abc.Iterable)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def split_annotated(hint: Any) -> tuple[Any, Bound | None]:
    """``Annotated[int, Bound(ge=1)]`` → ``(int, Bound(ge=1))``; other hints → ``(hint, None)``.

    In a union (``Annotated[int, Bound(ge=1)] | None``) the hint is kept and the bound returned.
    """
    if typing.get_origin(hint) is typing.Annotated:
        base, *extra = typing.get_args(hint)
        bound = next((e for e in extra if isinstance(e, Bound)), None)
        return base, bound
    if typing.get_origin(hint) in _UNION_TYPES:  # Annotated[int, Bound(...)] | None: the bound of the int
        for arg in typing.get_args(hint):
            _, bound = split_annotated(arg)
            if bound is not None:
                return hint, bound
    return hint, None


def type_name(hint: Any) -> str:
    """A short readable name of a hint (``integer``, ``list of number``, ``one of a, b``)."""
    hint, _ = split_annotated(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in _UNION_TYPES:
        return " or ".join(type_name(a) if a is not type(None) else "null" for a in args)
    if origin in _SEQUENCES:
        return "a list" + (f" of {type_name(args[0])}" if args and args[0] is not Ellipsis else "")
    if origin in _MAPPINGS:
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def _number(value: Any) -> Any:
    """A string that reads as a number (``"1e-3"``, ``"64"``) → the number; others unchanged."""
    if isinstance(value, str):
        for conv in (int, float):
            try:
                return conv(value.strip())
            except ValueError:
                pass
    return value


def coerce(what: str, value: Any, hint: Any) -> Any:
    """``value`` of key ``what`` as type ``hint``.

    Numbers given as strings are read as numbers, integral floats become ints where an int is
    declared, an int becomes a float where a float is declared, a bool becomes ``"true"`` /
    ``"false"`` where a string is declared; everything else that does not fit is refused.

    :raises ConfigError: ``"{what} must be {type}, got {show(value)}"``.
    """
    if typing.get_origin(hint) is typing.Annotated:  # the value, then its bound (items of lists too)
        base, bound = split_annotated(hint)
        value = coerce(what, value, base)
        check_bound(what, value, bound)
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return value
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"{what} must be null, got {show(value)}")
    if origin in _UNION_TYPES:
        if value is None and type(None) in args:
            return None
        first: ConfigError | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(what, value, arg)
            except ConfigError as exc:
                first = first or exc
        if len([a for a in args if a is not type(None)]) == 1 and first is not None:
            raise first
        raise ConfigError(f"{what} must be {type_name(hint)}, got {show(value)}")
    if origin is Literal:
        if isinstance(value, bool) and str(value).lower() in args:
            return str(value).lower()
        if value in args and not isinstance(value, bool):
            return value
        raise ConfigError(f"{what}: unknown value {show(value)}; valid: {', '.join(map(str, args))}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        yaml11 = isinstance(value, str) and value.lower() in ("yes", "no", "on", "off", "y", "n")
        tail = " (yes/no/on/off are strings in YAML 1.2: write true or false)" if yaml11 else ""
        raise ConfigError(f"{what} must be true or false, got {show(value)}{tail}")
    if hint is int:
        value = _number(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{what} must be an integer, got {show(value)}")
    if hint is float:
        value = _number(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isnan(value):
                raise ConfigError(f"{what} must be a number, got NaN")
            if not math.isfinite(value):
                raise ConfigError(f"{what} must be a finite number, got {show(value)}")
            return float(value)
        raise ConfigError(f"{what} must be a number, got {show(value)}")
    if hint is str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (str, int, float)):
            return str(value)
        raise ConfigError(f"{what} must be a string, got {show(value)}")
    if origin in _SEQUENCES or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{what} must be {type_name(hint)}, got {show(value)}")
        if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"{what} must be a list of {len(args)} items, got {show(value)}")
            return [coerce(f"{what}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args))]
        item = args[0] if args else Any
        return [coerce(f"{what}[{i}]", v, item) for i, v in enumerate(value)]
    if origin in _MAPPINGS or hint is dict:
        if not isinstance(value, collections.abc.Mapping):
            raise ConfigError(f"{what} must be a mapping, got {show(value)}")
        key_t, val_t = args if len(args) == 2 else (Any, Any)
        bad = [k for k in value if key_t is str and not isinstance(k, str)]
        if bad:
            raise ConfigError(f"{what}: keys must be strings, got {bad[0]!r}")
        return {coerce(f"{what} key", k, key_t): coerce(f"{what}.{k}", v, val_t) for k, v in value.items()}
    return value
