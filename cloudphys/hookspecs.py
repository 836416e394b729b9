"""Hook specifications of cloudphys plugins.

A plugin is a module (or object) with functions decorated by :data:`hookimpl` whose names match
the specifications below. Each hook receives a ``register`` callback and calls it once per thing it
provides, in the style of ``llm`` and ``datasette``::

    from cloudphys import hookimpl

    @hookimpl
    def register_heads(register):
        register(MyHead)

Plugins are found through the ``cloudphys`` entry-point group; built-in plugins are registered
through the same hooks (see :data:`cloudphys.plugins.DEFAULT_PLUGINS`).
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

__all__ = ["hookspec", "hookimpl", "register_heads", "register_encoders", "register_datasets", "register_commands"]

#: Marker for hook specifications (project name ``cloudphys``).
hookspec = pluggy.HookspecMarker("cloudphys")
#: Marker plugins use for their hook implementations.
hookimpl = pluggy.HookimplMarker("cloudphys")


@hookspec
def register_heads(register: Callable[[type], None]) -> None:
    """Register physics heads.

    :param register: call ``register(HeadClass)`` for each head. ``HeadClass`` must subclass
        :class:`cloudphys.physics.PhysicsHead` and declare ``name``, ``latents`` and
        ``observables``; it is instantiated later by :func:`cloudphys.load_head` with the
        keyword parameters of the user's config.
    """


@hookspec
def register_encoders(register: Callable[..., None]) -> None:
    """Register encoders (models mapping tokenized SCOPE strings to a latent vector).

    :param register: call ``register(name, factory)``; ``factory(**params)`` builds the
        encoder (import heavy modules inside the factory to keep plugin import cheap).
    """


@hookspec
def register_datasets(register: Callable[[Any], None]) -> None:
    """Register data sets.

    :param register: call ``register(spec)`` with a :class:`cloudphys.data.DatasetSpec`
        describing files, columns, units, licence, source and a loader.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add sub-commands to the ``cloudphys`` command line.

    :param cli: the ``argparse`` sub-parsers object; call ``cli.add_parser(name, ...)`` and set
        ``func`` with ``parser.set_defaults(func=callable)``; the callable receives the parsed
        ``argparse.Namespace`` and returns an exit status.
    """
