"""``load_config``: read, apply overrides, validate every section against the registry."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CloudphysError, ConfigError
from .reading import apply_overrides, read_config_file
from .schema import SECTIONS, Config, PretrainConfig, TrainConfig
from .validate import build_section, plugin_section, unknown_keys

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["load_config"]


def load_config(
    source: str | Path | Mapping[str, Any],
    overrides: Iterable[str] = (),
    registry: PluginRegistry | None = None,
) -> Config:
    """Read (file or mapping), apply ``overrides`` and validate a config against ``registry``.

    :param source: path to a ``.yaml``/``.yml``/``.toml``/``.json`` file, or a mapping.
    :param overrides: ``key.sub=value`` strings (values read as YAML).
    :param registry: plugin registry (default: the process-wide one).
    :raises ConfigError: unknown section, key or plugin name (listing the valid ones), bad type,
        value out of its bounds.
    """
    if isinstance(source, (str, Path)):
        data = read_config_file(source)
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        raise ConfigError(f"a config is a path or a mapping of sections, got {type(source).__name__}")
    data = apply_overrides(data, overrides)
    if registry is None:
        from ..plugins import get_registry

        registry = get_registry()
    if "heads" in data:  # several heads on one encoder: the head list `multi` (cloudphys.physics.multi)
        if "head" in data:
            raise ConfigError("a config names either one head ('head:') or a list of heads ('heads:'), not both")
        data["head"] = {"name": "multi", "heads": data.pop("heads")}
    unknown_keys("config", data, (*SECTIONS, "heads"))
    for required in ("encoder", "head"):
        if required not in data:
            raise ConfigError(f"config needs an {required!r} section")
    encoder = plugin_section("encoder", data["encoder"], registry.encoders)
    head = plugin_section("head", data["head"], registry.heads)
    dataset = None
    if data.get("data") is not None:
        dataset = plugin_section("data", data["data"], registry.datasets)
    train = build_section(TrainConfig, "train", data.get("train") or {})
    train.validate()
    pretrain = None
    if data.get("pretrain") is not None:
        pretrain = build_section(PretrainConfig, "pretrain", data["pretrain"])
        pretrain.validate()
    # Heads check their own parameters (e.g. observable names): fail now, not mid-run.
    try:
        if head.name == "multi":  # each entry against its head's schema and bounds, then built
            from ..physics.multi import head_entries

            head_entries(head.params.get("heads", ()), registry)
        registry.head(head.name)(**head.params)
    except CloudphysError:
        raise
    except Exception as exc:
        kind = "" if isinstance(exc, (TypeError, ValueError)) else f"{type(exc).__name__}: "
        raise ConfigError(f"head {head.name!r}: {kind}{exc}") from exc
    return Config(encoder=encoder, head=head, data=dataset, train=train, pretrain=pretrain)
