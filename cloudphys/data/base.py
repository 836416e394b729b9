"""Data-set contract shared by the registry, the loaders and the trainer.

* :class:`DataFile` -- one file of a data set: path relative to the data directory, canonical
  URL (public sources) and SHA-256.
* :class:`DatasetSpec` -- what ``register_datasets`` hooks register: name, description, files,
  columns with units, licence, source, and a ``load`` callable.
* :class:`Examples` -- what ``spec.load(split=..., **params)`` returns to the trainer: one split of
  a labelled data set as SCOPE strings, atoms per cell, a temperature grid and target curves.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..params import keyword_params

__all__ = ["DataFile", "DatasetSpec", "Examples", "check_split", "data_dir", "reject_unknown", "signature_params"]


def data_dir() -> Path:
    """The data directory: ``$CLOUDPHYS_DATA`` if set, else a per-user cache directory."""
    env = os.environ.get("CLOUDPHYS_DATA")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("cloudphys")) / "data"


@dataclass(frozen=True)
class DataFile:
    """One file of a data set.

    :param path: path relative to the data directory, e.g. ``"cloud/cloud_cv_test.csv"``.
    :param url: canonical download location (``None``: not downloadable, e.g. derived data).
    :param sha256: expected SHA-256 hex digest (``None``: not verified).
    :param size: size in bytes, if known (for ``cloudphys data info``).
    """

    path: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None


@dataclass
class Examples:
    """One split of a labelled data set, ready for tokenization.

    :param ids: one identifier per example.
    :param scope: one SCOPE string per example (either dialect).
    :param n_atoms: atoms per cell, shape ``[N]``.
    :param temperatures: K, shape ``[nT]`` (a grid shared by all examples; ``[1]`` for
        single-temperature data such as CLOUD's Cv at 300 K).
    :param targets: observable name → values of shape ``[N, nT]`` in the head's units (per mole of
        cells); NaN marks a missing label.
    :param units: observable name → unit string.
    :param dialect: the SCOPE dialect of ``scope`` (``"default"`` or ``"cloud"``) as the loader
        wrote or read them; ``None`` when unknown (strings given by the user in a ``scope`` column).
    :param n_atoms_primitive: atoms per primitive cell, shape ``[N]``, where known (from a structure:
        ``cloudphys.scope.primitive_atoms``; NaN where not); ``None``: every given cell is read as a
        primitive cell. Only heads that declare the condition ``n_atoms_primitive`` use it (issue 12).
    :param dos: phonon density of states labels (issue 20), shape ``[N, K]``: modes per cell in ``K``
        equal bins on (0, ``dos_fmax_thz``]; a row of NaN marks a material without one (it still
        trains on its curves). ``None``: no example has one.
    :param dos_fmax_thz: ``[N]`` upper edge (THz) of each example's DOS bins (NaN where no DOS).
    :param dos_atom: ``[N]`` modes at or below 0 THz (phonondb-thermo's ``dos_nonpositive_modes``),
        so that ``dos.sum(1) + dos_atom`` is the cell's 3·n_atoms modes (0 where not given).
    :param geometry: standardised geometric features of each example's structure (issue 20 §3,
        :func:`cloudphys.scope.geometry.geometric_features`), shape ``[N, N_GEOMETRIC_FEATURES]``; a NaN row where
        there is no structure. ``None``: not computed (only a model with
        ``encoder.geometric_features`` reads them; loaders compute them when asked, ``geometry=True``).
    """

    ids: list[str]
    scope: list[str]
    n_atoms: np.ndarray
    temperatures: np.ndarray
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    dialect: str | None = None
    n_atoms_primitive: np.ndarray | None = None
    dos: np.ndarray | None = None
    dos_fmax_thz: np.ndarray | None = None
    dos_atom: np.ndarray | None = None
    geometry: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.geometry is not None:
            self.geometry = np.asarray(self.geometry, dtype=np.float64)
            if self.geometry.ndim != 2 or self.geometry.shape[0] != n:
                raise ValueError(f"geometry must have shape [N, F] with N = {n} examples, got {self.geometry.shape}")
        if len(self.scope) != n or len(self.n_atoms) != n:
            raise ValueError("ids, scope and n_atoms must have the same length")
        if self.n_atoms_primitive is not None and len(self.n_atoms_primitive) != n:
            raise ValueError("n_atoms_primitive must have one value per example")
        if self.dos is not None:
            self.dos = np.asarray(self.dos, dtype=np.float64)
            if self.dos.ndim != 2 or self.dos.shape[0] != n:
                raise ValueError(f"dos must have shape [N, K] with N = {n} examples, got {self.dos.shape}")
            fmax = np.full(n, np.nan) if self.dos_fmax_thz is None else np.asarray(self.dos_fmax_thz, np.float64)
            atom = np.zeros(n) if self.dos_atom is None else np.asarray(self.dos_atom, np.float64)
            if fmax.shape != (n,) or atom.shape != (n,):
                raise ValueError("dos_fmax_thz and dos_atom must have one value per example")
            self.dos_fmax_thz, self.dos_atom = fmax, atom
        for name, values in self.targets.items():
            if values.shape != (n, len(self.temperatures)):
                raise ValueError(
                    f"target {name!r} has shape {values.shape}, expected {(n, len(self.temperatures))}"
                )

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class DatasetSpec:
    """A registered data set.

    :param name: registry name, e.g. ``"cloud-cv"``.
    :param description: one line.
    :param files: the files it reads (relative to the data directory).
    :param columns: column → meaning and unit.
    :param licence: licence of the data.
    :param source: where it comes from (citation / repository).
    :param labelled: ``False`` for unlabelled corpora (MLM pretraining).
    :param load: ``load(split=..., **params)`` → :class:`Examples` (labelled) or ``list[str]``
        of SCOPE strings (unlabelled). ``split`` is one of ``splits``.
    :param splits: split names ``load`` accepts.
    :param dialect: the SCOPE dialect of the strings ``load`` returns with its default parameters
        (``"cloud"`` for CLOUD's files, ``"default"`` for converted structures); a loader with a
        ``dialect`` parameter returns that one instead, and says so in ``Examples.dialect``.
    :param params: keyword parameters of ``load`` with their defaults. Leave it out: it is read
        from ``load``'s signature (the one declaration); give it only for a ``load(**kwargs)``.
    """

    name: str
    description: str
    files: tuple[DataFile, ...] = ()
    columns: Mapping[str, str] = field(default_factory=dict)
    licence: str = ""
    source: str = ""
    labelled: bool = True
    load: Callable[..., Any] | None = None
    splits: tuple[str, ...] = ("train", "val", "test")
    dialect: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.params and callable(self.load):
            self.params = signature_params(self.load)

    def validate(self) -> None:
        """Raise ``ValueError`` if a declaration is missing (called at registration)."""
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("data set needs a non-empty name")
        if not callable(self.load):
            raise ValueError(f"data set {self.name!r} has no callable 'load'")
        if not self.splits:
            raise ValueError(f"data set {self.name!r} declares no splits")
        if self.dialect not in (None, "default", "cloud"):
            raise ValueError(f"data set {self.name!r}: dialect must be 'default' or 'cloud', got {self.dialect!r}")


def signature_params(load: Callable[..., Any]) -> dict[str, Any]:
    """The keyword parameters of ``load`` (minus ``split`` and ``**kwargs``) with their defaults."""
    params = keyword_params(load, ("split",), allow_var_keyword=True) or {}
    return {k: (None if p.default is inspect.Parameter.empty else p.default) for k, p in params.items()}


def reject_unknown(name: str, unknown: Mapping[str, Any]) -> None:
    """Raise :class:`DataError` if a ``load(**unknown)`` of data set ``name`` got keys it does not take."""
    if unknown:
        raise DataError(f"data set {name!r} has no parameter(s) {', '.join(sorted(unknown))}")


def check_split(name: str, split: str, splits: tuple[str, ...] = ("train", "val", "test", "all")) -> None:
    """Raise :class:`DataError` if ``split`` is not one of the ``splits`` data set ``name`` serves."""
    if split not in splits:
        raise DataError(f"data set {name!r} has no split {split!r}; choose one of {', '.join(splits)}")
