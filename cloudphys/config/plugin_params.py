"""The parameter schema of a registered plugin (encoder factory, head class, data set).

ONE function, :func:`param_schema`, says which keyword parameters a registered thing takes and
their type hints (bounds ride along as ``Annotated[T, Bound(...)]``); the config validates plugin
sections against it. It derives the schema from the thing's signature.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Param", "param_schema"]

Kind = Literal["encoder", "head", "data"]


@dataclass(frozen=True)
class Param:
    """One keyword parameter: its name, type hint (``Any`` if none) and default (``inspect.Parameter.empty``)."""

    name: str
    hint: Any = Any
    default: Any = inspect.Parameter.empty


def _signature_fn(kind: Kind, thing: Any) -> Callable[..., Any] | None:
    if kind == "encoder":
        src = getattr(thing, "signature_source", None)
        return src() if callable(src) else thing
    if kind == "head":
        return thing.__init__
    load = getattr(thing, "load", None)
    return load if callable(load) else None


def _hints(fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:
        return {}


def _from_signature(fn: Callable[..., Any] | None, skip: Iterable[str]) -> dict[str, Param] | None:
    """Keyword parameters of ``fn`` (``None``: it takes ``**kwargs`` or has no signature)."""
    if fn is None:
        return None
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    hints = _hints(fn)
    out: dict[str, Param] = {}
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self" and p.name not in skip:
            out[p.name] = Param(p.name, hints.get(p.name, Any), p.default)
    return out


def param_schema(kind: Kind, thing: Any) -> dict[str, Param] | None:
    """The keyword parameters a registered ``thing`` of ``kind`` takes, or ``None`` (anything).

    * encoder: the factory's signature (or its ``signature_source()``), minus ``latents`` and
      ``tokenizer`` (filled in by the model builder);
    * head: the class's ``__init__``;
    * data: the data set's ``load`` minus ``split``; a data set whose ``load`` takes ``**kwargs``
      declares its keys in ``spec.params`` (typed from ``load``'s annotations where it has them).
    """
    skip = {"encoder": ("latents", "tokenizer"), "head": (), "data": ("split",)}[kind]
    fn = _signature_fn(kind, thing)
    params = _from_signature(fn, skip)
    if kind != "data":
        return params
    declared = getattr(thing, "params", None)
    if not declared:
        return params
    hints = _hints(fn) if fn is not None else {}
    out = {k: Param(k, hints.get(k, Any), v) for k, v in declared.items()}
    out.update(params or {})
    return out
