"""Built-in plugin registering the ``scope-bert`` encoder (imports torch lazily)."""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl
from .base import LazyFactory


def _build_scope_bert() -> Any:
    from .bert import build_scope_bert

    return build_scope_bert


#: ``scope-bert``: see :func:`cloudphys.encoders.bert.build_scope_bert` (its signature is the schema).
scope_bert = LazyFactory(_build_scope_bert, doc="BERT over SCOPE tokens + latent layer")


@hookimpl
def register_encoders(register):
    register("scope-bert", scope_bert)
