"""cloudphys plugin ``phonon-dos``: a head whose latent is a coarse phonon density of states.

Registered through the ``cloudphys`` entry-point group (see ``pyproject.toml``); the head class
lives in :mod:`cloudphys_phonon_dos.head`, imported when the registry asks for it.
"""

from __future__ import annotations

from cloudphys import hookimpl

__all__ = ["register_heads"]
__version__ = "0.1.0"


@hookimpl
def register_heads(register):  # noqa: ANN001 - pluggy hook
    from .head import PhononDOSHead

    register(PhononDOSHead)
