"""Geometric inputs a SCOPE string lacks (issue 20 §3): volume, density, nearest-neighbour distances.

A SCOPE string carries symmetry, Wyckoff sites and composition but no lengths. Where a structure is
given, :func:`geometric_features` adds nine intensive numbers computed from it:

====  =======================================  ==========================================
 #    name                                      unit / definition
====  =======================================  ==========================================
 0    ``log_volume_per_atom``                  log(V / N), V in Å³
 1    ``density``                              mean atomic mass / (V / N), u/Å³
 2    ``nn_mean``                              mean over atoms of the nearest-neighbour distance, Å
 3    ``nn_min``                               smallest nearest-neighbour distance, Å
 4    ``nn_std``                               spread (population std) of the atoms' nearest distances, Å
 5    ``coordination``                         mean number of neighbours within 1.2 × each atom's nearest
 6    ``log_mass``                             log of the mean atomic mass (u)
 7    ``lindemann_volume``                     log(V / N) / 3 − log(mass) / 2
 8    ``lindemann_nn``                         log(nn_mean) − log(mass) / 2
====  =======================================  ==========================================

Layout 2 (``encoder.geometric_features: 2``) adds 26 features of the sites and their bonds
(:data:`BOND_FEATURES`): a bond ``i``–``j`` is each neighbour of atom ``i`` within 1.2 × its nearest
distance, and its log length, log reduced mass, strain log(length / (r_i + r_j)) (atomic radii),
electronegativity difference and a Badger-like frequency proxy −½ log μ − 3/2 log length enter as
mean, spread, min and max over the bonds (each atom counts once); then the log packing fraction
Σ 4/3 π r³ / V and the quantiles 0, ¼, ½, ¾, 1 of each atom's proxy −½ log m − 3/2 log d_nn.
Force constants set the phonon frequencies, and they follow from which elements bond, at what
length and how ionic: a cell's mean volume and distances alone do not say that.

Layout 3 (``encoder.geometric_features: 3``) adds 11 features of how the bonds connect
(:data:`SPRING_FEATURES`): a Born–von Kármán spring network on the primitive cell (each neighbour
within 1.6 × an atom's nearest distance a spring of stiffness d⁻³, a tenth of that beyond 1.2 ×,
resisting stretch and, at 0.3 of that, sideways motion; the sites' masses). Its spectrum at Gamma and
at the zone boundary (log mean, mean log, rms, quantiles, floppy fraction, ⟨ω⁻²⟩) and its sound
velocities (the relaxed-ion elastic tensor of the network, Christoffel's equation, a Debye average
over directions fixed to the lattice) are what the acoustic branches -- low-temperature Cv -- depend
on and single bonds do not show. The stiffness scale is unknown: the logs carry it as an offset.

A geometry row (:func:`geometric_features`, ``Examples.geometry``) always carries every layout's
features (:data:`ALL_GEOMETRIC_FEATURES`, :data:`N_GEOMETRIC_FEATURES` columns); a model reads the
first ``n_geometric_features(layout)``, so the nine of layout 1 keep their values and constants.

They are invariant under the choice of cell: a supercell, a rotated or translated cell, a reordering
of the sites or another (reduced or not) basis of the same lattice give the same values (up to
float rounding). Neighbours are searched in all periodic images that can lie within the cutoff
(the image range follows from the reciprocal lattice), so skewed cells are handled too; quantiles
are read off the inverted CDF, which a supercell's repeated atoms do not change.

:func:`standardise` maps them to O(1) numbers with fixed constants (:data:`GEOMETRY_MEAN`,
:data:`GEOMETRY_STD`) -- what the latent layer of a model with ``encoder.geometric_features: true``
reads after the composition features.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import StructureError

__all__ = [
    "ALL_GEOMETRIC_FEATURES",
    "BOND_FEATURES",
    "GEOMETRIC_FEATURES",
    "GEOMETRY_LAYOUTS",
    "GEOMETRY_MEAN",
    "GEOMETRY_STD",
    "N_GEOMETRIC_FEATURES",
    "NEEDS_STRUCTURE",
    "SPRING_FEATURES",
    "geometric_features",
    "geometry_layout",
    "geometry_rows",
    "n_geometric_features",
    "raw_geometric_features",
    "reads_geometry",
    "standardise",
]

#: Layout 1 (``encoder.geometric_features: true`` or ``1``): nine features of the cell.
GEOMETRIC_FEATURES = (
    "log_volume_per_atom", "density", "nn_mean", "nn_min", "nn_std", "coordination", "log_mass",
    "lindemann_volume", "lindemann_nn",
)
_BOND_QUANTITIES = ("bond_log_length", "bond_log_reduced_mass", "bond_strain", "bond_en_difference",
                    "bond_frequency")
#: Layout 2 (``encoder.geometric_features: 2``) adds these 26 features of the bonds and sites.
BOND_FEATURES = tuple(f"{q}_{a}" for q in _BOND_QUANTITIES for a in ("mean", "std", "min", "max")) + (
    "log_packing_fraction",
) + tuple(f"site_frequency_q{q}" for q in (0, 25, 50, 75, 100))
#: Layout 3 (``encoder.geometric_features: 3``) adds these 11 features of a spring network on the
#: primitive cell (:func:`_spring_features`): its spectrum at Gamma and the zone boundary, and its sound velocities.
SPRING_FEATURES = ("spring_log_mean_w", "spring_mean_log_w", "spring_log_rms_w", "spring_log_w_q10",
                   "spring_log_w_q25", "spring_log_w_q90", "spring_floppy_fraction", "spring_log_inv_w2",
                   "spring_log_v_debye", "spring_log_v_min", "spring_log_theta")
#: Every feature, in the order of a geometry row (a layout reads the first ``n_geometric_features(layout)``).
ALL_GEOMETRIC_FEATURES = GEOMETRIC_FEATURES + BOND_FEATURES + SPRING_FEATURES
#: Columns of a geometry row (``Examples.geometry``, :func:`geometry_rows`): every layout's features.
N_GEOMETRIC_FEATURES = len(ALL_GEOMETRIC_FEATURES)
#: Feature count of each geometric layout.
GEOMETRY_LAYOUTS = {1: len(GEOMETRIC_FEATURES), 2: len(GEOMETRIC_FEATURES) + len(BOND_FEATURES),
                    3: len(ALL_GEOMETRIC_FEATURES)}
_SITE_QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)

#: Neighbours of an atom within this factor of its nearest distance count towards its coordination.
SHELL = 1.2

#: Mean and standard deviation of each raw feature (:data:`ALL_GEOMETRIC_FEATURES`) over the 4,122
#: stable ``train`` materials of phonondb-thermo (``load_phonondb_thermo("train", stable=True)``'s
#: ids, their ``structure`` in ``materials.jsonl.gz``; ``python benchmarks/bench_geometry.py
#: --constants`` prints them). Fixed here so that a saved model reads the same numbers forever; never refitted.
GEOMETRY_MEAN = np.array([
    2.904566, 3.049097, 2.287796, 2.119486, 0.233068, 4.453654, 3.947546, -1.005584, -1.165868,  # layout 1
    0.827244, 0.120379, 0.723300, 1.079670, 2.733091, 0.224689, 2.492951, 3.132116, 0.015761, 0.065960,
    -0.058692, 0.175041, 1.344363, 0.385104, 0.801594, 1.878275, -2.607411, 0.244079, -3.121275, -2.393548,
    -0.606801, -3.734984, -3.405486, -2.910919, -2.672736, -2.561394,
    -2.643942, -2.796742, -2.549634, -3.549148, -3.217362, -2.133047,
    0.000549, 6.331364, -3.035794, -3.212800, -4.003982,  # layout 3
])
GEOMETRY_STD = np.array([
    0.400265, 1.129812, 0.445606, 0.480208, 0.175892, 1.724392, 0.587742, 0.212805, 0.189205,  # layout 1
    0.213751, 0.085021, 0.242826, 0.209823, 0.833359, 0.247118, 0.912446, 0.798141, 0.076940, 0.084639,
    0.068894, 0.258467, 0.609317, 0.248978, 0.731112, 0.677838, 0.688603, 0.208103, 0.629650, 0.770221,
    0.391266, 0.463775, 0.642644, 0.753272, 0.767544, 0.804397,
    0.593677, 0.545157, 0.630081, 0.530964, 0.539820, 0.679956,
    0.007247, 1.440105, 0.416648, 0.477006, 0.506998,  # layout 3
])


def geometry_layout(value: Any) -> int:
    """The geometric layout an ``encoder.geometric_features`` value asks for: 0 (none) for
    ``False``/``None``/``0``, 1 for ``True``/``1`` (the nine cell features), 2 for ``2`` (those plus
    :data:`BOND_FEATURES`), 3 for ``3`` (those plus :data:`SPRING_FEATURES`). Raises ``ValueError``
    for anything else."""
    if value is None or value is False:
        return 0
    if value is True:
        return 1
    if isinstance(value, (int, np.integer)) and int(value) in (0, *GEOMETRY_LAYOUTS):
        return int(value)
    raise ValueError(f"encoder.geometric_features must be false, true (layout 1) or one of "
                     f"{sorted(GEOMETRY_LAYOUTS)}, got {value!r}")


def n_geometric_features(layout: int) -> int:
    """How many features (the first of a geometry row) a geometric ``layout`` reads (0 for none)."""
    return 0 if layout == 0 else GEOMETRY_LAYOUTS[geometry_layout(layout)]


@lru_cache(maxsize=256)
def _mass(element: str) -> float:
    if element == "X":
        raise StructureError("the dummy species X has no mass; geometric features need real elements")
    from pymatgen.core import Element

    return float(Element(element).atomic_mass)


def _lll(basis: np.ndarray, delta: float = 0.75) -> np.ndarray:
    """An LLL-reduced basis (rows) of the lattice spanned by the rows of ``basis`` (float64)."""
    b = basis.astype(np.float64).copy()
    n = b.shape[0]

    def gram_schmidt(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bs = np.zeros_like(b)
        mu = np.zeros((n, n))
        for i in range(n):
            bs[i] = b[i]
            for j in range(i):
                mu[i, j] = b[i] @ bs[j] / (bs[j] @ bs[j])
                bs[i] = bs[i] - mu[i, j] * bs[j]
        return bs, mu

    bs, mu = gram_schmidt(b)
    k = 1
    for _ in range(1000):
        if k >= n:
            break
        for j in range(k - 1, -1, -1):
            q = round(mu[k, j])
            if q:
                b[k] = b[k] - q * b[j]
                bs, mu = gram_schmidt(b)
        if bs[k] @ bs[k] >= (delta - mu[k, k - 1] ** 2) * (bs[k - 1] @ bs[k - 1]):
            k += 1
        else:
            b[[k, k - 1]] = b[[k - 1, k]]
            bs, mu = gram_schmidt(b)
            k = max(k - 1, 1)
    return b


@lru_cache(maxsize=64)
def _images(reach: tuple[int, int, int]) -> np.ndarray:
    """The integer image offsets ``-reach..reach`` (per axis) as floats ``[I, 3]``: the 27 with every
    component in -1..1 first (in the same order for any ``reach``), then the others."""
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1).reshape(-1, 3)
    inner = np.abs(grid).max(1) <= 1
    out = np.concatenate([grid[inner], grid[~inner]]).astype(np.float64)
    out.flags.writeable = False
    return out


def _squared(x: np.ndarray, images: np.ndarray) -> np.ndarray:
    """``[r, N, I]`` squared lengths (Å²) of the offsets ``x`` ``[r, N, 3]`` (Cartesian, minimum image)
    shifted by each of the lattice vectors ``images`` ``[I, 3]`` (Cartesian); the atom itself is ``inf``."""
    d2 = (x[:, :, 0, None] + images[:, 0]) ** 2
    d2 += (x[:, :, 1, None] + images[:, 1]) ** 2
    d2 += (x[:, :, 2, None] + images[:, 2]) ** 2
    tiny = d2 < 1e-15
    if tiny.any():  # the atom itself: a distance below 1e-8 Å (an atom on top of another is refused by the caller)
        d2[tiny] = np.where(np.sqrt(d2[tiny]) < 1e-8, np.inf, d2[tiny])
    return d2


def _neighbours(lattice: np.ndarray, frac: np.ndarray, chunk: int = 64, shell: float = SHELL,
                vectors: bool = False) -> tuple[np.ndarray, ...]:
    """Per atom, the nearest-neighbour distance (Å, any periodic image, the atom's own images
    included); and the bonds ``(i, j, length)``: every neighbour ``j`` (any image) of atom ``i``
    within ``shell`` (:data:`SHELL`) × ``i``'s nearest distance (their count is ``i``'s coordination);
    with ``vectors``, also each bond's Cartesian vector from ``i`` to that image of ``j`` ``[B, 3]``.

    Squared distances throughout (a square root is monotonic: the nearest is the root of the
    smallest square; a bond is tested on its own root, so the threshold reads lengths exactly as
    written); the 27 nearest images give an upper bound of each atom's nearest distance, and only
    the images beyond them that can lie within :data:`SHELL` × that bound are added (those within
    reach along the reduced axes whose shift is not longer than the cutoff plus the longest offset)."""
    cart = frac @ lattice
    red = _lll(lattice)
    frac = np.linalg.solve(red.T, cart.T).T  # positions in the reduced basis
    n = len(frac)
    recip = np.linalg.norm(np.linalg.inv(red), axis=0)  # |b_i|: 1 / spacing of the lattice planes i
    inner = _images((1, 1, 1)) @ red
    nearest = np.empty(n)
    bonds_i, bonds_j, lengths, vecs = [], [], [], []
    for s in range(0, n, chunk):
        rows = slice(s, min(s + chunk, n))
        df = frac[None, :, :] - frac[rows, None, :]
        df -= np.round(df)  # each fractional offset in [-0.5, 0.5]
        x = df @ red  # [r, N, 3] Cartesian minimum-image offsets
        d2 = _squared(x, inner)
        shifts = inner
        # an upper bound of each atom's nearest distance from the nearest images, then every image
        # that can lie within shell x that bound (offsets within +-1/2 along each reduced axis)
        cutoff = shell * math.sqrt(float(d2.min(axis=(1, 2)).max())) * (1.0 + 1e-9)
        reach = np.ceil(cutoff * recip + 0.5).astype(int)
        if (reach > 1).any():
            far = _images(tuple(int(r) for r in reach))[27:] @ red
            # an image whose shift is longer than the cutoff plus the longest offset cannot reach
            # (triangle inequality; a hair loose for rounding)
            longest = math.sqrt(float(np.einsum("abk,abk->ab", x, x).max()))
            far = far[np.linalg.norm(far, axis=1) <= (cutoff + longest) * (1.0 + 1e-9)]
            if len(far):
                d2 = np.concatenate([d2, _squared(x, far)], axis=2)
                shifts = np.concatenate([inner, far])
        near = np.sqrt(d2.min(axis=(1, 2)))
        nearest[rows] = near
        limit = shell * near * (1.0 + 1e-9)
        i, j, k = np.nonzero(d2 <= (limit * (1.0 + 1e-12))[:, None, None] ** 2)  # candidates (a hair loose)
        d = np.sqrt(d2[i, j, k])
        keep = d <= limit[i]
        bonds_i.append(i[keep] + s)
        bonds_j.append(j[keep])
        lengths.append(d[keep])
        if vectors:
            vecs.append(x[i[keep], j[keep]] + shifts[k[keep]])
    out = (nearest, np.concatenate(bonds_i), np.concatenate(bonds_j), np.concatenate(lengths))
    return (*out, np.concatenate(vecs)) if vectors else out


def _weighted_stats(values: np.ndarray, weights: np.ndarray) -> list[float]:
    """Weighted mean, (population) standard deviation, min and max of ``values``."""
    mean = float(weights @ values)
    return [mean, math.sqrt(max(float(weights @ (values - mean) ** 2), 0.0)), float(values.min()), float(values.max())]


def _site_properties(cell: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per site: mass (u), atomic radius (Å) and Pauling electronegativity, occupancy-weighted
    over a disordered site's elements (``descriptors.element_table``'s values, missing ones its means)."""
    from .elements import DESCRIPTORS, element_table

    index, _, raw = element_table()
    per_type: dict[int, tuple[float, float, float]] = {}
    for t in set(cell.types):
        species = cell.type_species.get(t)
        if not species:
            raise StructureError(f"atom type {t} has no element; geometric features need the species of every site")
        if "X" in species:
            raise StructureError("the dummy species X has no mass; geometric features need real elements")
        unknown = sorted(e for e in species if e not in index)
        if unknown:
            raise StructureError(f"no element data for {', '.join(unknown)}; geometric features need known elements")
        occ = np.asarray(list(species.values()), dtype=np.float64)
        occ = occ / occ.sum()
        rows = [index[e] for e in species]
        per_type[t] = (float(occ @ [_mass(e) for e in species]),
                       float(occ @ raw[rows, DESCRIPTORS.index("radius")]),
                       float(occ @ raw[rows, DESCRIPTORS.index("electronegativity")]))
    props = np.asarray([per_type[t] for t in cell.types], dtype=np.float64)
    return props[:, 0], props[:, 1], props[:, 2]


