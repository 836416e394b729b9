"""Exception types raised by cloudphys.

Every error a user can trigger with bad input derives from :class:`CloudphysError`, so callers
can catch one type; each also derives from the closest built-in (``ValueError``...) so that
generic code keeps working.
"""

from __future__ import annotations

__all__ = [
    "CloudphysError",
    "PluginError",
    "PluginRegistrationError",
    "ConfigError",
    "ScopeError",
    "ScopeParseError",
    "StructureError",
    "DataError",
    "CheckpointError",
    "WorkerError",
]


class CloudphysError(Exception):
    """Base class of every error cloudphys raises on purpose."""


class PluginError(CloudphysError):
    """A plugin could not be loaded or used."""


class PluginRegistrationError(PluginError, ValueError):
    """A plugin registered something invalid (duplicate name, missing declaration, wrong type)."""

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}")


class ConfigError(CloudphysError, ValueError):
    """A configuration is invalid (unknown key, wrong type, unknown plugin name)."""


class ScopeError(CloudphysError, ValueError):
    """Base class of SCOPE conversion errors."""


class ScopeParseError(ScopeError):
    """A SCOPE string is malformed; the message says where and why."""


class StructureError(ScopeError):
    """A crystal structure cannot be converted (unreadable, disordered, degenerate)."""


class DataError(CloudphysError, ValueError):
    """A data set is missing, malformed or fails verification."""


class CheckpointError(CloudphysError, ValueError):
    """A checkpoint directory is missing, incomplete, corrupt or unsafe."""


class WorkerError(CloudphysError, RuntimeError):
    """A worker process died before finishing its task (killed, out of memory); the message names
    the task (e.g. the ensemble member) and what is kept."""
