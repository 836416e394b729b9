"""cloudphys: crystals → SCOPE strings → latent intrinsic parameters → thermodynamics.

Public API::

    import cloudphys
    head = cloudphys.load_head("debye")
    out = head(latents={"theta_D": theta}, temperature=T, n_atoms=n)   # {"u", "cv", "s", "f"}

Heavy modules (torch, transformers, pymatgen) are imported on first use of what needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    CheckpointError,
    CloudphysError,
    ConfigError,
    DataError,
    PluginError,
    PluginRegistrationError,
    ScopeError,
    ScopeParseError,
    StructureError,
)
from .hookspecs import hookimpl

__all__ = [
    "__version__",
    "hookimpl",
    "load_head",
    "list_heads",
    "load_model",
    "list_models",
    "get_registry",
    "CloudphysError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "PluginError",
    "PluginRegistrationError",
    "ScopeError",
    "ScopeParseError",
    "StructureError",
]

if TYPE_CHECKING:  # pragma: no cover
    from .physics.contract import PhysicsHead
    from .plugins import Registry


def get_registry() -> "Registry":
    """The process-wide plugin registry (heads, encoders, data sets)."""
    from .plugins import get_registry as _get

    return _get()


def list_heads() -> list[str]:
    """Names of every registered physics head."""
    return sorted(get_registry().heads)


def load_head(name: str, **params: Any) -> "PhysicsHead":
    """Build the physics head registered as ``name`` with its keyword ``params``.

    Raises :class:`PluginError` listing the available heads if ``name`` is unknown, or naming the
    head, its plugin and the reason if its constructor raises.
    """
    return get_registry().build_head(name, **params)


def load_model(name_or_path: Any, **kwargs: Any) -> Any:
    """A pretrained model by name (:func:`list_models`) or the trained model in a directory (a run, an
    ensemble run or a model directory), with ``.predict(structures, temperatures=...)``.

    See :func:`cloudphys.models.load_model` (imported on first call: torch is heavy).
    """
    from .models import load_model as _load

    return _load(name_or_path, **kwargs)


def list_models() -> list[str]:
    """Names of the registered pretrained models whose physics head is installed."""
    from .models import list_models as _list

    return _list()
