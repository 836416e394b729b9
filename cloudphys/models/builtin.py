"""Built-in plugin: registers every model folder shipped inside :mod:`cloudphys.models` (cheap: reads JSON)."""

from __future__ import annotations

from typing import Callable

from ..hookspecs import hookimpl
from .registry import ModelSpec, shipped_folders, spec_from_folder


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    for folder in shipped_folders():
        register(spec_from_folder(folder))
