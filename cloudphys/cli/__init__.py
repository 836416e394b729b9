"""The ``cloudphys`` command line. Sub-commands arrive through the ``register_commands`` hook."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import pluggy

from .. import __version__
from ..errors import CloudphysError

__all__ = ["main", "build_parser"]


def build_parser(pm: "pluggy.PluginManager | None" = None) -> argparse.ArgumentParser:
    """The argument parser with the sub-commands of every plugin of ``pm`` (default: global)."""
    from ..plugins import get_plugin_manager

    parser = argparse.ArgumentParser(
        prog="cloudphys",
        description="Crystal symmetry strings (SCOPE) to thermodynamics through differentiable physics heads.",
    )
    parser.add_argument("--version", action="version", version=f"cloudphys {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    pm = pm or get_plugin_manager()
    for impl in pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=sub)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the CLI
            print(f"warning: plugin {impl.plugin_name!r} failed to add commands: {exc}", file=sys.stderr)
    return parser


def main(argv: Sequence[str] | None = None, pm: "pluggy.PluginManager | None" = None) -> int:
    """Entry point of the ``cloudphys`` script; returns the exit status."""
    parser = build_parser(pm)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except CloudphysError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
