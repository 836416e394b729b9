"""The parameter schema of a registered plugin (encoder factory, head class, data set).

ONE function, :func:`param_schema`, says which keyword parameters a registered thing takes and
their type hints (bounds ride along as ``Annotated[T, Bound(...)]``); the config validates plugin
sections against it. It derives the schema from the thing's signature through
:func:`cloudphys.params.keyword_params` (shared with :func:`cloudphys.data.base.signature_params`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from ..params import Param, keyword_params, type_hints

__all__ = ["Param", "param_schema"]

Kind = Literal["encoder", "head", "data"]


def _signature_fn(kind: Kind, thing: Any) -> Callable[..., Any] | None:
    if kind == "encoder":  # a plain factory or a LazyFactory (which reports its implementation's signature)
        return thing
    if kind == "head":
        return thing.__init__
    load = getattr(thing, "load", None)
    return load if callable(load) else None


def param_schema(kind: Kind, thing: Any) -> dict[str, Param] | None:
    """The keyword parameters a registered ``thing`` of ``kind`` takes, or ``None`` (anything).

    * encoder: the factory's signature (a :class:`~cloudphys.encoders.base.LazyFactory` reports its
      implementation's), minus ``latents`` and
      ``tokenizer`` (filled in by the model builder);
    * head: the class's ``__init__``;
    * data: the data set's ``load`` minus ``split``; a data set whose ``load`` takes ``**kwargs``
      declares its keys in ``spec.params`` (typed from ``load``'s annotations where it has them).
    """
    skip = {"encoder": ("latents", "tokenizer"), "head": (), "data": ("split",)}[kind]
    fn = _signature_fn(kind, thing)
    params = keyword_params(fn, ("self", *skip))
    if kind != "data":
        return params
    declared = getattr(thing, "params", None)
    if not declared:
        return params
    hints = type_hints(fn) if fn is not None else {}
    out = {k: Param(k, hints.get(k, Any), v) for k, v in declared.items()}
    out.update(params or {})
    return out
