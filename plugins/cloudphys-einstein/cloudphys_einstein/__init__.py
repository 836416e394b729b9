"""cloudphys plugin ``einstein``: the Einstein head and the Debye+Einstein head.

Registered through the ``cloudphys`` entry-point group (see ``pyproject.toml``); the head classes
live in :mod:`cloudphys_einstein.heads`, imported when the registry asks for them so that loading
the plugin stays cheap.
"""

from __future__ import annotations

from cloudphys import hookimpl

__all__ = ["register_heads"]
__version__ = "0.1.0"


@hookimpl
def register_heads(register):  # noqa: ANN001 - pluggy hook
    from .heads import DebyeEinsteinHead, EinsteinHead

    register(EinsteinHead)
    register(DebyeEinsteinHead)
