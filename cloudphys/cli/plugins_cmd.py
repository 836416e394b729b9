"""``cloudphys plugins``: list plugins, their distributions and what they register."""

from __future__ import annotations

import argparse
from typing import Any

from .checks import dumps_json


def run(args: argparse.Namespace) -> int:
    from ..plugins import REGISTRY_HOOKS, get_registry

    reg = get_registry()
    infos = [info.as_dict() for info in reg.plugins.values()]
    errors = [{"plugin": e.plugin, "distribution": e.distribution, "error": e.error} for e in reg.errors]
    if args.json:
        print(dumps_json({"plugins": infos, "errors": errors}, indent=2))
        return 0
    for info in infos:
        dist = info["distribution"] or "?"
        version = info["version"] or "?"
        tag = " (built-in)" if info["builtin"] else ""
        print(f"{info['name']}  [{dist} {version}]{tag}")
        for kind in REGISTRY_HOOKS:
            if info[kind]:
                print(f"    {kind}: {', '.join(info[kind])}")
        other = [h for h in info["hooks"] if h not in REGISTRY_HOOKS.values()]
        if other:
            print(f"    hooks: {', '.join(other)}")
    for err in errors:
        dist = f" ({err['distribution']})" if err["distribution"] else ""
        print(f"FAILED {err['plugin']}{dist}: {err['error']}")
    return 0


def add_commands(subparsers: Any) -> None:
    """Add this module's core commands to ``subparsers`` (an argparse sub-parsers object)."""
    p = subparsers.add_parser("plugins", help="list installed plugins and what they register")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
