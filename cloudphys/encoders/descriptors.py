"""Physical element descriptors and per-material composition features.

Element descriptors (pymatgen): log atomic mass (u), Pauling electronegativity, atomic radius (Å),
period, group, log melting point of the element (K), Mendeleev number. Each is standardised over
the elements H…Pu (missing values → the mean), so features are data-independent constants.

Composition features of a material (fraction-weighted over its elements): mean, standard
deviation, min and max of each descriptor, plus the number of elements, log n_atoms and a
Lindemann-style estimate log √(T_m / (M·r²)) of the Debye temperature. They are the cheap
physical prior the encoder's latent layer can add to what it reads from the SCOPE tokens.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Sequence

import numpy as np

__all__ = [
    "DESCRIPTORS",
    "element_table",
    "element_vector",
    "composition",
    "composition_features",
    "N_COMPOSITION_FEATURES",
]

DESCRIPTORS = ("log_mass", "electronegativity", "radius", "row", "group", "log_melting_point", "mendeleev_no")
_MAX_Z = 94
N_COMPOSITION_FEATURES = 4 * len(DESCRIPTORS) + 3


def _raw(el: object, name: str) -> float:
    try:
        if name == "log_mass":
            return math.log(float(el.atomic_mass))  # type: ignore[attr-defined]
        if name == "electronegativity":
            return float(el.X)  # type: ignore[attr-defined]
        if name == "radius":
            r = el.atomic_radius  # type: ignore[attr-defined]
            return float(r) if r is not None else math.nan
        if name == "row":
            return float(el.row)  # type: ignore[attr-defined]
        if name == "group":
            return float(el.group)  # type: ignore[attr-defined]
        if name == "log_melting_point":
            t = el.melting_point  # type: ignore[attr-defined]
            return math.log(float(t)) if t is not None and float(t) > 0 else math.nan
        if name == "mendeleev_no":
            m = el.mendeleev_no  # type: ignore[attr-defined]
            return float(m) if m is not None else math.nan
    except (TypeError, ValueError, AttributeError):
        return math.nan
    raise KeyError(name)


@functools.lru_cache(maxsize=1)
def element_table() -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """``(symbol → row, standardised descriptors [n_el, D], raw descriptors [n_el, D])``."""
    from pymatgen.core.periodic_table import Element

    symbols, rows = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for z in range(1, _MAX_Z + 1):
            el = Element.from_Z(z)
            symbols.append(el.symbol)
            rows.append([_raw(el, d) for d in DESCRIPTORS])
    raw = np.asarray(rows, dtype=np.float64)
    mean = np.nanmean(raw, axis=0)
    std = np.nanstd(raw, axis=0)
    filled = np.where(np.isnan(raw), mean, raw)
    std_table = (filled - mean) / np.where(std > 0, std, 1.0)
    return {s: i for i, s in enumerate(symbols)}, std_table, filled


def element_vector(symbol: str) -> np.ndarray | None:
    """Standardised descriptors of element ``symbol`` (``None`` if unknown)."""
    index, table, _ = element_table()
    i = index.get(symbol)
    return None if i is None else table[i].copy()


def composition(text: str) -> dict[str, float]:
    """Element → amount from a SCOPE string (either dialect), via :func:`cloudphys.scope.parse`."""
    try:
        from ..scope import parse  # type: ignore[attr-defined]
    except ImportError:  # SCOPE package not available: read the composition section directly
        parse = None
    if parse is not None:
        record = parse(text)
        comp = getattr(record, "composition")
        items = comp.items() if hasattr(comp, "items") else comp
        return {str(k): float(v) for k, v in items}
    part = text.rsplit("|", 1)[-1].split()
    return {part[i]: float(part[i + 1]) for i in range(0, len(part) - 1, 2)}


def composition_features(scope: Sequence[str], n_atoms: Sequence[float] | np.ndarray) -> np.ndarray:
    """Composition features ``[N, N_COMPOSITION_FEATURES]`` (float32) for SCOPE strings.

    Raises ``ValueError`` naming the string if it holds no known element.
    """
    index, table, raw = element_table()
    out = np.zeros((len(scope), N_COMPOSITION_FEATURES), dtype=np.float32)
    d = len(DESCRIPTORS)
    i_mass, i_rad, i_tm = DESCRIPTORS.index("log_mass"), DESCRIPTORS.index("radius"), DESCRIPTORS.index("log_melting_point")
    for k, (text, n) in enumerate(zip(scope, n_atoms)):
        comp = {el: a for el, a in composition(text).items() if el in index}
        amounts = np.array(list(comp.values()), dtype=np.float64)
        if not comp or amounts.sum() <= 0:
            # amounts that print as 0.0 (below 0.005) still mark the element as present
            amounts = np.ones(len(comp))
        if not comp:
            raise ValueError(f"SCOPE string has no known element in its composition: {text!r}")
        w = amounts / amounts.sum()
        rows = np.array([index[el] for el in comp])
        x = table[rows]
        mean = w @ x
        std = np.sqrt(np.maximum(w @ (x - mean) ** 2, 0.0))
        out[k, 0:d] = mean
        out[k, d : 2 * d] = std
        out[k, 2 * d : 3 * d] = x.min(axis=0)
        out[k, 3 * d : 4 * d] = x.max(axis=0)
        r = raw[rows]
        m_mean = w @ np.exp(r[:, i_mass])
        tm_mean = w @ np.exp(r[:, i_tm])
        rad = w @ r[:, i_rad]
        lindemann = 0.5 * math.log(tm_mean / (m_mean * rad * rad))
        out[k, 4 * d :] = [len(comp) / 3.0, math.log(float(n)) / 2.0, lindemann - 4.0]
    return out
