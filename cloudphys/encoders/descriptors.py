"""Physical element descriptors and per-material composition features.

Element descriptors (pymatgen): log atomic mass (u), Pauling electronegativity, atomic radius (Å),
period, group, log melting point of the element (K), Mendeleev number. Each is standardised over
the elements H…Pu (missing values → the mean), so features are data-independent constants.

Composition features of a material (fraction-weighted over its elements): mean, standard
deviation, min and max of each descriptor, plus the number of elements, the size of the crystal
and a Lindemann-style estimate log √(T_m / (M·r²)) of the Debye temperature. They are the cheap
physical prior the encoder's latent layer can add to what it reads from the SCOPE tokens.

Every feature is intensive: it depends on the crystal, never on the cell the user wrote. The
size feature is ``log(sites per primitive cell)/2`` read from the SCOPE record (Σ multiplicity of
its Wyckoff sites over the conventional cell's lattice points,
:attr:`cloudphys.scope.ScopeRecord.sites_per_primitive_cell`) -- layout
:data:`FEATURE_LAYOUT` = 2. Layout 1 (encoders saved before it) used ``log(atoms in the given
cell)/2``, which changes with a supercell or a conventional cell; it is kept only so those models
load and predict as they were trained (see ``docs/reliability.md``). Extensive observables are
scaled by the atoms of the given cell in the physics head, nowhere here.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

import numpy as np

from ..scope import parse_cached

__all__ = [
    "DESCRIPTORS",
    "FEATURE_LAYOUT",
    "FEATURE_LAYOUTS",
    "LEGACY_FEATURE_LAYOUT",
    "N_COMPOSITION_FEATURES",
    "composition",
    "composition_features",
    "element_table",
    "element_vector",
]

DESCRIPTORS = ("log_mass", "electronegativity", "radius", "row", "group", "log_melting_point", "mendeleev_no")
_MAX_Z = 94
N_COMPOSITION_FEATURES = 4 * len(DESCRIPTORS) + 3
#: Feature layout written by new encoders (every feature intensive).
FEATURE_LAYOUT = 2
#: Layout of encoders saved before layouts were recorded (size feature: log of the given cell's atoms).
LEGACY_FEATURE_LAYOUT = 1
FEATURE_LAYOUTS = (LEGACY_FEATURE_LAYOUT, FEATURE_LAYOUT)


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
    return {str(k): float(v) for k, v in parse_cached(text).composition}


def composition_features(
    scope: Sequence[str],
    n_atoms: Sequence[float] | np.ndarray | None = None,
    *,
    layout: int = FEATURE_LAYOUT,
) -> np.ndarray:
    """Composition features ``[N, N_COMPOSITION_FEATURES]`` (float32) for SCOPE strings.

    :param n_atoms: atoms in each given cell; read only by the legacy ``layout=1`` (its size
        feature), ignored by the current layout, whose features are all intensive.
    :param layout: :data:`FEATURE_LAYOUT` (default) or :data:`LEGACY_FEATURE_LAYOUT`.

    Raises ``ValueError`` naming the string if it holds no known element, or for an unknown layout.
    """
    if layout not in FEATURE_LAYOUTS:
        raise ValueError(f"unknown composition-feature layout {layout!r} (known: {FEATURE_LAYOUTS}); "
                         "the model was saved by a newer cloudphys -- upgrade to load it")
    if layout == LEGACY_FEATURE_LAYOUT and n_atoms is None:
        raise ValueError("composition-feature layout 1 needs n_atoms (atoms in each given cell)")
    index, table, raw = element_table()
    out = np.zeros((len(scope), N_COMPOSITION_FEATURES), dtype=np.float32)
    d = len(DESCRIPTORS)
    i_mass, i_rad = DESCRIPTORS.index("log_mass"), DESCRIPTORS.index("radius")
    i_tm = DESCRIPTORS.index("log_melting_point")
    sizes = n_atoms if n_atoms is not None else [None] * len(scope)
    for k, (text, n) in enumerate(zip(scope, sizes)):
        record = parse_cached(text)  # one parse per string, shared with batching's checks
        comp = {str(el): float(a) for el, a in record.composition if el in index}
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
        size = float(n) if layout == LEGACY_FEATURE_LAYOUT else float(record.sites_per_primitive_cell)
        out[k, 4 * d :] = [len(comp) / 3.0, math.log(size) / 2.0, lindemann - 4.0]
    return out
