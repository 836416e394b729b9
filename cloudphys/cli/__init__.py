"""The ``cloudphys`` command line.

Core commands are defined here, in ``cloudphys/cli/*_cmd.py``: each such module exposes
``add_commands(subparsers)`` and is listed in :func:`core_command_modules` (to add a core command,
add a module and list it there); they are added first. Plugins then *add* commands through the
``register_commands`` hook, called once per plugin through the plugin manager. A plugin may only
add: a command name (or alias) already taken by a core command or by another plugin is refused with
a warning on stderr naming the plugin, and the command that was there stays. A plugin whose hook
raises is reported on stderr and none of its commands is kept. Whatever plugins print while adding
commands goes to stderr, never to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import pluggy

from .. import __version__
from ..errors import CloudphysError

__all__ = ["main", "build_parser", "core_command_modules"]


def _core_modules() -> tuple[ModuleType, ...]:
    # Imported statically (never from a computed name); each module imports its heavy parts lazily.
    from . import data_cmd, models_cmd, plugins_cmd, predict_cmd, scope_cmd, train_cmd

    return (data_cmd, models_cmd, plugins_cmd, predict_cmd, scope_cmd, train_cmd)


def core_command_modules() -> list[str]:
    """Names of the modules that define the core commands (``cloudphys.cli.*_cmd``), in order."""
    return [m.__name__ for m in _core_modules()]


class _StagedCommands:
    """What one plugin's ``register_commands`` gets as ``cli``: a real sub-parsers object of its own.

    The plugin adds parsers to a private staging parser; :meth:`commit` then copies each accepted
    command onto the real sub-parsers (through argparse's public ``parents=``), so a plugin that
    raises half-way leaves nothing behind and a taken name is refused without touching the owner.
    """

    def __init__(self) -> None:
        self._staging = argparse.ArgumentParser(prog="cloudphys", add_help=False)
        self._sub = self._staging.add_subparsers(metavar="COMMAND")
        self._added: list[tuple[str, dict[str, Any], argparse.ArgumentParser]] = []

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser = self._sub.add_parser(name, **kwargs)
        self._added.append((name, dict(kwargs), parser))
        return parser

    def __getattr__(self, attr: str) -> Any:  # anything else a sub-parsers object offers
        return getattr(self._sub, attr)

    def commit(self, real: Any, owners: dict[str, str], plugin: str) -> list[str]:
        """Copy the staged commands onto ``real``; return one warning per refused command."""
        warnings = []
        for name, kwargs, staged in self._added:
            names = [name, *kwargs.get("aliases", ())]
            taken = [n for n in names if n in owners]
            if taken:
                owner = owners[taken[0]]
                kind = "core command" if owner == "core" else f"command of plugin {owner!r}"
                warnings.append(
                    f"warning: plugin {plugin!r} tried to replace the {kind} {taken[0]!r}; refused, "
                    f"the existing command stays"
                )
                continue
            kwargs = {k: v for k, v in kwargs.items() if k not in ("parents", "add_help", "prog")}
            real.add_parser(name, parents=[staged], add_help=False, **kwargs)
            for n in names:
                owners[n] = plugin
        return warnings


def build_parser(pm: pluggy.PluginManager | None = None) -> argparse.ArgumentParser:
    """The argument parser: the core commands, then those plugins of ``pm`` (default: global) add."""
    from ..plugins import call_per_plugin, get_plugin_manager

    parser = argparse.ArgumentParser(
        prog="cloudphys",
        description="Crystal symmetry strings (SCOPE) to thermodynamics through differentiable physics heads.",
    )
    parser.add_argument("--version", action="version", version=f"cloudphys {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _core_modules():
        module.add_commands(sub)
    owners = dict.fromkeys(sub.choices, "core")

    pm = pm or get_plugin_manager()
    stages: dict[str, _StagedCommands] = {}

    def kwargs_for(plugin: str) -> dict[str, Any]:
        stages[plugin] = _StagedCommands()
        return {"cli": stages[plugin]}

    with contextlib.redirect_stdout(sys.stderr):
        for plugin, exc in call_per_plugin(pm, "register_commands", kwargs_for):
            if exc is not None:
                print(f"warning: plugin {plugin!r} failed to add commands: {type(exc).__name__}: {exc}")
                continue
            for line in stages[plugin].commit(sub, owners, plugin):
                print(line)
    return parser


def main(argv: Sequence[str] | None = None, pm: pluggy.PluginManager | None = None) -> int:
    """Entry point of the ``cloudphys`` script; returns the exit status.

    A :class:`~cloudphys.errors.CloudphysError` is one ``error: ...`` line on stderr (status 1);
    Ctrl-C at any point, plugin loading included, is ``interrupted`` (status 130), no traceback.
    """
    try:
        parser = build_parser(pm)
        args = parser.parse_args(argv)
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return 2
        from .options import check_options

        check_options(args)
        return int(func(args) or 0)
    except CloudphysError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (``cloudphys models info X | head``): stop quietly, and keep
        # Python's flush at exit from raising again on the closed pipe.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
