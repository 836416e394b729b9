"""cloudphys plugin ``stability``: P(dynamically unstable) from the encoder's latents.

Registered through the ``cloudphys`` entry-point group (see ``pyproject.toml``); the head class
lives in :mod:`cloudphys_stability.head`, imported when the registry asks for it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Callable

from cloudphys import hookimpl

__all__ = ["register_heads"]
try:  # written once, in pyproject.toml
    __version__ = version("cloudphys-stability")
except PackageNotFoundError:  # pragma: no cover - source tree, not installed
    __version__ = "0+unknown"


@hookimpl
def register_heads(register: Callable[[type], None]) -> None:
    from .head import StabilityHead

    register(StabilityHead)
