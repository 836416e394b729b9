"""A config section that names a plugin (``encoder:``, ``head:``, ``data:``): its name and parameters.

A module of its own so that :mod:`.schema` (which holds it in a :class:`~.schema.Config`) and
:mod:`.validate` (which builds it) both import it without importing each other.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PluginSection"]


@dataclass
class PluginSection:
    """A section that names a plugin: ``name`` plus its keyword ``params``."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **copy.deepcopy(self.params)}
