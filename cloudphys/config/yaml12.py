"""A strict YAML loader: YAML 1.2 core-schema scalars and no repeated keys.

PyYAML implements YAML 1.1, whose implicit typing surprises config writers: ``010`` is octal 8,
``1:30`` is sexagesimal 90, ``yes``/``no``/``on``/``off`` are booleans, and a key given twice
silently replaces the first. :class:`StrictLoader` (a :class:`yaml.SafeLoader` subclass: python
tags stay refused) resolves plain scalars by the YAML 1.2 core schema instead (``010`` → 10,
``1:30`` / ``yes`` → strings, ``1e-3`` → a float) and refuses a repeated key at any level with a
:class:`~cloudphys.errors.ConfigError` naming the key and both lines. PyYAML's global resolvers
are never touched: the tables live on the subclass.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

import yaml

from ..errors import ConfigError

__all__ = ["DuplicateKeyError", "StrictDumper", "StrictLoader", "dump_yaml", "load_yaml", "one_line", "strict_load"]

# PyYAML's resolver calls ``regexp.match``: anchor both ends (``\Z``, not ``$``).
_INT = re.compile(r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z")
_FLOAT = re.compile(r"(?:[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.nan|\.NaN|\.NAN)\Z")
_BOOL = re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z")
_NULL = re.compile(r"(?:~|null|Null|NULL|)\Z")


class DuplicateKeyError(yaml.YAMLError):
    """A mapping gives one key twice (``key``, 1-based ``first`` and ``second`` lines)."""

    def __init__(self, key: Any, first: int, second: int, path: str) -> None:
        self.key, self.first, self.second, self.path = key, first, second, path
        where = f" in {path}" if path else ""
        super().__init__(
            f"key {key!r}{where} is given twice (lines {first} and {second}); keep one — "
            "a repeated key would silently replace the first"
        )


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 core-schema resolvers and duplicate-key detection."""

    # own tables (filled below): SafeLoader's and PyYAML's global ones stay as they are
    yaml_implicit_resolvers: ClassVar[dict[Any, list[Any]]] = {}
    yaml_constructors: ClassVar[dict[Any, Any]] = dict(yaml.SafeLoader.yaml_constructors)

    def construct_yaml_int(self, node: yaml.Node) -> int:
        text = str(self.construct_scalar(node))
        if text.startswith(("0o", "0x")):
            return int(text[2:], 8 if text[1] == "o" else 16)
        try:
            return int(text, 10)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(None, None, f"not an integer: {text!r}", node.start_mark) from exc

    def construct_yaml_float(self, node: yaml.Node) -> float:
        text = str(self.construct_scalar(node)).lower()
        if text.lstrip("+-") == ".inf":
            return -math.inf if text.startswith("-") else math.inf
        if text == ".nan":
            return math.nan
        try:
            return float(text)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(None, None, f"not a number: {text!r}", node.start_mark) from exc

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                line = seen.get(key)
            except TypeError:  # unhashable key: SafeConstructor reports it
                continue
            if line is not None:
                raise DuplicateKeyError(key, line, key_node.start_mark.line + 1, self._path(node))
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)

    def _path(self, node: yaml.Node) -> str:
        """The dotted key path of ``node`` from the document root ('' at the top)."""
        root = getattr(self, "_root", None)
        if root is None:
            return ""
        found = _find(root, node, [])
        return ".".join(found) if found else ""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        self._root = node
        return node


def _find(cur: yaml.Node, target: yaml.Node, path: list[str]) -> list[str] | None:
    if cur is target:
        return path
    if isinstance(cur, yaml.MappingNode):
        for k, v in cur.value:
            got = _find(v, target, [*path, str(getattr(k, "value", k))])
            if got is not None:
                return got
    elif isinstance(cur, yaml.SequenceNode):
        for i, v in enumerate(cur.value):
            got = _find(v, target, [*path[:-1], f"{path[-1]}[{i}]"] if path else [f"[{i}]"])
            if got is not None:
                return got
    return None


class StrictDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that also quotes strings YAML 1.2 would read as something else.

    SafeDumper quotes a string only if YAML 1.1 would resolve it to another type (``"yes"``,
    ``"010"``); ``"1e3"`` or ``"0o10"`` would go out plain and come back through
    :class:`StrictLoader` as numbers. With both tables every string round-trips.
    """

    yaml_implicit_resolvers: ClassVar[dict[Any, list[Any]]] = {
        k: list(v) for k, v in yaml.SafeDumper.yaml_implicit_resolvers.items()
    }


for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:bool", _BOOL, "tTfF"),
    ("tag:yaml.org,2002:int", _INT, "-+0123456789"),
    ("tag:yaml.org,2002:float", _FLOAT, "-+0123456789."),
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
):
    StrictLoader.add_implicit_resolver(_tag, _regexp, list(_first))
    StrictDumper.add_implicit_resolver(_tag, _regexp, list(_first))
StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml_float)


def strict_load(text: str) -> Any:
    """One YAML document parsed by :class:`StrictLoader` (raises ``yaml.YAMLError``).

    What ``yaml.load(text, Loader=StrictLoader)`` does, spelled out so that no generic
    ``yaml.load`` call appears in the package (the source audit refuses those).
    """
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def dump_yaml(data: Any) -> str:
    """YAML text of ``data`` that :func:`load_yaml` reads back unchanged (keys in order)."""
    return yaml.dump(data, Dumper=StrictDumper, sort_keys=False, allow_unicode=True)


def load_yaml(text: str, *, source: str = "config") -> Any:
    """Parse ``text`` with :class:`StrictLoader`.

    :raises ConfigError: a repeated key (naming it and both lines) or any YAML error, prefixed
        with ``source``.
    """
    try:
        return strict_load(text)
    except DuplicateKeyError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse {source}: {one_line(exc)}") from exc


def one_line(exc: yaml.YAMLError) -> str:
    """A YAML error as one line: what is wrong and where (line and column, 1-based)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        what = "; ".join(str(p) for p in (exc.context, exc.problem) if p)
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            what += f" (line {mark.line + 1}, column {mark.column + 1})"
        return what
    return " ".join(str(exc).split())
