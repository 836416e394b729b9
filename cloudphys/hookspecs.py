"""Hook specifications of cloudphys plugins.

A plugin is a module (or object) with functions decorated by :data:`hookimpl` whose names match
the specifications below. Each hook receives a ``register`` callback and calls it once per thing it
provides, in the style of ``llm`` and ``datasette``::

    from cloudphys import hookimpl

    @hookimpl
    def register_heads(register):
        register(MyHead)

Plugins are found through the ``cloudphys`` entry-point group; built-in plugins are registered
through the same hooks (see :data:`cloudphys.plugins.DEFAULT_PLUGINS`). cloudphys calls each hook
through the plugin manager, once per plugin, so one failing plugin is reported and skipped.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

__all__ = [
    "hookspec",
    "hookimpl",
    "register_heads",
    "register_encoders",
    "register_datasets",
    "register_models",
    "register_commands",
]

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
def register_models(register: Callable[[Any], None]) -> None:
    """Register pretrained models users can load by name (``cloudphys.load_model(name)``).

    :param register: call ``register(spec)`` once per model; ``spec`` has a non-empty ``name``
        (str) and what :mod:`cloudphys.models` needs to fetch and load it (files with SHA-256,
        description, licence); if it has a ``validate()`` method it is called at registration.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add sub-commands to the ``cloudphys`` command line (plugins only *add* commands).

    :param cli: an ``argparse`` sub-parsers object; call ``cli.add_parser(name, ...)`` and set
        ``func`` with ``parser.set_defaults(func=callable)``; the callable receives the parsed
        ``argparse.Namespace`` and returns an exit status. Core commands (``train``, ``predict``,
        ``scope``, ``data``, ``plugins``...) are defined in :mod:`cloudphys.cli` and cannot be
        replaced: a name already taken (by a core command or an earlier plugin) is refused with a
        warning naming the plugin, and the existing command stays.
    """
