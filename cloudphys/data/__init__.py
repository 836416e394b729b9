"""Data sets: registry contract, data directory, downloads, loaders and builders.

Built-in data sets (registered by :mod:`cloudphys.data.builtin` through ``register_datasets``):
``cloud-cv``, ``cloud-pretrain``, ``cloud-dielectric``, ``phonondb-thermo``, and for your own
files ``thermo-jsonl``, ``csv`` and ``corpus-csv``. Each is loaded with
``get_registry().dataset(name).load(split=..., **params)``; see ``docs/data.md``.
"""

from __future__ import annotations

from ..inputs import cache_dir
from .base import DataFile, DatasetSpec, Examples, data_dir
from .cloud import (
    cloud_split_indices,
    load_cloud_cv,
    load_cloud_dielectric,
    load_cloud_pretrain,
)
from .download import fetch, sha256_of, verify
from .phonondb import (
    DataWarning,
    load_phonondb_thermo,
    load_thermo_jsonl,
    select_temperatures,
)

__all__ = [
    "DataFile",
    "DataWarning",
    "DatasetSpec",
    "Examples",
    "cache_dir",
    "cloud_split_indices",
    "data_dir",
    "fetch",
    "load_cloud_cv",
    "load_cloud_dielectric",
    "load_cloud_pretrain",
    "load_phonondb_thermo",
    "load_thermo_jsonl",
    "select_temperatures",
    "sha256_of",
    "verify",
]
