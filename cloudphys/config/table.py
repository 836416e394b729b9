"""The bounds table of docs/config.md, generated from the schema (``python -m cloudphys.config``).

One row per key: the fixed sections' dataclass fields and the built-in encoder's parameters, each
with its type, default and bound, so the documentation is the schema (a test keeps them equal).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import TYPE_CHECKING, Any

from .coerce import split_annotated, type_name
from .plugin_params import param_schema
from .schema import PretrainConfig, TrainConfig

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["bounds_markdown", "bounds_rows"]


def _default(value: Any) -> str:
    if value is inspect.Parameter.empty or value is dataclasses.MISSING:
        return "required"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value!r}" if isinstance(value, (list, dict)) else str(value)


def _allowed(hint: Any, bound: Any) -> str:
    base, _ = split_annotated(hint)
    if typing.get_origin(base) is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in typing.get_args(base))
    if bound is None:
        name = type_name(hint)
        return "a list of entries (see below)" if name == "a list of Any" else name
    if typing.get_origin(base) is dict:
        return f"a mapping to values {bound.text()}"
    if bound.pattern:  # a "|" inside a table cell must be escaped
        return bound.text().replace(f"matching {bound.pattern}", "`" + bound.pattern.replace("|", "\\|") + "`")
    return bound.text()


def bounds_rows(registry: PluginRegistry | None = None) -> list[tuple[str, str, str]]:
    """``(key, default, allowed)`` for every key of ``train``, ``pretrain`` and ``encoder`` (scope-bert)."""
    rows: list[tuple[str, str, str]] = []
    for cls, section in ((TrainConfig, "train"), (PretrainConfig, "pretrain")):
        hints = typing.get_type_hints(cls, include_extras=True)
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            rows.append((f"{section}.{f.name}", _default(default), _allowed(hints[f.name], f.metadata.get("bound"))))
    if registry is None:
        from ..plugins import get_registry

        registry = get_registry()
    schema = param_schema("encoder", registry.encoders["scope-bert"]) or {}
    for name, p in schema.items():
        rows.append((f"encoder.{name}", _default(p.default), _allowed(p.hint, split_annotated(p.hint)[1])))
    return rows


def bounds_markdown(registry: PluginRegistry | None = None) -> str:
    """The rows as a Markdown table."""
    lines = ["| key | default | allowed |", "|---|---|---|"]
    lines += [f"| `{k}` | {d} | {a} |" for k, d, a in bounds_rows(registry)]
    return "\n".join(lines)
