"""cloudphys plugin ``einstein``: the Einstein head and the Debye+Einstein head.

Registered through the ``cloudphys`` entry-point group (see ``pyproject.toml``); the head classes
live in :mod:`cloudphys_einstein.heads`, imported when the registry asks for them so that loading
the plugin stays cheap.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Callable

from cloudphys import hookimpl

__all__ = ["register_heads"]
try:  # written once, in pyproject.toml
    __version__ = version("cloudphys-einstein")
except PackageNotFoundError:  # pragma: no cover - source tree, not installed
    __version__ = "0+unknown"


@hookimpl
def register_heads(register: Callable[[type], None]) -> None:
    from .heads import DebyeEinsteinHead, EinsteinHead

    register(EinsteinHead)
    register(DebyeEinsteinHead)
