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

They are invariant under the choice of cell: a supercell, a rotated or translated cell, a reordering
of the sites or another (reduced or not) basis of the same lattice give the same values (up to
float rounding). Neighbours are searched in all periodic images that can lie within the cutoff
(the image range follows from the reciprocal lattice), so skewed cells are handled too.

:func:`standardise` maps them to O(1) numbers with fixed constants (:data:`GEOMETRY_MEAN`,
:data:`GEOMETRY_STD`) -- what the latent layer of a model with ``encoder.geometric_features: true``
reads after the composition features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import StructureError

__all__ = [
    "GEOMETRIC_FEATURES",
    "GEOMETRY_MEAN",
    "GEOMETRY_STD",
    "N_GEOMETRIC_FEATURES",
    "geometric_features",
    "geometry_rows",
    "raw_geometric_features",
    "reads_geometry",
    "standardise",
]

GEOMETRIC_FEATURES = (
    "log_volume_per_atom", "density", "nn_mean", "nn_min", "nn_std", "coordination", "log_mass",
    "lindemann_volume", "lindemann_nn",
)
N_GEOMETRIC_FEATURES = len(GEOMETRIC_FEATURES)

#: Neighbours of an atom within this factor of its nearest distance count towards its coordination.
SHELL = 1.2

#: Mean and standard deviation of each raw feature over the 4,122 stable ``train`` materials of
#: phonondb-thermo (``load_phonondb_thermo("train", stable=True)``'s ids, their ``structure`` in
#: ``materials.jsonl.gz``; ``python benchmarks/bench_geometry.py --constants`` prints them). Fixed
#: here so that a saved model reads the same numbers forever; never refitted.
GEOMETRY_MEAN = np.array([2.904566, 3.049097, 2.287796, 2.119486, 0.233068, 4.453654, 3.947546, -1.005584, -1.165868])
GEOMETRY_STD = np.array([0.400265, 1.129812, 0.445606, 0.480208, 0.175892, 1.724392, 0.587742, 0.212805, 0.189205])


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


def _distances(red: np.ndarray, frac: np.ndarray, reach: np.ndarray, rows: slice) -> np.ndarray:
    """``[len(rows), N * I]`` distances (Å) from the atoms ``rows`` to every atom in the images
    ``-reach..reach`` (per axis) around the minimum-image offset; the atom itself is ``inf``."""
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1).reshape(-1, 3)
    df = frac[None, :, :] - frac[rows, None, :]
    df -= np.round(df)  # each fractional offset in [-0.5, 0.5]
    diff = (df[:, :, None, :] + grid[None, None, :, :]) @ red  # [r, N, I, 3]
    d = np.sqrt(np.einsum("abik,abik->abi", diff, diff)).reshape(diff.shape[0], -1)
    d[d < 1e-8] = np.inf  # the atom itself (an atom on top of another is refused by the caller)
    return d


def _nearest_and_coordination(lattice: np.ndarray, frac: np.ndarray, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per atom: the nearest-neighbour distance (Å, any periodic image, the atom's own images
    included) and the number of neighbours within :data:`SHELL` × that distance."""
    cart = frac @ lattice
    red = _lll(lattice)
    frac = np.linalg.solve(red.T, cart.T).T  # positions in the reduced basis
    n = len(frac)
    recip = np.linalg.norm(np.linalg.inv(red), axis=0)  # |b_i|: 1 / spacing of the lattice planes i
    nearest = np.empty(n)
    coordination = np.empty(n)
    for s in range(0, n, chunk):
        rows = slice(s, min(s + chunk, n))
        # an upper bound of each atom's nearest distance from the nearest images, then every image
        # that can lie within SHELL x that bound (offsets within +-1/2 along each reduced axis)
        bound = _distances(red, frac, np.ones(3, dtype=int), rows).min(1)
        cutoff = SHELL * float(bound.max()) * (1.0 + 1e-9)
        reach = np.ceil(cutoff * recip + 0.5).astype(int)
        d = _distances(red, frac, reach, rows)
        near = d.min(1)
        nearest[rows] = near
        coordination[rows] = (d <= SHELL * near[:, None] * (1.0 + 1e-9)).sum(1)
    return nearest, coordination


def raw_geometric_features(structure: Any) -> np.ndarray:
    """The nine features of :data:`GEOMETRIC_FEATURES` (float64, unstandardised) of ``structure``:
    anything :func:`cloudphys.scope.structure.structure_cell` reads (pymatgen ``Structure``, its
    ``as_dict()``, ASE ``Atoms``, a file path). Raises :class:`~cloudphys.errors.StructureError`
    for a cell without volume, overlapping atoms or a dummy species."""
    from ..scope.structure import structure_cell

    cell = structure_cell(structure)
    lattice = np.asarray(cell.lattice, dtype=np.float64).reshape(3, 3)
    frac = np.asarray(cell.positions, dtype=np.float64).reshape(-1, 3)
    n = len(frac)
    volume = abs(float(np.linalg.det(lattice)))
    if not (math.isfinite(volume) and volume > 1e-6 * max(1.0, float(np.abs(lattice).max())) ** 3):
        raise StructureError(f"the cell has no volume ({volume:.3g} Å³); geometric features need a 3D cell")
    total = sum(float(a) for a in cell.amounts.values())
    mass = sum(float(a) * _mass(el) for el, a in cell.amounts.items()) / total
    nearest, coordination = _nearest_and_coordination(lattice, frac)
    if float(nearest.min()) < 0.1:
        raise StructureError(f"two atoms are {float(nearest.min()):.3g} Å apart; the structure overlaps itself")
    v = math.log(volume / n)
    lm = math.log(mass)
    nn_mean = float(nearest.mean())
    return np.array([v, mass / (volume / n), nn_mean, float(nearest.min()), float(nearest.std()),
                     float(coordination.mean()), lm, v / 3.0 - 0.5 * lm, math.log(nn_mean) - 0.5 * lm],
                    dtype=np.float64)


def standardise(raw: np.ndarray) -> np.ndarray:
    """``(raw - GEOMETRY_MEAN) / GEOMETRY_STD`` (rows of raw features; NaN rows stay NaN)."""
    return (np.asarray(raw, dtype=np.float64) - GEOMETRY_MEAN) / GEOMETRY_STD


def geometric_features(structure: Any) -> np.ndarray:
    """The standardised geometric features ``[9]`` (float64) of one structure (see the module)."""
    return standardise(raw_geometric_features(structure))


def geometry_rows(structures: Sequence[Any]) -> np.ndarray:
    """``[N, 9]`` standardised features of ``structures``; a NaN row where one is ``None``."""
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
    return bool(getattr(getattr(model, "config", None), "geometric_features", False))
