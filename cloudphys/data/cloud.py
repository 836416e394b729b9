"""Loaders for CLOUD's published example data (``cloud-cv``, ``cloud-pretrain``, ``cloud-dielectric``).

The files come from the GitHub repository ``ChangwenXu98/CLOUD`` (MIT licence): CSVs under
``example_data/``, the generator and Wyckoff tables under ``data/``. They are stored in the data
directory under ``cloud/`` and downloaded on first use (SHA-256 verified).

Validation split (CLOUD's protocol, ``dataset/dataset_debye.py`` of that repository): the row
indices ``0..N-1`` of ``*_train_and_val.csv`` are shuffled in place with
``numpy.random.RandomState(seed).shuffle`` (``seed=0``); the first ``floor(valid_size * N)``
shuffled indices (``valid_size=0.25``) are the validation rows, the rest the training rows, each
kept in shuffled order. For the 1,213 rows of ``cloud_cv_train_and_val.csv`` that is 303
validation and 910 training rows.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..bounds import Fraction, Kelvin, Seed
from ..errors import DataError
from .base import DataFile, DatasetSpec, Examples, reject_unknown
from .download import fetch

__all__ = [
    "CLOUD_FILES",
    "CLOUD_RAW_URL",
    "CLOUD_REPO",
    "cloud_specs",
    "cloud_split_indices",
    "generator_table",
    "load_cloud_cv",
    "load_cloud_dielectric",
    "load_cloud_pretrain",
    "read_csv_columns",
]

CLOUD_REPO = "https://github.com/ChangwenXu98/CLOUD"
#: Raw-file base URL (branch ``main``).
CLOUD_RAW_URL = "https://raw.githubusercontent.com/ChangwenXu98/CLOUD/main/"

#: Local path (relative to the data directory) → DataFile with canonical URL, SHA-256 and size.
CLOUD_FILES: dict[str, DataFile] = {
    f.path: f
    for f in (
        DataFile("cloud/cloud_cv_train_and_val.csv", CLOUD_RAW_URL + "example_data/cloud_cv_train_and_val.csv",
                 "a86ce0aedb5ca621d55818e80c50e88c11cf59afab9b501c38b04dbb56fb802b", 110845),
        DataFile("cloud/cloud_cv_test.csv", CLOUD_RAW_URL + "example_data/cloud_cv_test.csv",
                 "972e5dfc876232883b8d7129550fd44e612d3ba454dd3c1961ab3fe3049d8c54", 27216),
        DataFile("cloud/pretrain_cloud_10k.csv", CLOUD_RAW_URL + "example_data/pretrain_cloud_10k.csv",
                 "35e7afcf01b4c3f03ed87c456159bf55971ed61538db405d1bba92ac35133cc3", 692559),
        DataFile("cloud/finetune_dielectric_train_and_val.csv",
                 CLOUD_RAW_URL + "example_data/finetune_dielectric_train_and_val.csv",
                 "de9265f4d5bd75162dcecce1420b36f26359db4b4dc7944c6007418ddcf5a895", 303910),
        DataFile("cloud/finetune_dielectric_test.csv", CLOUD_RAW_URL + "example_data/finetune_dielectric_test.csv",
                 "727dae9182e0beba1badee3774535586e50dc0b99e54aa9ede0c996d133d5eee", 75991),
        DataFile("cloud/generator.json", CLOUD_RAW_URL + "data/generator.json",
                 "c4b463d5f9c168f2bac8df209707803519128773f0bc44989611eb0a4b6fdbf1", 5940),
        DataFile("cloud/wyckoff-position-multiplicities.json",
                 CLOUD_RAW_URL + "data/wyckoff-position-multiplicities.json",
                 "eacec03a06a2cbb0a300650920d8ac5a60611b80610d607bfc701d3807f8f061", 32284),
    )
}

_LICENCE = "MIT (CLOUD repository, Copyright (c) Changwen Xu et al.)"
_SOURCE = (
    "C. Xu, S. Zhu, V. Viswanathan, 'CLOUD: A Scalable Scientific Foundation Model for Crystal "
    f"Representation Learning', NeurIPS 2024 workshop FM4Science; {CLOUD_REPO}"
)


def generator_table(*, download: bool | None = None) -> Any:
    """CLOUD's generator table (``cloud/generator.json``, fetched into the data directory) as a
    :class:`~cloudphys.scope.GeneratorTable`, loaded with :func:`cloudphys.scope.load_generator_table`."""
    from ..scope import load_generator_table

    return load_generator_table(fetch(CLOUD_FILES["cloud/generator.json"], dataset="cloud dialect", download=download))


def cloud_split_indices(n: int, *, valid_size: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """CLOUD's train/validation split of ``n`` rows: ``(train_idx, val_idx)``, in shuffled order.

    ``RandomState(seed).shuffle(range(n))``; the first ``floor(valid_size * n)`` are validation.
    """
    if not 0.0 <= valid_size < 1.0:
        raise DataError(f"valid_size must be in [0, 1), got {valid_size!r}")
    indices = np.arange(n)
    np.random.RandomState(seed=seed).shuffle(indices)
    split = int(math.floor(valid_size * n))
    return indices[split:], indices[:split]


def read_csv_columns(path: Path, columns: Sequence[str], *, dataset: str | None = None) -> dict[str, list[str]]:
    """Read the named columns of a CSV file as strings; a missing column is a :class:`DataError`."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: empty file") from None
        where = {name: i for i, name in enumerate(header)}
        for col in columns:
            if col not in where:
                owner = f" (data set {dataset!r})" if dataset else ""
                raise DataError(f"{path}{owner}: no column {col!r}; columns are {header}")
        out: dict[str, list[str]] = {col: [] for col in columns}
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{path}, line {lineno}: {len(row)} fields, expected {len(header)}")
            for col in columns:
                out[col].append(row[where[col]])
    return out


