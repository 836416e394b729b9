"""Run configuration: YAML/TOML → validated, typed objects; ``key.sub=value`` overrides.

A config has up to five sections::

    encoder:  {name: scope-bert, hidden_size: 256, num_layers: 4, num_heads: 4}
    head:     {name: debye, observables: [cv]}
    data:     {name: cloud-cv, temperature: 300}
    train:    {epochs: 200, lr: 1.0e-4, batch_size: 64, device: auto, seed: 0}
    pretrain: {sources: [{name: cloud-pretrain}], epochs: 5}      # optional, MLM

``encoder``, ``head`` and ``data`` name a plugin (resolved through the registry) and pass the
remaining keys as its parameters, checked against the plugin's signature; ``train`` and
``pretrain`` are fixed schemas (:class:`TrainConfig`, :class:`PretrainConfig`, sharing
:class:`RunOptions`). Every unknown key or plugin name, wrong type or value out of bounds raises
:class:`~cloudphys.errors.ConfigError` naming it and the valid choices or the remedy.

Modules: :mod:`.schema` (dataclasses and bounds), :mod:`.reading` (files, overrides),
:mod:`.yaml12` (strict YAML 1.2 loader and dumper), :mod:`.coerce` (type-driven coercion),
:mod:`.bounds` (``Bound`` and bounded types such as ``Seed``), :mod:`.validate`,
:mod:`.plugin_params`, :mod:`.loader` (:func:`load_config`), :mod:`.temperatures`
(:func:`parse_temperatures`), :mod:`.table` (the bounds table of docs/config.md).
"""

from __future__ import annotations

from ..bounds import Bound, check_bound
from .coerce import coerce
from .loader import load_config
from .plugin_params import Param, param_schema
from .reading import apply_overrides, parse_override, read_config_file
from .schema import (
    SECTIONS,
    Config,
    PluginSection,
    PretrainConfig,
    RunOptions,
    TrainConfig,
)
from .temperatures import MAX_TEMPERATURES, parse_temperatures

__all__ = [
    "MAX_TEMPERATURES",
    "SECTIONS",
    "Bound",
    "Config",
    "Param",
    "PluginSection",
    "PretrainConfig",
    "RunOptions",
    "TrainConfig",
    "apply_overrides",
    "check_bound",
    "coerce",
    "load_config",
    "param_schema",
    "parse_override",
    "parse_temperatures",
    "read_config_file",
]