def _bond_features(mass: np.ndarray, radius: np.ndarray, en: np.ndarray, volume: float, nearest: np.ndarray,
                   bond_i: np.ndarray, bond_j: np.ndarray, length: np.ndarray) -> list[float]:
    """The :data:`BOND_FEATURES` (layout 2) of a cell's sites and bonds.

    Per bond ``i``-``j`` (each neighbour in ``i``'s first shell; an atom's bonds weigh ``1 / its
    coordination`` so that every atom counts once): log length, log reduced mass, strain
    log(length / (r_i + r_j)) with the elements' atomic radii, electronegativity difference and a
    frequency proxy −½ log μ − 3/2 log length (Badger-like: stiffness ∝ length⁻³); their mean,
    spread, min and max. Then the log packing fraction Σ 4/3 π r³ / V and the quantiles
    (0, ¼, ½, ¾, 1; inverted CDF, the same for any cell of the crystal) of the per-atom proxy
    −½ log m − 3/2 log d_nn."""
    n = len(mass)
    coordination = np.bincount(bond_i, minlength=n).astype(np.float64)
    w = 1.0 / (n * coordination[bond_i])
    log_mu = np.log(mass[bond_i] * mass[bond_j] / (mass[bond_i] + mass[bond_j]))
    log_d = np.log(length)
    out: list[float] = []
    for q in (log_d, log_mu, np.log(length / (radius[bond_i] + radius[bond_j])),
              np.abs(en[bond_i] - en[bond_j]), -0.5 * log_mu - 1.5 * log_d):
        out += _weighted_stats(q, w)
    out.append(math.log(float((4.0 / 3.0 * math.pi * radius ** 3).sum()) / volume))
    site = -0.5 * np.log(mass) - 1.5 * np.log(nearest)
    out += _quantiles(site)
    return out


