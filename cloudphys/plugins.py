"""Plugin manager: built-in plugins, entry-point discovery, validated registries.

Everything cloudphys can build by name (heads, encoders, data sets, CLI commands) arrives through
the hooks in :mod:`cloudphys.hookspecs`. Built-in plugins are plain modules listed in
:data:`DEFAULT_PLUGINS` and registered exactly like third-party ones, which are discovered through
the ``cloudphys`` entry-point group.

Environment variables (comma-separated plugin names):

* ``CLOUDPHYS_LOAD_PLUGINS`` -- load only these entry-point plugins (empty: none of them);
  built-in plugins always load unless disabled.
* ``CLOUDPHYS_DISABLE_PLUGINS`` -- never load these plugins (built-in or entry point).

A plugin that fails to import or whose registration raises is recorded in
:attr:`Registry.errors` (plugin name, distribution, error) and skipped; the others still load.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .errors import PluginError, PluginRegistrationError

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginLoadError",
    "Registry",
    "make_plugin_manager",
    "get_plugin_manager",
    "get_registry",
    "reset",
]

ENTRY_POINT_GROUP = "cloudphys"

#: Modules registered as built-in plugins (imported at start-up: keep them cheap).
DEFAULT_PLUGINS: tuple[str, ...] = (
    "cloudphys.physics.debye",
    "cloudphys.cli.plugins_cmd",
    "cloudphys.data.builtin",
    "cloudphys.cli.data_cmd",
    "cloudphys.physics.direct",
    "cloudphys.encoders.plugin",
    "cloudphys.cli.train_cmd",
    "cloudphys.cli.scope_cmd",
)


@dataclass(frozen=True)
class PluginLoadError:
    """A plugin that could not be imported or registered."""

    plugin: str
    distribution: str | None
    error: str

    def __str__(self) -> str:
        dist = f" (distribution {self.distribution})" if self.distribution else ""
        return f"plugin {self.plugin!r}{dist}: {self.error}"


@dataclass
class PluginInfo:
    """What one plugin is and what it registered."""

    name: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    encoders: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "hooks": sorted(self.hooks),
            "heads": self.heads,
            "encoders": self.encoders,
            "datasets": self.datasets,
        }


def _names(env: str) -> set[str] | None:
    value = os.environ.get(env)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def make_plugin_manager(
    plugins: Iterable[str | object] = DEFAULT_PLUGINS,
    *,
    entry_points: bool = True,
) -> pluggy.PluginManager:
    """Return a new plugin manager with ``plugins`` and (optionally) entry-point plugins.

    :param plugins: module names or plugin objects to register as built-ins.
    :param entry_points: also discover the ``cloudphys`` entry-point group.

    Import failures are stored on the manager (``pm.cloudphys_errors``) rather than raised.
    """
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    errors: list[PluginLoadError] = []
    dists: dict[str, tuple[str | None, str | None]] = {}
    builtin: set[str] = set()
    disabled = _names("CLOUDPHYS_DISABLE_PLUGINS") or set()
    only = _names("CLOUDPHYS_LOAD_PLUGINS")

    for plugin in plugins:
        name = plugin if isinstance(plugin, str) else getattr(plugin, "__name__", repr(plugin))
        if name in disabled:
            continue
        try:
            obj = importlib.import_module(plugin) if isinstance(plugin, str) else plugin
            pm.register(obj, name=name)
        except Exception as exc:  # noqa: BLE001 - reported, the rest still loads
            errors.append(PluginLoadError(name, "cloudphys", f"{type(exc).__name__}: {exc}"))
            continue
        builtin.add(name)
        dists[name] = ("cloudphys", _version("cloudphys"))

    if entry_points:
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled or (only is not None and ep.name not in only):
                continue
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            if pm.get_plugin(ep.name) is not None:
                errors.append(PluginLoadError(ep.name, dist, "a plugin of this name is already loaded"))
                continue
            try:
                obj = ep.load()
                pm.register(obj, name=ep.name)
            except Exception as exc:  # noqa: BLE001 - reported, the rest still loads
                errors.append(PluginLoadError(ep.name, dist, f"{type(exc).__name__}: {exc}"))
                continue
            dists[ep.name] = (dist, version)

    pm.cloudphys_errors = errors  # type: ignore[attr-defined]
    pm.cloudphys_dists = dists  # type: ignore[attr-defined]
    pm.cloudphys_builtin = builtin  # type: ignore[attr-defined]
    return pm


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


class Registry:
    """Validated name → object tables built from a plugin manager's hooks.

    Each plugin's hook implementations are called one at a time, so a plugin whose registration
    raises is reported in :attr:`errors` and skipped while the others load. What a failing plugin
    registered before raising is discarded.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.heads: dict[str, type] = {}
        self.encoders: dict[str, Callable[..., Any]] = {}
        self.datasets: dict[str, Any] = {}
        self.errors: list[PluginLoadError] = list(getattr(pm, "cloudphys_errors", []))
        self.plugins: dict[str, PluginInfo] = {}
        self._owner: dict[tuple[str, str], str] = {}
        dists = getattr(pm, "cloudphys_dists", {})
        builtin = getattr(pm, "cloudphys_builtin", set())
        for name, obj in pm.list_name_plugin():
            dist, version = dists.get(name, (None, None))
            self.plugins[name] = PluginInfo(
                name=name,
                distribution=dist,
                version=version,
                builtin=name in builtin,
                hooks=[h.name for h in pm.get_hookcallers(obj) or []],
            )
        for name, obj in list(pm.list_name_plugin()):
            self._load_plugin(name, obj)

    # -- registration -------------------------------------------------------------------
    def _load_plugin(self, name: str, obj: object) -> None:
        staged: dict[str, dict[str, Any]] = {"heads": {}, "encoders": {}, "datasets": {}}
        try:
            for hook, kind, make in (
                ("register_heads", "heads", self._head_registrar),
                ("register_encoders", "encoders", self._encoder_registrar),
                ("register_datasets", "datasets", self._dataset_registrar),
            ):
                fn = getattr(obj, hook, None)
                if fn is None or not _is_hookimpl(fn):
                    continue
                fn(register=make(name, staged[kind]))
        except Exception as exc:  # noqa: BLE001 - reported, the rest still loads
            info = self.plugins.get(name)
            self.errors.append(
                PluginLoadError(name, info.distribution if info else None, f"{type(exc).__name__}: {exc}")
            )
            return
        info = self.plugins[name]
        for kind, items in staged.items():
            table = getattr(self, kind)
            table.update(items)
            getattr(info, kind).extend(items)
            for item in items:
                self._owner[(kind, item)] = name

    def _check_new(self, plugin: str, kind: str, name: str, staged: dict[str, Any]) -> None:
        if not isinstance(name, str) or not name:
            raise PluginRegistrationError(plugin, f"{kind[:-1]} name must be a non-empty string, got {name!r}")
        if name in staged or name in getattr(self, kind):
            owner = self._owner.get((kind, name), plugin)
            raise PluginRegistrationError(
                plugin, f"duplicate {kind[:-1]} name {name!r} (already registered by plugin {owner!r})"
            )

    def _head_registrar(self, plugin: str, staged: dict[str, Any]) -> Callable[[type], None]:
        def register(head_cls: type) -> None:
            from .physics.contract import validate_head_class

            validate_head_class(head_cls, plugin=plugin)
            self._check_new(plugin, "heads", head_cls.name, staged)
            staged[head_cls.name] = head_cls

        return register

    def _encoder_registrar(self, plugin: str, staged: dict[str, Any]) -> Callable[..., None]:
        def register(name: str, factory: Callable[..., Any]) -> None:
            if not callable(factory):
                raise PluginRegistrationError(plugin, f"encoder {name!r}: factory must be callable")
            self._check_new(plugin, "encoders", name, staged)
            staged[name] = factory

        return register

    def _dataset_registrar(self, plugin: str, staged: dict[str, Any]) -> Callable[[Any], None]:
        def register(spec: Any) -> None:
            name = getattr(spec, "name", None)
            if name is None:
                raise PluginRegistrationError(plugin, f"data set {spec!r} has no 'name'")
            validate = getattr(spec, "validate", None)
            if callable(validate):
                try:
                    validate()
                except Exception as exc:  # noqa: BLE001
                    raise PluginRegistrationError(plugin, f"data set {name!r}: {exc}") from exc
            self._check_new(plugin, "datasets", name, staged)
            staged[name] = spec

        return register

    # -- lookup -------------------------------------------------------------------------
    def _get(self, kind: str, name: str) -> Any:
        table = getattr(self, kind)
        try:
            return table[name]
        except KeyError:
            choices = ", ".join(sorted(table)) or "none"
            raise PluginError(f"unknown {kind[:-1]} {name!r}; available: {choices}") from None

    def head(self, name: str) -> type:
        """Return the head class registered as ``name``."""
        return self._get("heads", name)

    def encoder(self, name: str) -> Callable[..., Any]:
        """Return the encoder factory registered as ``name``."""
        return self._get("encoders", name)

    def dataset(self, name: str) -> Any:
        """Return the data-set spec registered as ``name``."""
        return self._get("datasets", name)

    def owner(self, kind: str, name: str) -> str | None:
        """Name of the plugin that registered ``name`` in table ``kind``."""
        return self._owner.get((kind, name))


def _is_hookimpl(fn: object) -> bool:
    return hasattr(fn, "cloudphys_impl")


_lock = threading.Lock()
_pm: pluggy.PluginManager | None = None
_registry: Registry | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (built on first use)."""
    global _pm
    with _lock:
        if _pm is None:
            _pm = make_plugin_manager()
        return _pm


def get_registry() -> Registry:
    """The process-wide registry (built on first use from :func:`get_plugin_manager`)."""
    global _registry
    pm = get_plugin_manager()
    with _lock:
        if _registry is None or _registry.pm is not pm:
            _registry = Registry(pm)
        return _registry


def reset() -> None:
    """Forget the process-wide plugin manager and registry (re-read on next use)."""
    global _pm, _registry
    with _lock:
        _pm = None
        _registry = None
