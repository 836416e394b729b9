"""Built-in plugin registering the ``scope-bert`` encoder (imports torch lazily)."""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl


def scope_bert(**params: Any) -> Any:
    """Build the ``scope-bert`` encoder; see :func:`cloudphys.encoders.bert.build_scope_bert`."""
    from .bert import build_scope_bert

    return build_scope_bert(**params)


def _signature_source() -> Any:
    from .bert import build_scope_bert

    return build_scope_bert


scope_bert.signature_source = _signature_source  # type: ignore[attr-defined]


@hookimpl
def register_encoders(register):
    register("scope-bert", scope_bert)