def _quantiles(values: np.ndarray, ps: Sequence[float] = _SITE_QUANTILES) -> list[float]:
    """``np.quantile(values, ps, method="inverted_cdf")``: the sorted values at ``ceil(n p) - 1`` (at
    least 0; ``n p`` read a hair low, so that a product that should be whole is not rounded up), without
    its overhead. The same for any repetition of the values (a supercell's atoms)."""
    v = np.sort(values)
    return [float(v[max(math.ceil(len(v) * p - 1e-9) - 1, 0)]) for p in ps]


#: A spring to every neighbour within this factor of an atom's nearest distance (layout 3) ...
SECOND_SHELL = 1.6
#: ... with this fraction of a first-shell spring's stiffness beyond :data:`SHELL` ×.
SECOND_STIFFNESS = 0.1
#: Sideways (transverse) stiffness of a spring, as a fraction of its stretching stiffness.
TRANSVERSE = 0.3
#: Tolerance (Å) of the primitive-cell search of layout 3: a translation of the cell that maps every
#: atom onto one of its kind within this distance is a lattice translation (loose, so that the noise of a
#: relaxed structure does not hide that a cell is a supercell).
PRIMITIVE_TOLERANCE = 0.1
#: The unshifted 2x2x2 q-mesh (Gamma and the 7 zone-boundary points q = G/2): the same 8 points for any
#: basis of the primitive lattice (the cosets of half the reciprocal lattice), and real force constants.
_MESH = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)][1:])
#: Primitive cells of at most this many atoms also read the zone boundary (:data:`_MESH`).
MESH_ATOMS = 12
_FLOOR = 1e-3  # frequencies and velocities below this x the rms frequency count as floppy (logs floored there)


