"""The installed cloudphys version (the one place it is read; ``pyproject.toml`` writes it).

A module of its own so that any layer may name the version without importing the package root
(whose lazy loaders sit above everything).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("cloudphys")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0+unknown"
