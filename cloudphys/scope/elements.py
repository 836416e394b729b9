"""Element descriptors from pymatgen's tables (the raw values behind the composition features of
:mod:`cloudphys.encoders.descriptors` and the bond features of :mod:`cloudphys.scope.geometry`).

Each descriptor of the elements H…Pu, standardised over them; a missing value is the mean over the
elements, so every number is a data-independent constant.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

__all__ = ["DESCRIPTORS", "MAX_Z", "element_table"]

DESCRIPTORS = ("log_mass", "electronegativity", "radius", "row", "group", "log_melting_point", "mendeleev_no")
#: Elements H (1) ... Pu (94): the ones tabulated.
MAX_Z = 94


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
        for z in range(1, MAX_Z + 1):
            el = Element.from_Z(z)
            symbols.append(el.symbol)
            rows.append([_raw(el, d) for d in DESCRIPTORS])
    raw = np.asarray(rows, dtype=np.float64)
    mean = np.nanmean(raw, axis=0)
    std = np.nanstd(raw, axis=0)
    filled = np.where(np.isnan(raw), mean, raw)
    std_table = (filled - mean) / np.where(std > 0, std, 1.0)
    return {s: i for i, s in enumerate(symbols)}, std_table, filled