def _fibonacci(n: int) -> np.ndarray:
    k = np.arange(n) + 0.5
    phi, theta = np.arccos(1 - 2 * k / n), np.pi * (1 + 5**0.5) * k
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)


def _cube_orbit(points: np.ndarray) -> np.ndarray:
    """``points`` and their images under the 48 signed permutations of the axes."""
    out = [points[:, list(p)] * np.array(sg) for p in itertools.permutations(range(3))
           for sg in itertools.product((1.0, -1.0), repeat=3)]
    return np.concatenate(out)


#: Directions of the sound-velocity average in the frame of the reduced primitive basis: a Fibonacci
#: sphere and its images under the 48 signed permutations of the frame's axes (so that a sign or order
#: the reduction leaves open does not change the set).
_DIRECTIONS = _cube_orbit(_fibonacci(8))


def _row_basis(rows: np.ndarray) -> np.ndarray:
    """A basis (3 rows) of the integer lattice spanned by the integer ``rows`` ``[k, 3]`` (full rank):
    Euclid's algorithm column by column (a Hermite normal form up to signs)."""
    left = [[int(x) for x in r] for r in rows]
    basis = []
    for col in range(3):
        while True:
            nz = [r for r in left if r[col]]
            if len(nz) <= 1:
                break
            pivot = min(nz, key=lambda r: abs(r[col]))
            for r in nz:
                if r is not pivot:
                    q = r[col] // pivot[col]
                    for c in range(3):
                        r[c] -= q * pivot[c]
        nz = [r for r in left if r[col]]
        basis.append(nz[0])
        left = [r for r in left if r is not nz[0]]
    return np.array(basis, dtype=np.int64)


