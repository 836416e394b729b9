"""Helpers shared by the tests: small real data, the SCOPE tokenizer, benchmark scripts as modules."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

from cloudphys.data import Examples


def tokenizer(max_length: int = 256):
    """The project's SCOPE tokenizer (cloudphys.tokenizer)."""
    from cloudphys.tokenizer import build_tokenizer

    return build_tokenizer(model_max_length=max_length)


def cloud_examples(root: Path, n: int, offset: int = 0, file: str = "cloud_cv_train_and_val.csv") -> Examples:
    """``n`` rows of CLOUD's Cv data as in-memory :class:`Examples` (Cv at 300 K)."""
    with open(root / "cloud" / file, newline="") as fh:
        rows = list(csv.DictReader(fh))[offset : offset + n]
    return Examples(
        ids=[f"row{offset + i}" for i in range(len(rows))],
        scope=[r["cloud"] for r in rows],
        n_atoms=np.array([float(r["n_atoms"]) for r in rows]),
        temperatures=np.array([300.0]),
        targets={"cv": np.array([[float(r["cv"])] for r in rows])},
        units={"cv": "J/(K*mol)"},
    )


TINY = {
    "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2, "dropout": 0.1,
                "composition_features": True},
    "head": {"name": "debye", "observables": ["cv"]},
    "train": {"epochs": 3, "batch_size": 16, "lr": 1.0e-3, "progress": "false", "patience": 0},
}


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` of this repository as a module (the scripts are not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
