"""Keyword parameters of a callable, read from its signature: THE one place that does it.

Bottom layer (standard library only): :func:`cloudphys.data.base.signature_params` (a data set's
``params``) and :func:`cloudphys.config.plugin_params.param_schema` (the config's schema of a
registered plugin) both read parameters through :func:`keyword_params`.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Param", "keyword_params", "type_hints"]


@dataclass(frozen=True)
class Param:
    """One keyword parameter: its name, type hint (``Any`` if none) and default (``inspect.Parameter.empty``)."""

    name: str
    hint: Any = Any
    default: Any = inspect.Parameter.empty


def type_hints(fn: Any) -> dict[str, Any]:
    """``fn``'s resolved annotations with ``Annotated`` extras kept (``{}`` if they cannot be resolved)."""
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:
        return {}


def keyword_params(
    fn: Callable[..., Any] | None, skip: Iterable[str] = (), *, allow_var_keyword: bool = False
) -> dict[str, Param] | None:
    """The parameters of ``fn`` that can be passed by keyword, minus those named in ``skip``.

    :returns: ``None`` when ``fn`` is ``None`` or has no signature, or when it takes
        ``**kwargs`` (so accepts anything) and ``allow_var_keyword`` is false; with
        ``allow_var_keyword`` the ``**kwargs`` is passed over.
    """
    if fn is None:
        return None
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    skipped = set(skip)
    out: dict[str, Param] = {}
    hints: dict[str, Any] | None = None
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            if allow_var_keyword:
                continue
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skipped:
            if hints is None:
                hints = type_hints(fn)
            out[p.name] = Param(p.name, hints.get(p.name, Any), p.default)
    return out