def _primitive(lattice: np.ndarray, frac: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The primitive cell of a cell: its lattice ``[3, 3]`` (rows, any basis) and the index of one atom
    of each orbit of the lattice translations (the cell's own atoms where it is primitive already).

    The translations are those ``x_j - x_0`` (``0`` the first atom of the rarest type, ``j`` the
    others of that type) that map every atom onto an atom of its type within
    :data:`PRIMITIVE_TOLERANCE` (a one-to-one map); the primitive lattice is spanned by them and the cell."""
    n = len(frac)
    kinds, counts = np.unique(types, return_counts=True)
    rare = np.flatnonzero(types == kinds[np.argmin(counts)])
    if len(rare) == 1:
        return lattice, np.arange(n)
    groups = [rare] + [np.flatnonzero(types == t) for t in kinds if t != types[rare[0]]]
    shifts = frac[rare[1:]] - frac[rare[0]]
    # a translation must first map the rarest kind onto itself (candidates in blocks of bounded memory)
    step = max(1, 2_000_000 // len(rare) ** 2)
    ok = np.empty(len(shifts), dtype=bool)
    for k in range(0, len(shifts), step):
        d = frac[rare][None, None, :, :] - (frac[rare][None, :, None, :] + shifts[k:k + step, None, None, :])
        d -= np.round(d)
        ok[k:k + step] = (np.linalg.norm(d @ lattice, axis=3).min(axis=2) <= PRIMITIVE_TOLERANCE).all(axis=1)
    valid, maps = [], []
    for j in rare[1:][ok]:
        t = frac[j] - frac[rare[0]]
        image = np.empty(n, dtype=np.int64)
        for g in groups:
            d = frac[g][None, :, :] - (frac[g] + t)[:, None, :]
            d -= np.round(d)
            dist = np.linalg.norm(d @ lattice, axis=2)  # [from, to]
            best = dist.argmin(axis=1)
            if dist[np.arange(len(g)), best].max() > PRIMITIVE_TOLERANCE or len(set(best.tolist())) != len(g):
                break
            image[g] = g[best]
        else:
            valid.append(t - np.floor(t + 1e-9))
            maps.append(image)
    if not valid:
        return lattice, np.arange(n)
    order = len(valid) + 1
    gens = np.vstack([order * np.eye(3), np.round(order * np.asarray(valid))]).astype(np.int64)
    basis = _row_basis(gens) / order
    prim = basis @ lattice
    # one atom per orbit: an atom is kept unless a translation maps a smaller index onto it
    keep = np.ones(n, dtype=bool)
    for image in maps:  # the group acts transitively on an orbit: its smallest index is kept
        keep[image[image > np.arange(n)]] = False
    if keep.sum() * order != n or not math.isclose(abs(np.linalg.det(basis)), 1.0 / order, rel_tol=1e-6):
        return lattice, np.arange(n)  # not a group within the tolerance (a much distorted cell): the cell itself
    return prim, np.flatnonzero(keep)


def _eigvalsh3(a: np.ndarray) -> np.ndarray:
    """Eigenvalues ``[N, 3]`` of symmetric 3x3 matrices ``a`` ``[N, 3, 3]`` in closed form (the
    trigonometric solution of the characteristic cubic; far cheaper than N LAPACK calls)."""
    q = np.trace(a, axis1=1, axis2=2) / 3.0
    off = a[:, 0, 1] ** 2 + a[:, 0, 2] ** 2 + a[:, 1, 2] ** 2
    d = a - q[:, None, None] * np.eye(3)
    p = np.sqrt((d[:, 0, 0] ** 2 + d[:, 1, 1] ** 2 + d[:, 2, 2] ** 2 + 2.0 * off) / 6.0)
    safe = np.where(p > 0, p, 1.0)
    b = d / safe[:, None, None]
    det = (b[:, 0, 0] * (b[:, 1, 1] * b[:, 2, 2] - b[:, 1, 2] * b[:, 2, 1])
           - b[:, 0, 1] * (b[:, 1, 0] * b[:, 2, 2] - b[:, 1, 2] * b[:, 2, 0])
           + b[:, 0, 2] * (b[:, 1, 0] * b[:, 2, 1] - b[:, 1, 1] * b[:, 2, 0]))
    r = np.clip(det / 2.0, -1.0, 1.0)
    phi = np.arccos(r) / 3.0
    big = q + 2.0 * p * np.cos(phi)
    small = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    return np.stack([small, 3.0 * q - big - small, big], axis=1)


def _frame(lattice: np.ndarray) -> np.ndarray:
    """An orthonormal frame (columns) fixed to the lattice, not to the cell or its orientation: the
    Niggli-reduced basis (spglib; LLL where that fails), a along x, b in the xy plane."""
    import spglib

    try:
        red = spglib.niggli_reduce(lattice)
    except Exception:  # spglib's error types vary across versions
        red = None
    red = _lll(lattice) if red is None else np.asarray(red, dtype=np.float64)
    q, r = np.linalg.qr(red.T)
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]


def _spring_features(lattice: np.ndarray, frac: np.ndarray, types: np.ndarray, site_mass: np.ndarray,
                     neighbours: tuple[np.ndarray, ...] | None = None) -> list[float]:
    """The :data:`SPRING_FEATURES` (layout 3) of a cell (atom types ``types``, masses ``site_mass`` in
    u), read on its primitive cell (:func:`_primitive`; the spectrum and the elastic tensor:
    :func:`_spring_network`).

    A Born-von Kármán network: each atom ``i`` puts a spring on every neighbour within
    :data:`SECOND_SHELL` × its nearest distance d (stiffness d⁻³, Badger-like; :data:`SECOND_STIFFNESS`
    of that beyond :data:`SHELL` × the nearest), half of it from each end, resisting stretch (k) and
    sideways motion (:data:`TRANSVERSE` k). Frequencies (units of √(Å⁻³/u), an unknown overall scale:
    the logs carry it as an offset) at Gamma (the 3 acoustic zeros left out) and, for a primitive
    cell of at most :data:`MESH_ATOMS` atoms, the 7 zone-boundary points G/2: log mean, mean log,
    log rms (the Brillouin-zone average ⟨ω²⟩^½ = √(Σ_i Tr Φ_ii / m_i / 3n), exact), log of the
    10/25/90 % quantiles, the fraction of floppy modes, log ⟨ω⁻²⟩. Sound
    velocities from the relaxed-ion long-wave limit (the network's elastic tensor with the
    sublattices relaxed, then Christoffel's equation) along 384 directions fixed to the lattice
    (:func:`_frame`, :data:`_DIRECTIONS`): log of their Debye
    average ⟨v⁻³⟩^(-1/3), log of the slowest, and log v_D + ⅓ log(n/V) (a Debye temperature up to a
    constant). Invariant under the choice of cell and its orientation: the mesh is the same for any basis
    of the primitive lattice, the directions are fixed to its reduced basis. ``neighbours``: the
    cell's own :func:`_neighbours` within :data:`SECOND_SHELL` (with vectors), used where it is primitive."""
    w2, rms, c, total_mass, lat, n = _spring_network(lattice, frac, types, site_mass, neighbours)
    om = np.sqrt(np.clip(w2, 0.0, None))
    floppy = float(np.mean(om < _FLOOR * rms))
    om = np.maximum(om, _FLOOR * rms)
    frame = _frame(lat)
    vel = _sound_velocities(c, total_mass, _DIRECTIONS @ frame.T).ravel()
    vel = np.maximum(vel, _FLOOR * rms)
    vd = float(np.mean(vel**-3.0)) ** (-1.0 / 3.0)
    volume = abs(float(np.linalg.det(lat)))
    return [math.log(float(om.mean())), float(np.log(om).mean()), math.log(rms),
            *(math.log(x) for x in _quantiles(om, (0.1, 0.25, 0.9))), floppy,
            math.log(float(np.mean(om**-2.0))), math.log(vd), math.log(float(vel.min())),
            math.log(vd) + math.log(n / volume) / 3.0]


def _sound_velocities(c: np.ndarray, total_mass: float, directions: np.ndarray) -> np.ndarray:
    """``[N, 3]`` sound velocities (ascending) along the unit ``directions`` ``[N, 3]`` (Cartesian) of
    a lattice with elastic quadratic form ``c`` ``[3, 3, 3, 3]`` (``C_adce``: energy per cell
    ½ Σ C_adce G_ad G_ce of a displacement gradient G) and mass ``total_mass`` per cell: Christoffel's
    equation M v² p = Γ p, Γ_ac = Σ C_adce n_d n_e."""
    pairs = (directions[:, :, None] * directions[:, None, :]).reshape(-1, 9)  # n_d n_e
    gamma = (pairs @ c.transpose(1, 3, 0, 2).reshape(9, 9)).reshape(-1, 3, 3)
    return np.sqrt(np.clip(_eigvalsh3(gamma), 0.0, None) / total_mass)


def _per_atom(index: np.ndarray, blocks: np.ndarray, n: int) -> np.ndarray:
    """``out[i] = Σ_b blocks[b]`` over the bonds ``b`` with ``index[b] == i`` (``[n, *blocks.shape[1:]]``)."""
    size = int(np.prod(blocks.shape[1:]))
    slots = (index[:, None] * size + np.arange(size)).ravel()
    return np.bincount(slots, blocks.reshape(-1), n * size).reshape(n, *blocks.shape[1:])


def _spring_network(lattice: np.ndarray, frac: np.ndarray, types: np.ndarray, site_mass: np.ndarray,
                    neighbours: tuple[np.ndarray, ...] | None = None
                    ) -> tuple[np.ndarray, float, np.ndarray, float, np.ndarray, int]:
    """The spring network of :func:`_spring_features` on the primitive cell: the squared frequencies
    it samples (Gamma without the 3 acoustic zeros; the zone boundary for small cells), the rms
    frequency over the Brillouin zone (the on-site force constants' trace), the relaxed-ion elastic
    quadratic form ``C_adce`` ``[3, 3, 3, 3]`` (energy per primitive cell; Cartesian axes of the
    given cell), the mass of the primitive cell, its lattice and its number of atoms."""
    lat, rep = _primitive(lattice, frac, types)
    m = site_mass[rep]
    n = len(rep)
    if neighbours is not None and n == len(frac):
        pos = frac
        nearest, ci, cj, length, vec = neighbours
    else:
        pos = (frac[rep] @ lattice) @ np.linalg.inv(lat)
        pos -= np.floor(pos)
        nearest, ci, cj, length, vec = _neighbours(lat, pos, shell=SECOND_SHELL, vectors=True)
    cart = pos @ lat
    cells = np.round((vec - (cart[cj] - cart[ci])) @ np.linalg.inv(lat)).astype(np.int64)  # lattice part of each bond
    k = np.where(length <= SHELL * nearest[ci] * (1.0 + 1e-9), 1.0, SECOND_STIFFNESS) * length**-3.0
    e = vec / length[:, None]
    # each directed bond i -> j a half spring K' = k ((1 - t) e e^T + t I) / 2, energy (1/2) D^T K' D
    # with D = u_j(image) - u_i: force constants K' on i and on j, -K' e^{iq.R} between them
    kb = 0.5 * k[:, None, None] * ((1.0 - TRANSVERSE) * e[:, :, None] * e[:, None, :] + TRANSVERSE * np.eye(3))
    flat = kb.reshape(-1, 9)
    onsite = _per_atom(ci, kb, n) + _per_atom(cj, kb, n)
    pair = ((ci * n + cj)[:, None] * 9 + np.arange(9)).ravel()
    diagonal = np.zeros((n, 3, n, 3))
    diagonal[np.arange(n), :, np.arange(n), :] = onsite
    diagonal = diagonal.reshape(3 * n, 3 * n)
    inv = np.repeat(1.0 / np.sqrt(m), 3)
    weight = inv[:, None] * inv[None, :]

    def dynamical(sign: np.ndarray) -> np.ndarray:
        """Mass-weighted ``[3n, 3n]`` dynamical matrix at q = G/2 (bond phases ``sign`` = ±1; Gamma: all 1)."""
        t = np.bincount(pair, (flat * sign[:, None]).ravel(), 9 * n * n).reshape(n, n, 3, 3)
        t = t.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
        return (diagonal - t - t.T) * weight

    gamma_point = dynamical(np.ones(len(ci)))
    lam = np.linalg.eigvalsh(gamma_point)
    w2 = lam[3:]
    if n <= MESH_ATOMS:  # a small cell: the zone boundary too (a large one has enough modes at Gamma)
        signs = 1.0 - 2.0 * ((cells @ _MESH.T) % 2)  # [B, 7]
        w2 = np.concatenate([w2, np.linalg.eigvalsh(np.stack([dynamical(sg) for sg in signs.T])).ravel()])
    rms = math.sqrt(float(np.einsum("iaa,i->", onsite, 1.0 / m)) / (3 * n))
    # long waves: energy (1/2) g^T C g of a displacement gradient g = G (9 numbers G_ad), the
    # sublattices relaxed: C = Hgg - F D^+ F^T with F the mass-weighted gradient-displacement block
    a = np.einsum("bac,bd->bacd", kb, vec)  # K'_ac r_d
    hgg = np.einsum("bacd,be->adce", a, vec).reshape(9, 9)
    f = _per_atom(cj, a, n) - _per_atom(ci, a, n)  # [j, a, c, d]
    f = f.transpose(1, 3, 0, 2).reshape(9, 3 * n) * inv[None, :]
    tiny = 1e-9 * max(float(lam.max()), 1e-300)
    if int((lam <= tiny).sum()) == 3:  # connected: D plus the translations' projector is invertible
        shift = np.sqrt(m)[:, None, None] * np.eye(3)[None]  # [n, 3, 3]: the 3 translations, mass-weighted
        shift = shift.reshape(3 * n, 3) / math.sqrt(float(m.sum()))
        scale = float(lam.max()) if lam.max() > 0 else 1.0  # one atom: nothing to relax (f = 0)
        relaxed = np.linalg.solve(gamma_point + scale * shift @ shift.T, f.T)
    else:  # floppy parts: the pseudo-inverse
        lam, modes = np.linalg.eigh(gamma_point)
        good = lam > tiny
        relaxed = modes[:, good] @ ((modes[:, good].T @ f.T) / lam[good, None])
    return w2, rms, (hgg - f @ relaxed).reshape(3, 3, 3, 3), float(m.sum()), lat, n


def raw_geometric_features(structure: Any) -> np.ndarray:
    """The :data:`N_GEOMETRIC_FEATURES` features of :data:`ALL_GEOMETRIC_FEATURES` (float64,
    unstandardised) of ``structure``: anything :func:`cloudphys.scope.structure.structure_cell`
    reads (pymatgen ``Structure``, its ``as_dict()``, ASE ``Atoms``, a file path). Raises
    :class:`~cloudphys.errors.StructureError` for a cell without volume, overlapping atoms, a
    dummy species or an element unknown to the descriptor tables."""
    from .structure import structure_cell

    cell = structure_cell(structure, allow_disordered=True)  # a mixed site: its elements' occupancy-weighted mean
    lattice = np.asarray(cell.lattice, dtype=np.float64).reshape(3, 3)
    frac = np.asarray(cell.positions, dtype=np.float64).reshape(-1, 3)
    n = len(frac)
    volume = abs(float(np.linalg.det(lattice)))
    if not (math.isfinite(volume) and volume > 1e-6 * max(1.0, float(np.abs(lattice).max())) ** 3):
        raise StructureError(f"the cell has no volume ({volume:.3g} Å³); geometric features need a 3D cell")
    site_mass, radius, en = _site_properties(cell)
    total = sum(float(a) for a in cell.amounts.values())
    mass = sum(float(a) * _mass(el) for el, a in cell.amounts.items()) / total
    wide = _neighbours(lattice, frac, shell=SECOND_SHELL, vectors=True)  # layout 3's springs; layout 2's first shell
    nearest = wide[0]
    first = wide[3] <= SHELL * nearest[wide[1]] * (1.0 + 1e-9)
    bond_i, bond_j, length = wide[1][first], wide[2][first], wide[3][first]
    if float(nearest.min()) < 0.1:
        raise StructureError(f"two atoms are {float(nearest.min()):.3g} Å apart; the structure overlaps itself")
    coordination = np.bincount(bond_i, minlength=n)
    v = math.log(volume / n)
    lm = math.log(mass)
    nn_mean = float(nearest.mean())
    base = [v, mass / (volume / n), nn_mean, float(nearest.min()), float(nearest.std()),
            float(coordination.mean()), lm, v / 3.0 - 0.5 * lm, math.log(nn_mean) - 0.5 * lm]
    return np.array(base + _bond_features(site_mass, radius, en, volume, nearest, bond_i, bond_j, length)
                    + _spring_features(lattice, frac, np.asarray(cell.types), site_mass, wide), dtype=np.float64)


def standardise(raw: np.ndarray) -> np.ndarray:
    """``(raw - GEOMETRY_MEAN) / GEOMETRY_STD`` (rows of raw features; NaN rows stay NaN)."""
    return (np.asarray(raw, dtype=np.float64) - GEOMETRY_MEAN) / GEOMETRY_STD


def geometric_features(structure: Any) -> np.ndarray:
    """The standardised geometric features ``[N_GEOMETRIC_FEATURES]`` (float64) of one structure,
    every layout's (see the module; layout ``k`` reads the first ``n_geometric_features(k)``)."""
    return standardise(raw_geometric_features(structure))


def geometry_rows(structures: Sequence[Any]) -> np.ndarray:
    """``[N, N_GEOMETRIC_FEATURES]`` standardised features of ``structures``; a NaN row where one is ``None``."""
    out = np.full((len(structures), N_GEOMETRIC_FEATURES), np.nan)
    for k, s in enumerate(structures):
        if s is not None:
            out[k] = geometric_features(s)
    return out


#: What a model that reads geometric features says of an item without a structure.
NEEDS_STRUCTURE = ("this model reads geometric inputs (encoder.geometric_features); give a structure, "
                   "not a bare SCOPE string")


def reads_geometry(model: Any) -> bool:
    """Whether ``model`` (a :class:`~cloudphys.modeling.ScopePhysicsModel`, an encoder or a user
    :class:`~cloudphys.models.api.Model`) reads geometric features (``encoder.geometric_features``)."""
    for attr in ("core", "encoder"):
        inner = getattr(model, attr, None)
        if inner is not None and inner is not model:
            return reads_geometry(inner)
    members = getattr(model, "members", None)
    if members is not None and len(members):
        return reads_geometry(members[0])
    return geometry_layout(getattr(getattr(model, "config", None), "geometric_features", False)) > 0
