"""``heads:`` -- several heads on one encoder: each entry checked as a ``head:`` section is.

:func:`checked_heads` is used by the config loader and at model load (``head.json`` of the head
list ``multi``, :mod:`cloudphys.modeling.checks`), so that every entry of a head list is held to its
head's config schema and bounds exactly as a single head is.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..physics.multi import head_entries
from .validate import plugin_section

__all__ = ["checked_heads"]


def checked_heads(heads: Any, table: Any) -> list[dict[str, Any]]:
    """The entries of ``heads:`` with their parameters coerced and checked against the schema of the
    head each names (``table``: registered heads); :class:`ConfigError` naming the entry otherwise."""
    out = []
    for i, (name, params, weight) in enumerate(head_entries(heads)):
        try:
            section = plugin_section("head", {"name": name, **params}, table)
        except ConfigError as exc:
            raise ConfigError(f"heads[{i}]: {exc}") from None
        out.append({"name": section.name, **section.params, "weight": weight})
    return out
