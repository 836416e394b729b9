"""Pretrained models that ship with cloudphys (or with a plugin) and the user's verbs on a model.

::

    import cloudphys
    cloudphys.list_models()                       # ['cloud-debye', 'phonondb-dos', ...]
    m = cloudphys.load_model("cloud-debye")       # or a run / model directory
    p = m.predict(structure, temperatures=[50, 300])
    p.to_csv("out.csv"); p.plot("out.png")

Models are registered through the ``register_models`` hook with a :class:`ModelSpec`; the built-in
plugin :mod:`cloudphys.models.builtin` registers every folder shipped inside this package. Every
load verifies the folder's ``SHA256SUMS`` first (:class:`~cloudphys.errors.CheckpointError` on a
mismatch) and needs no network.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError
from .registry import (
    CARD_FILE,
    CHECKSUM_FILE,
    ModelSpec,
    verify_checksums,
    write_checksums,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["ModelSpec", "list_models", "model_spec", "load_model", "verify_checksums", "write_checksums",
           "CHECKSUM_FILE", "CARD_FILE", "available"]


def _registry(registry: PluginRegistry | None) -> PluginRegistry:
    if registry is not None:
        return registry
    from ..plugins import get_registry

    return get_registry()


def available(spec: ModelSpec, registry: PluginRegistry | None = None) -> bool:
    """Whether the head the model needs is registered (its plugin installed)."""
    return not spec.head or spec.head in _registry(registry).heads


def list_models(registry: PluginRegistry | None = None, *, include_unavailable: bool = False) -> list[str]:
    """Names of the registered pretrained models whose head is installed (all with ``include_unavailable``)."""
    reg = _registry(registry)
    return sorted(n for n, s in reg.models.items() if include_unavailable or available(s, reg))


def model_spec(name: str, registry: PluginRegistry | None = None) -> ModelSpec:
    """The :class:`ModelSpec` registered as ``name`` (a :class:`~cloudphys.errors.PluginError` listing
    the names if unknown)."""
    return _registry(registry).model(name)


def load_model(name_or_path: str | Path, *, registry: PluginRegistry | None = None, device: str = "cpu",
               map_location: str | None = None) -> Any:
    """A registered model by name, or a trained run / model / ensemble directory, as a
    :class:`~cloudphys.models.api.Model`.

    Shipped models are checked against their ``SHA256SUMS`` before loading; weights stored in
    half precision are loaded as float32. ``map_location`` is an alias of ``device``.
    """
    from ..inference.uncertainty import read_calibration
    from ..modeling.core import load_core
    from .api import Model

    reg = _registry(registry)
    spec = None
    if isinstance(name_or_path, str) and name_or_path in reg.models:
        spec = reg.model(name_or_path)
        if not available(spec, reg):
            raise CheckpointError(
                f"model {spec.name!r} needs the physics head {spec.head!r}, which no installed plugin provides"
                + (f" (install {spec.extra['requires']})" if spec.extra.get("requires") else ""))
        verify_checksums(spec.path, spec.name)
        path = Path(spec.path)
    else:
        path = Path(name_or_path)
        if not path.exists():
            names = ", ".join(list_models(reg)) or "none"
            raise CheckpointError(f"{str(name_or_path)!r} is neither a registered model (available: {names}) "
                                  "nor an existing directory")
        if (path / CHECKSUM_FILE).is_file():
            verify_checksums(path)
    core = load_core(path, registry=reg, map_location=map_location or device).float()
    return Model(core, name=spec.name if spec else str(name_or_path), path=path,
                 calibration=read_calibration(path), spec=spec)
