"""Data sets: registry contract, data directory, loaders."""

from __future__ import annotations

from .base import DataFile, DatasetSpec, Examples, data_dir

__all__ = ["DataFile", "DatasetSpec", "Examples", "data_dir"]
