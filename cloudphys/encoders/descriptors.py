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

Layout :data:`PHONON_FEATURE_LAYOUT` = 3 (opt-in: ``encoder.feature_layout: 3``) adds lattice-dynamics
descriptors of the elemental solids (pymatgen's tables): log molar volume, log speed of sound, log
bulk modulus and log of the elemental Debye temperature estimated from those two,
θ = (ħ v / k_B) (6π² N_A / V_m)^(1/3) -- each as fraction-weighted mean, spread, min and max -- plus
the same estimate for the compound from the mean speed of sound and mean molar volume (17 more
features, all intensive; missing values -> the mean over the elements, as above).

Layout :data:`SYMMETRY_FEATURE_LAYOUT` = 4 (opt-in: ``encoder.feature_layout: 4``) adds to layout 3
descriptors of the symmetry the SCOPE record states, read off the record alone (spglib's operation
tables, no structure): the crystal system (7 one-hot), whether the group is centrosymmetric, the
log point-group order, the multiplicity-weighted mean log site-symmetry order of the occupied
Wyckoff positions (site-symmetry order = general multiplicity / multiplicity), the fraction of the
sites' multiplicity on the general position and the log number of distinct Wyckoff positions
(:data:`SYMMETRY_DESCRIPTORS`; 12 more features). They do not change under the normalizer
relabellings of the canonical record (multiplicities are kept), so they are as invariant as the
string.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..scope import parse_cached
from ..scope.elements import DESCRIPTORS, MAX_Z, element_table

if TYPE_CHECKING:
    from ..scope import ScopeRecord

__all__ = [
    "DESCRIPTORS",
    "PHONON_DESCRIPTORS",
    "PHONON_FEATURE_LAYOUT",
    "SYMMETRY_DESCRIPTORS",
    "SYMMETRY_FEATURE_LAYOUT",
    "symmetry_features",
    "n_composition_features",
    "FEATURE_LAYOUT",
    "FEATURE_LAYOUTS",
    "LEGACY_FEATURE_LAYOUT",
    "N_COMPOSITION_FEATURES",
    "composition",
    "composition_features",
    "element_table",
    "element_vector",
]

N_COMPOSITION_FEATURES = 4 * len(DESCRIPTORS) + 3
#: Feature layout written by new encoders (every feature intensive).
FEATURE_LAYOUT = 2
#: Layout of encoders saved before layouts were recorded (size feature: log of the given cell's atoms).
LEGACY_FEATURE_LAYOUT = 1
#: Layout 2 plus the lattice-dynamics descriptors (opt-in, ``encoder.feature_layout: 3``).
PHONON_FEATURE_LAYOUT = 3
#: Layout 3 plus the symmetry descriptors of the record (opt-in, ``encoder.feature_layout: 4``).
SYMMETRY_FEATURE_LAYOUT = 4
FEATURE_LAYOUTS = (LEGACY_FEATURE_LAYOUT, FEATURE_LAYOUT, PHONON_FEATURE_LAYOUT, SYMMETRY_FEATURE_LAYOUT)
PHONON_DESCRIPTORS = ("log_molar_volume", "log_sound_velocity", "log_bulk_modulus", "log_debye_estimate")
#: Crystal systems by their last space-group number.
_CRYSTAL_SYSTEMS = (("triclinic", 2), ("monoclinic", 15), ("orthorhombic", 74), ("tetragonal", 142),
                    ("trigonal", 167), ("hexagonal", 194), ("cubic", 230))
SYMMETRY_DESCRIPTORS = (*(f"system_{name}" for name, _ in _CRYSTAL_SYSTEMS), "centrosymmetric",
                        "log_point_group_order", "mean_log_site_symmetry_order", "general_position_fraction",
                        "log_wyckoff_positions")
_LOG48 = math.log(48.0)
_HBAR_OVER_KB = 1.054571817e-34 / 1.380649e-23  # K s
_AVOGADRO = 6.02214076e23


def n_composition_features(layout: int = FEATURE_LAYOUT) -> int:
    """The number of composition features of ``layout``."""
    phonon = 4 * len(PHONON_DESCRIPTORS) + 1 if layout >= PHONON_FEATURE_LAYOUT else 0
    return N_COMPOSITION_FEATURES + phonon + (len(SYMMETRY_DESCRIPTORS) if layout >= SYMMETRY_FEATURE_LAYOUT else 0)


def symmetry_features(record: ScopeRecord) -> np.ndarray:
    """:data:`SYMMETRY_DESCRIPTORS` of a :class:`~cloudphys.scope.ScopeRecord` (float64 [12])."""
    number = record.spacegroup
    mult = np.array([s.multiplicity for s in record.sites], dtype=np.float64)
    orders = np.array(record.site_symmetry_orders, dtype=np.float64)
    w = mult / mult.sum()
    system = next(name for name, last in _CRYSTAL_SYSTEMS if number <= last)
    values = {
        f"system_{system}": 1.0,
        "centrosymmetric": 1.0 if record.is_centrosymmetric else 0.0,
        "log_point_group_order": math.log(record.point_group_order) / _LOG48,
        "mean_log_site_symmetry_order": float(w @ np.log(orders)) / _LOG48,
        "general_position_fraction": float(w @ (orders == 1)),
        "log_wyckoff_positions": math.log(len(mult)) / 2.0,
    }
    return np.array([values.get(name, 0.0) for name in SYMMETRY_DESCRIPTORS], dtype=np.float64)


def debye_estimate(sound_velocity: float, molar_volume: float) -> float:
    """θ_D (K) of an elastic continuum with speed of sound ``sound_velocity`` (m/s) and
    ``molar_volume`` (cm³ per mole of atoms): (ħ v / k_B) (6π² N_A / V_m)^(1/3)."""
    n = _AVOGADRO / (molar_volume * 1e-6)
    return _HBAR_OVER_KB * sound_velocity * (6.0 * math.pi**2 * n) ** (1.0 / 3.0)


def _phonon_raw(el: object) -> list[float]:
    """log V_m (cm³/mol), log v (m/s), log B (GPa), log θ estimate (K) of an element; NaN where unknown."""

    def num(name: str) -> float:
        try:
            v = float(getattr(el, name))
        except (TypeError, ValueError, AttributeError):
            return math.nan
        return v if v > 0 and math.isfinite(v) else math.nan

    vm, v, b = num("molar_volume"), num("velocity_of_sound"), num("bulk_modulus")
    theta = debye_estimate(v, vm) if math.isfinite(v) and math.isfinite(vm) else math.nan
    return [math.log(x) if math.isfinite(x) else math.nan for x in (vm, v, b, theta)]


@functools.lru_cache(maxsize=1)
def phonon_element_table() -> tuple[np.ndarray, np.ndarray]:
    """``(standardised [n_el, 4], raw with missing values filled by the mean [n_el, 4])`` of
    :data:`PHONON_DESCRIPTORS`, rows in the order of :func:`element_table`."""
    from pymatgen.core.periodic_table import Element

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = np.asarray([_phonon_raw(Element.from_Z(z)) for z in range(1, MAX_Z + 1)], dtype=np.float64)
    mean, std = np.nanmean(raw, axis=0), np.nanstd(raw, axis=0)
    filled = np.where(np.isnan(raw), mean, raw)
    return (filled - mean) / np.where(std > 0, std, 1.0), filled


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
    """Composition features ``[N, n_composition_features(layout)]`` (float32) for SCOPE strings.

    :param n_atoms: atoms in each given cell; read only by the legacy ``layout=1`` (its size
        feature), ignored by the current layout, whose features are all intensive.
    :param layout: :data:`FEATURE_LAYOUT` (default), :data:`PHONON_FEATURE_LAYOUT` or
        :data:`LEGACY_FEATURE_LAYOUT`.

    Raises ``ValueError`` naming the string if it holds no known element, or for an unknown layout.
    """
    if layout not in FEATURE_LAYOUTS:
        raise ValueError(f"unknown composition-feature layout {layout!r} (known: {FEATURE_LAYOUTS}); "
                         "the model was saved by a newer cloudphys -- upgrade to load it")
    if layout == LEGACY_FEATURE_LAYOUT and n_atoms is None:
        raise ValueError("composition-feature layout 1 needs n_atoms (atoms in each given cell)")
    index, table, raw = element_table()
    out = np.zeros((len(scope), n_composition_features(layout)), dtype=np.float32)
    phonon = phonon_element_table() if layout >= PHONON_FEATURE_LAYOUT else None
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
        out[k, 4 * d : N_COMPOSITION_FEATURES] = [len(comp) / 3.0, math.log(size) / 2.0, lindemann - 4.0]
        if phonon is not None:
            p = phonon[0][rows]
            pm = w @ p
            base, q = N_COMPOSITION_FEATURES, len(PHONON_DESCRIPTORS)
            out[k, base : base + q] = pm
            out[k, base + q : base + 2 * q] = np.sqrt(np.maximum(w @ (p - pm) ** 2, 0.0))
            out[k, base + 2 * q : base + 3 * q] = p.min(axis=0)
            out[k, base + 3 * q : base + 4 * q] = p.max(axis=0)
            pr = np.exp(phonon[1][rows])
            theta = debye_estimate(float(w @ pr[:, 1]), float(w @ pr[:, 0]))
            out[k, base + 4 * q] = math.log(theta) - 6.0
        if layout >= SYMMETRY_FEATURE_LAYOUT:
            out[k, -len(SYMMETRY_DESCRIPTORS):] = symmetry_features(record)
    return out
