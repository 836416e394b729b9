"""Plugin manager: built-in plugins, entry-point discovery, validated registries.

Everything cloudphys can build by name (heads, encoders, data sets, pretrained models) arrives
through the hooks in :mod:`cloudphys.hookspecs`, called through the plugin manager
(``pm.hook.register_heads(register=...)``). Built-in plugins are plain modules listed in
:data:`DEFAULT_PLUGINS` and registered exactly like third-party ones, which are discovered through
the ``cloudphys`` entry-point group. Core CLI commands are not plugins: they live in
:mod:`cloudphys.cli`; plugins may only add commands (``register_commands``).

Environment variables (comma-separated plugin names):

* ``CLOUDPHYS_LOAD_PLUGINS`` -- load only these entry-point plugins (empty: none of them);
  built-in plugins always load unless disabled.
* ``CLOUDPHYS_DISABLE_PLUGINS`` -- never load these plugins (built-in or entry point).

A plugin that fails to import or whose registration raises is recorded as a :class:`PluginFailure`
in :attr:`Registry.errors` (plugin name, distribution, error) and skipped; the others still load.
Whatever a plugin prints while it is imported or registers goes to stderr, never to stdout (which
may carry JSON or CSV).

One module (about 400 lines) on purpose: the manager construction, the per-plugin calls with
their failure records and the :class:`Registry` are one loading sequence, and the registry is
their only user; split apart, those private steps would have to become a public API.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata as md
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol

import pluggy

from . import hookspecs
from .errors import PluginError, PluginRegistrationError

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "REGISTRY_HOOKS",
    "PluginFailure",
    "PluginInfo",
    "PluginRegistry",
    "Registry",
    "call_per_plugin",
    "make_plugin_manager",
    "get_plugin_manager",
    "get_registry",
    "plugin_output_to_stderr",
    "reset",
]

ENTRY_POINT_GROUP = "cloudphys"

#: Modules registered as built-in plugins (imported at start-up: keep them cheap). CLI commands are
#: not plugins (see :mod:`cloudphys.cli`).
DEFAULT_PLUGINS: tuple[str, ...] = (
    "cloudphys.physics.debye",
    "cloudphys.physics.direct",
    "cloudphys.physics.multi",
    "cloudphys.data.builtin",
    "cloudphys.encoders.plugin",
    "cloudphys.models.builtin",
)

#: Registry table ← the hook that fills it.
REGISTRY_HOOKS: dict[str, str] = {
    "heads": "register_heads",
    "encoders": "register_encoders",
    "datasets": "register_datasets",
    "models": "register_models",
}

_SINGULAR = {"heads": "head", "encoders": "encoder", "datasets": "data set", "models": "model"}


@dataclass(frozen=True)
class PluginFailure:
    """Record of a plugin that could not be imported or registered (not an exception)."""

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
    models: list[str] = field(default_factory=list)

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
            "models": self.models,
        }


def plugin_output_to_stderr() -> contextlib.AbstractContextManager[Any]:
    """Context in which ``print`` from plugin code goes to stderr (stdout may carry JSON/CSV)."""
    return contextlib.redirect_stdout(sys.stderr)


def _names(env: str) -> set[str] | None:
    value = os.environ.get(env)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _failure(name: str, dist: str | None, exc: BaseException) -> PluginFailure:
    return PluginFailure(name, dist, f"{type(exc).__name__}: {exc}")


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
    errors: list[PluginFailure] = []
    dists: dict[str, tuple[str | None, str | None]] = {}
    builtin: set[str] = set()
    disabled = _names("CLOUDPHYS_DISABLE_PLUGINS") or set()
    only = _names("CLOUDPHYS_LOAD_PLUGINS")

    with plugin_output_to_stderr():
        for plugin in plugins:
            name = plugin if isinstance(plugin, str) else getattr(plugin, "__name__", repr(plugin))
            if name in disabled:
                continue
            try:
                obj = importlib.import_module(plugin) if isinstance(plugin, str) else plugin
                pm.register(obj, name=name)
            except Exception as exc:  # reported, the rest still loads
                errors.append(_failure(name, "cloudphys", exc))
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
                    errors.append(PluginFailure(ep.name, dist, "a plugin of this name is already loaded"))
                    continue
                try:
                    pm.register(ep.load(), name=ep.name)
                except Exception as exc:  # reported, the rest still loads
                    errors.append(_failure(ep.name, dist, exc))
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


def call_per_plugin(
    pm: pluggy.PluginManager,
    hook: str,
    kwargs_for: Callable[[str], dict[str, Any]],
) -> Iterator[tuple[str, Exception | None]]:
    """Call hook ``hook`` through ``pm`` once per implementing plugin, in registration order.

    Each call goes through ``pm.subset_hook_caller`` restricted to one plugin, so one plugin's
    exception is yielded as ``(plugin name, exception)`` and the others still run; a plugin that
    succeeded yields ``(name, None)``. ``kwargs_for(name)`` gives the hook arguments for that
    plugin (e.g. a ``register`` callback that stages what this plugin registers).
    """
    caller = getattr(pm.hook, hook)
    names = [impl.plugin_name for impl in caller.get_hookimpls()]
    plugins = {name: pm.get_plugin(name) for name in names}
    for name in names:
        others = [obj for other, obj in plugins.items() if other != name]
        try:
            pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs_for(name))
        except Exception as exc:  # reported by the caller, the rest still runs
            yield name, exc
        else:
            yield name, None


class PluginRegistry(Protocol):
    """What cloudphys reads from a plugin registry: its tables and its lookups by name.

    :class:`Registry` is the one cloudphys builds (:func:`get_registry`); every function that takes
    ``registry=`` accepts any object of this shape (``None``: the process-wide one).
    """

    heads: Mapping[str, type]
    encoders: Mapping[str, Callable[..., Any]]
    datasets: Mapping[str, Any]
    models: Mapping[str, Any]

    def head(self, name: str) -> type: ...

    def build_head(self, name: str, **params: Any) -> Any: ...

    def encoder(self, name: str) -> Callable[..., Any]: ...

    def dataset(self, name: str) -> Any: ...

    def model(self, name: str) -> Any: ...


class Registry:
    """Validated name → object tables built from a plugin manager's hooks.

    Each hook is called through the plugin manager once per plugin (:func:`call_per_plugin`) with a
    ``register`` callback that stages into that plugin's own tables; a plugin whose registration
    raises or registers something invalid is reported in :attr:`errors` and nothing it registered
    is kept, while the others load.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.heads: dict[str, type] = {}
        self.encoders: dict[str, Callable[..., Any]] = {}
        self.datasets: dict[str, Any] = {}
        self.models: dict[str, Any] = {}
        self.errors: list[PluginFailure] = list(getattr(pm, "cloudphys_errors", []))
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
        staged: dict[str, dict[str, dict[str, Any]]] = {
            name: {kind: {} for kind in REGISTRY_HOOKS} for name in self.plugins
        }
        failed: dict[str, Exception] = {}
        with plugin_output_to_stderr():
            for kind, hook in REGISTRY_HOOKS.items():
                make = getattr(self, f"_{kind}_registrar")

                def kwargs_for(plugin: str, make: Callable[..., Any] = make) -> dict[str, Any]:
                    return {"register": make(plugin, staged[plugin])}

                calls = call_per_plugin(pm, hook, kwargs_for)
                for plugin, exc in calls:
                    if exc is not None and plugin not in failed:
                        failed[plugin] = exc
        for name in self.plugins:  # commit in registration order: the first plugin keeps a name
            if name in failed:
                info = self.plugins[name]
                self.errors.append(_failure(name, info.distribution, failed[name]))
                continue
            try:
                for kind, items in staged[name].items():
                    for item in items:
                        self._check_new(name, kind, item)
            except PluginRegistrationError as exc:
                self.errors.append(PluginFailure(name, self.plugins[name].distribution, str(exc)))
                continue
            for kind, items in staged[name].items():
                getattr(self, kind).update(items)
                getattr(self.plugins[name], kind).extend(items)
                for item in items:
                    self._owner[(kind, item)] = name

    # -- registration -------------------------------------------------------------------
    def _check_new(self, plugin: str, kind: str, name: str, staged: dict[str, Any] | None = None) -> None:
        what = _SINGULAR[kind]
        if not isinstance(name, str) or not name:
            raise PluginRegistrationError(plugin, f"{what} name must be a non-empty string, got {name!r}")
        if (staged is not None and name in staged) or name in getattr(self, kind):
            owner = self._owner.get((kind, name), plugin)
            raise PluginRegistrationError(
                plugin, f"duplicate {what} name {name!r} (already registered by plugin {owner!r})"
            )

    def _heads_registrar(self, plugin: str, staged: dict[str, dict[str, Any]]) -> Callable[[type], None]:
        def register(head_cls: type) -> None:
            from .physics.contract import validate_head_class

            validate_head_class(head_cls, plugin=plugin)
            self._check_new(plugin, "heads", head_cls.name, staged["heads"])
            staged["heads"][head_cls.name] = head_cls

        return register

    def _encoders_registrar(self, plugin: str, staged: dict[str, dict[str, Any]]) -> Callable[..., None]:
        def register(name: str, factory: Callable[..., Any]) -> None:
            if not callable(factory):
                raise PluginRegistrationError(plugin, f"encoder {name!r}: factory must be callable")
            self._check_new(plugin, "encoders", name, staged["encoders"])
            staged["encoders"][name] = factory

        return register

    def _spec_registrar(self, kind: str, plugin: str, staged: dict[str, dict[str, Any]]) -> Callable[[Any], None]:
        what = _SINGULAR[kind]

        def register(spec: Any) -> None:
            name = getattr(spec, "name", None)
            if name is None:
                raise PluginRegistrationError(plugin, f"{what} {spec!r} has no 'name'")
            validate = getattr(spec, "validate", None)
            if callable(validate):
                try:
                    validate()
                except Exception as exc:
                    raise PluginRegistrationError(plugin, f"{what} {name!r}: {exc}") from exc
            self._check_new(plugin, kind, name, staged[kind])
            staged[kind][name] = spec

        return register

    def _datasets_registrar(self, plugin: str, staged: dict[str, dict[str, Any]]) -> Callable[[Any], None]:
        return self._spec_registrar("datasets", plugin, staged)

    def _models_registrar(self, plugin: str, staged: dict[str, dict[str, Any]]) -> Callable[[Any], None]:
        return self._spec_registrar("models", plugin, staged)

    # -- lookup -------------------------------------------------------------------------
    def _get(self, kind: str, name: str) -> Any:
        table = getattr(self, kind)
        try:
            return table[name]
        except (KeyError, TypeError):
            choices = ", ".join(sorted(table)) or "none"
            raise PluginError(f"unknown {_SINGULAR[kind]} {name!r}; available: {choices}") from None

    def head(self, name: str) -> type:
        """Return the head class registered as ``name``."""
        return self._get("heads", name)

    def build_head(self, name: str, **params: Any) -> Any:
        """Instantiate head ``name`` with ``params``.

        A constructor that raises anything but a :class:`~cloudphys.errors.CloudphysError` becomes
        a :class:`~cloudphys.errors.PluginError` naming the head, its plugin and the reason.
        """
        from .errors import CloudphysError

        cls = self.head(name)
        try:
            return cls(**params)
        except CloudphysError:
            raise
        except Exception as exc:
            owner = self.owner("heads", name) or "?"
            raise PluginError(
                f"head {name!r} (plugin {owner!r}) could not be built: {type(exc).__name__}: {exc}"
            ) from exc

    def encoder(self, name: str) -> Callable[..., Any]:
        """Return the encoder factory registered as ``name``."""
        return self._get("encoders", name)

    def dataset(self, name: str) -> Any:
        """Return the data-set spec registered as ``name``."""
        return self._get("datasets", name)

    def model(self, name: str) -> Any:
        """Return the pretrained-model spec registered as ``name``."""
        return self._get("models", name)

    def owner(self, kind: str, name: str) -> str | None:
        """Name of the plugin that registered ``name`` in table ``kind``."""
        return self._owner.get((kind, name))


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