def _floats(values: list[str], path: Path, column: str) -> np.ndarray:
    try:
        return np.asarray([float(v) for v in values], dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: column {column!r} has a non-numeric value ({exc})") from None


def _labelled_split(
    name: str, stem: str, split: str, *, download: bool | None, progress: bool,
) -> tuple[Path, str]:
    """(file, id prefix) of ``split`` for a CLOUD train_and_val/test pair."""
    splits = ("train", "val", "test", "train_and_val")
    if split not in splits:
        raise DataError(f"data set {name!r} has no split {split!r}; choose one of {', '.join(splits)}")
    if split == "test":
        path = fetch(CLOUD_FILES[f"cloud/{stem}_test.csv"], dataset=name, download=download, progress=progress)
        return path, "test"
    path = fetch(CLOUD_FILES[f"cloud/{stem}_train_and_val.csv"], dataset=name, download=download, progress=progress)
    return path, "train_and_val"


def _select(n: int, split: str, valid_size: float, seed: int) -> np.ndarray:
    if split in ("test", "train_and_val"):
        return np.arange(n)
    train_idx, val_idx = cloud_split_indices(n, valid_size=valid_size, seed=seed)
    return train_idx if split == "train" else val_idx


def load_cloud_cv(
    split: str = "train",
    *,
    temperature: Kelvin = 300.0,
    valid_size: Fraction = 0.25,
    seed: Seed = 0,
    download: bool | None = None,
    progress: bool = True,
    **unknown: Any,
) -> Examples:
    """CLOUD's Cv data: SCOPE strings (cloud dialect) with Cv at 300 K.

    :param split: ``train``, ``val`` (CLOUD's 25 % validation split of train_and_val, seed 0),
        ``test`` (``cloud_cv_test.csv``) or ``train_and_val`` (all of it).
    :param temperature: K; the labels were computed at 300 K, so only 300 is accepted.
    :param valid_size: validation fraction of train_and_val.
    :param seed: shuffle seed of the validation split.
    :returns: :class:`Examples` with ``targets={"cv": [N, 1]}`` in J/(K*mol) per mole of cells of
        ``n_atoms`` atoms; ids ``"train_and_val:<row>"`` or ``"test:<row>"`` (0-based data rows).
    """
    reject_unknown("cloud-cv", unknown)
    if not math.isclose(float(temperature), 300.0, abs_tol=1e-9):
        raise DataError(f"cloud-cv labels are Cv at 300 K; temperature={temperature!r} is not available")
    path, prefix = _labelled_split("cloud-cv", "cloud_cv", split, download=download, progress=progress)
    cols = read_csv_columns(path, ("cloud", "cv", "n_atoms"), dataset="cloud-cv")
    cv = _floats(cols["cv"], path, "cv")
    n_atoms = _floats(cols["n_atoms"], path, "n_atoms")
    idx = _select(len(cv), split, valid_size, seed)
    return Examples(
        ids=[f"{prefix}:{i}" for i in idx],
        scope=[cols["cloud"][i] for i in idx],
        n_atoms=n_atoms[idx],
        temperatures=np.array([300.0]),
        targets={"cv": cv[idx].reshape(-1, 1)},
        units={"cv": "J/(K*mol)"},
        dialect="cloud",
    )


def load_cloud_dielectric(
    split: str = "train",
    *,
    valid_size: Fraction = 0.25,
    seed: Seed = 0,
    download: bool | None = None,
    progress: bool = True,
    **unknown: Any,
) -> Examples:
    """CLOUD's refractive-index data (matbench_dielectric): SCOPE strings with ``n`` (dimensionless).

    Same splits as :func:`load_cloud_cv`. ``temperatures`` is ``[nan]`` (not a thermal property) and
    ``n_atoms`` is NaN (not given in the file).
    """
    reject_unknown("cloud-dielectric", unknown)
    path, prefix = _labelled_split("cloud-dielectric", "finetune_dielectric", split, download=download,
                                   progress=progress)
    cols = read_csv_columns(path, ("scope", "n"), dataset="cloud-dielectric")
    n = _floats(cols["n"], path, "n")
    idx = _select(len(n), split, valid_size, seed)
    return Examples(
        ids=[f"{prefix}:{i}" for i in idx],
        scope=[cols["scope"][i] for i in idx],
        n_atoms=np.full(len(idx), np.nan),
        temperatures=np.array([np.nan]),
        targets={"n": n[idx].reshape(-1, 1)},
        units={"n": ""},
        dialect="cloud",
    )


def load_cloud_pretrain(
    split: str = "train",
    *,
    holdout: Fraction = 0.05,
    seed: Seed = 0,
    download: bool | None = None,
    progress: bool = True,
    **unknown: Any,
) -> list[str]:
    """CLOUD's 10k unlabelled SCOPE strings for masked-language-model pretraining.

    :param split: ``train``, ``val`` (a held-out ``holdout`` fraction drawn like CLOUD's validation
        split: ``RandomState(seed).shuffle``, first ``floor(holdout*N)``) or ``all``.
    :returns: the SCOPE strings (cloud dialect).
    """
    reject_unknown("cloud-pretrain", unknown)
    if split not in ("train", "val", "all"):
        raise DataError(f"data set 'cloud-pretrain' has no split {split!r}; choose one of train, val, all")
    path = fetch(CLOUD_FILES["cloud/pretrain_cloud_10k.csv"], dataset="cloud-pretrain", download=download,
                 progress=progress)
    strings = read_csv_columns(path, ("cloud",), dataset="cloud-pretrain")["cloud"]
    if split == "all":
        return strings
    train_idx, val_idx = cloud_split_indices(len(strings), valid_size=holdout, seed=seed)
    return [strings[i] for i in (train_idx if split == "train" else val_idx)]


def cloud_specs() -> list[DatasetSpec]:
    """The :class:`DatasetSpec` of each CLOUD data set."""
    f = CLOUD_FILES
    return [
        DatasetSpec(
            name="cloud-cv",
            description="CLOUD's Cv at 300 K of 1,512 crystals as SCOPE strings (cloud dialect)",
            files=(f["cloud/cloud_cv_train_and_val.csv"], f["cloud/cloud_cv_test.csv"]),
            columns={
                "cloud": "SCOPE string (cloud dialect)",
                "cv": "isochoric heat capacity at 300 K, J/(K*mol) per mole of cells of n_atoms atoms",
                "n_atoms": "atoms per cell",
            },
            licence=_LICENCE,
            source=_SOURCE + " (example_data/)",
            load=load_cloud_cv,
            splits=("train", "val", "test", "train_and_val"),
            dialect="cloud",
        ),
        DatasetSpec(
            name="cloud-pretrain",
            description="CLOUD's 10,000 unlabelled SCOPE strings (cloud dialect) for MLM pretraining",
            files=(f["cloud/pretrain_cloud_10k.csv"],),
            columns={"cloud": "SCOPE string (cloud dialect)"},
            licence=_LICENCE,
            source=_SOURCE + " (example_data/)",
            labelled=False,
            load=load_cloud_pretrain,
            splits=("train", "val", "all"),
            dialect="cloud",
        ),
        DatasetSpec(
            name="cloud-dielectric",
            description="refractive index n of 4,764 crystals (matbench_dielectric) as SCOPE strings",
            files=(f["cloud/finetune_dielectric_train_and_val.csv"], f["cloud/finetune_dielectric_test.csv"]),
            columns={"scope": "SCOPE string (cloud dialect)", "n": "refractive index (dimensionless)"},
            licence=_LICENCE + "; labels from matbench_dielectric (Materials Project, CC BY 4.0)",
            source=_SOURCE + " (example_data/)",
            load=load_cloud_dielectric,
            splits=("train", "val", "test", "train_and_val"),
            dialect="cloud",
        ),
    ]
