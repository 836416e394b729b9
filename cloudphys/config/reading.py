"""Reading configs: YAML/TOML/JSON files and ``section.key=value`` overrides.

YAML (files and override values) is read by :class:`~.yaml12.StrictLoader` (YAML 1.2 core
schema, repeated keys refused); TOML's parser refuses repeated keys itself; JSON objects with a
repeated key are refused here.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .yaml12 import DuplicateKeyError, load_yaml, one_line, strict_load

__all__ = ["apply_overrides", "parse_override", "read_config_file"]


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``), TOML (``.toml``) or JSON file into a dict.

    :raises ConfigError: the file is missing, a folder, unreadable, not UTF-8, unparsable or not a
        mapping; the message names the file and the reason.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"cannot read config {path}: it is a folder, not a config file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"cannot read config {path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start} "
            "cannot be decoded); save it as UTF-8"
        ) from exc
    except OSError as exc:  # permission denied, I/O error, ...
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        if path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            try:
                data = json.loads(text, object_pairs_hook=_unique_pairs)
            except ConfigError as exc:
                raise ConfigError(f"config {path}: {exc}") from exc
        else:
            data = load_yaml(text, source=f"config {path}")
    except ConfigError:
        raise
    except ValueError as exc:  # tomllib.TOMLDecodeError, json.JSONDecodeError
        raise ConfigError(f"cannot parse config {path}: {_toml_hint(str(exc), text)}") from exc
    except Exception as exc:
        raise ConfigError(f"cannot parse config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of sections, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` → ``(["train", "lr"], 0.0003)`` (the value is read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".")]
    if len(path) < 2 or not all(path):
        raise ConfigError(f"override {text!r}: key must be section.key (e.g. train.lr), got {key!r}")
    if not raw.strip():
        return path, None
    try:
        value = strict_load(raw)
    except DuplicateKeyError as exc:
        raise ConfigError(f"override {text!r}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot read value: {one_line(exc)}") from exc
    return path, value


def _toml_hint(message: str, text: str) -> str:
    """tomllib says "Cannot overwrite a value (at line N, ...)" for a repeated key: show line N."""
    m = re.search(r"\(at line (\d+), column \d+\)", message)
    if m and message.startswith(("Cannot overwrite", "Cannot declare")):
        lines = text.splitlines()
        n = int(m.group(1))
        if 1 <= n <= len(lines):
            return f"{message}: {lines[n - 1].strip()!r} repeats a key or table given before; keep one"
    return message


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` hook: a key given twice in one object is an error, not a silent replacement."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ConfigError(f"key {key!r} is given twice in one JSON object; keep one — "
                              "a repeated key would silently replace the first")
        out[key] = value
    return out


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``data`` with each ``key.sub=value`` override applied."""
    out = copy.deepcopy(dict(data))
    for text in overrides:
        path, value = parse_override(text)
        node: Any = out
        for i, key in enumerate(path[:-1]):
            nxt = node.get(key) if isinstance(node, dict) else None
            if nxt is None:
                nxt = node[key] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(path[: i + 1])} is not a section")
            node = nxt
        node[path[-1]] = value
    return out
