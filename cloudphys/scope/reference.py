"""A faithful re-implementation of CLOUD's published converter, for checking the fast path.

CLOUD (GitHub ``ChangwenXu98/CLOUD``, ``structure_to_str.py``) converts a pymatgen ``Structure``
with pymatgen's ``SpacegroupAnalyzer`` (symprec 0.01): the generator string of the space group from
``data/generator.json`` (one character a token), the Wyckoff symbols ``multiplicity + letter`` with
multiplicities looked up in ``data/wyckoff-position-multiplicities.json``, distinct, in order of first
appearance over the sites, and ``element round(fraction, 2)`` in the order of
``Composition.fractional_composition.get_el_amt_dict()``. This module does the same, step by step,
so that tests and ``benchmarks/bench_scope.py`` can compare :func:`cloudphys.scope.from_structure`
against it. It is slow (pymatgen objects throughout) and needs both CLOUD tables; cloudphys never
uses it to convert.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["load_json_table", "published_cloud_string"]


def load_json_table(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read one of CLOUD's JSON tables (keys are space-group numbers as strings)."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def published_cloud_string(
    structure: Any,
    generator_table: Mapping[str, str],
    multiplicity_table: Mapping[str, Mapping[str, str]],
    symprec: float = 0.01,
    angle_tolerance: float = 5,
) -> str:
    """The string CLOUD's converter writes for a pymatgen ``Structure``.

    :param generator_table: CLOUD's ``generator.json`` (``{"225": "16aODD..."}``).
    :param multiplicity_table: CLOUD's ``wyckoff-position-multiplicities.json``.
    """
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    analyzer = SpacegroupAnalyzer(structure, symprec=symprec, angle_tolerance=angle_tolerance)
    dataset = analyzer.get_symmetry_dataset()
    letters = dataset.wyckoffs
    number = str(analyzer.get_space_group_number())
    symmetry = " ".join(generator_table[number])
    symbols: list[str] = []
    for letter in letters:
        symbol = str(multiplicity_table[number][letter]) + letter
        if symbol not in symbols:
            symbols.append(symbol)
    parts: list[str] = []
    for element, ratio in structure.composition.fractional_composition.get_el_amt_dict().items():
        parts += [element, str(np.round(ratio, 2))]
    return symmetry + " | " + " ".join(symbols) + " | " + " ".join(parts)
