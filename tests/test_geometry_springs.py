"""Layout 3 of the geometric features (issue 20 §3): the spring network's spectrum and sound velocities,
against a plain dynamical matrix written out here, against values by hand, and their invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pymatgen")
from pymatgen.core import Element, Lattice, Structure

from cloudphys.scope.geometry import (
    ALL_GEOMETRIC_FEATURES,
    GEOMETRY_LAYOUTS,
    SECOND_SHELL,
    SECOND_STIFFNESS,
    SHELL,
    SPRING_FEATURES,
    TRANSVERSE,
    _primitive,
    _sound_velocities,
    _spring_network,
    raw_geometric_features,
)
from cloudphys.scope.structure import structure_cell


def _nacl(conventional: bool = True) -> Structure:
    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return s if conventional else s.get_primitive_structure()


def _random(seed: int) -> Structure:
    """A triclinic 5-atom crystal (atoms at least 1.5 Å apart): every sublattice relaxes under strain."""
    rng = np.random.default_rng(seed)
    while True:
        lat = np.diag(rng.uniform(3.5, 6.0, 3)) + np.triu(rng.uniform(-2.0, 2.0, (3, 3)), 1)
        s = Structure(lat, ["Mg", "O", "O", "Si", "Fe"], rng.random((5, 3)))
        if s.distance_matrix[np.triu_indices(5, 1)].min() > 1.5:
            return s


def _network(s: Structure) -> tuple[np.ndarray, float, np.ndarray, float, np.ndarray, int]:
    cell = structure_cell(s)
    mass = np.array([float(Element(sp.symbol).atomic_mass) for sp in s.species])
    return _spring_network(np.asarray(cell.lattice, float), np.asarray(cell.positions, float),
                           np.asarray(cell.types), mass)


def _reference_dynamical(s: Structure):
    """A plain Born-von Kármán dynamical matrix D(q) (Bloch phases e^{iq.r} on every bond) of the
    network the module describes, on pymatgen's own primitive cell and neighbour list."""
    p = s.get_primitive_structure()
    n = len(p)
    mass = np.array([float(Element(sp.symbol).atomic_mass) for sp in p.species])
    ci, cj, img, dist = p.get_neighbor_list(r=8.0)
    nearest = np.full(n, np.inf)
    np.minimum.at(nearest, ci, dist)
    keep = dist <= SECOND_SHELL * nearest[ci] * (1 + 1e-9)
    ci, cj, img, dist = ci[keep], cj[keep], img[keep], dist[keep]
    vec = p.cart_coords[cj] + img @ p.lattice.matrix - p.cart_coords[ci]
    stiff = np.where(dist <= SHELL * nearest[ci] * (1 + 1e-9), 1.0, SECOND_STIFFNESS) * dist**-3.0

    def matrix(q: np.ndarray) -> np.ndarray:
        d = np.zeros((3 * n, 3 * n), dtype=complex)
        for i, j, r, k in zip(ci, cj, vec, stiff):
            e = r / np.linalg.norm(r)
            half = 0.5 * k * ((1 - TRANSVERSE) * np.outer(e, e) + TRANSVERSE * np.eye(3))
            phase = np.exp(1j * (q @ r))
            d[3 * i:3 * i + 3, 3 * i:3 * i + 3] += half
            d[3 * j:3 * j + 3, 3 * j:3 * j + 3] += half
            d[3 * i:3 * i + 3, 3 * j:3 * j + 3] -= half * phase
            d[3 * j:3 * j + 3, 3 * i:3 * i + 3] -= half * np.conj(phase)
        w = np.repeat(1 / np.sqrt(mass), 3)
        return d * w[:, None] * w[None, :]

    return p, matrix


CASES = {"NaCl conventional": lambda: _nacl(True), "NaCl primitive": lambda: _nacl(False),
         "triclinic": lambda: _random(0), "triclinic 2": lambda: _random(3),
         "Cu fcc": lambda: Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]])}


def test_layout_3_reads_every_feature() -> None:
    assert GEOMETRY_LAYOUTS == {1: 9, 2: 35, 3: 46}
    assert ALL_GEOMETRIC_FEATURES[35:] == SPRING_FEATURES and len(SPRING_FEATURES) == 11


@pytest.mark.parametrize("case", sorted(CASES))
def test_spectrum_equals_a_plain_dynamical_matrix_at_gamma_and_the_zone_boundary(case: str) -> None:
    """The sampled squared frequencies (Gamma without the acoustic zeros, and the 7 points G/2) equal
    those of the plain complex dynamical matrix on pymatgen's primitive cell (another basis: the
    points G/2 are the same set for any basis), and the rms is the Brillouin-zone average ⟨ω²⟩^½ (the
    on-site trace), which these 8 points average exactly (no spring reaches twice a lattice vector)."""
    s = CASES[case]()
    w2, rms, *_ = _network(s)
    p, matrix = _reference_dynamical(s)
    rec = p.lattice.reciprocal_lattice.matrix
    mesh = [np.linalg.eigvalsh(matrix(0.5 * np.array([a, b, c]) @ rec))
            for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    ref = np.concatenate([mesh[0][3:], *mesh[1:]])
    np.testing.assert_allclose(np.sort(w2), np.sort(ref), rtol=1e-8, atol=1e-12)
    assert math.isclose(rms**2, float(np.mean(np.concatenate(mesh))), rel_tol=1e-9)


@pytest.mark.parametrize("case", sorted(CASES))
def test_sound_velocities_are_the_long_wave_limit_of_the_network(case: str) -> None:
    """Christoffel's equation on the relaxed-ion elastic tensor gives the slope of the three acoustic
    branches of the plain dynamical matrix at small q (internal relaxation of the sublattices
    included: the triclinic cells have it)."""
    s = CASES[case]()
    _, _, c, total_mass, _, _ = _network(s)
    _, matrix = _reference_dynamical(s)
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(4, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    q = 1e-4
    ref = np.array([np.sqrt(np.clip(np.linalg.eigvalsh(matrix(q * d))[:3], 0, None)) / q for d in directions])
    np.testing.assert_allclose(_sound_velocities(c, total_mass, directions), ref, rtol=2e-5)


def test_simple_cubic_velocities_by_hand() -> None:
    """One atom on a simple cubic lattice: 6 springs at a, 12 at a√2 (≤ 1.6 a, a tenth as stiff), none at
    a√3. Along x, Γ_xx = (1/a)[1 + s (4 + 4t)], Γ_yy = (1/a)[t + s (2 + 6t)], s = 0.1 / (2 · 2√2)."""
    a, m = 3.0, float(Element("Po").atomic_mass)
    _, _, c, total_mass, _, n = _network(Structure(Lattice.cubic(a), ["Po"], [[0, 0, 0]]))
    assert n == 1 and math.isclose(total_mass, m)
    t, s = TRANSVERSE, SECOND_STIFFNESS / (2 * 2 * math.sqrt(2))
    v = _sound_velocities(c, total_mass, np.array([[1.0, 0.0, 0.0]]))[0]
    transverse = math.sqrt((t + s * (2 + 6 * t)) / a / m)
    longitudinal = math.sqrt((1 + s * (4 + 4 * t)) / a / m)
    np.testing.assert_allclose(v, [transverse, transverse, longitudinal], rtol=1e-12)


def test_primitive_cell_of_supercells_and_a_relaxed_structure() -> None:
    lat, rep = _primitive(*_cell(_nacl(True)))
    assert len(rep) == 2 and math.isclose(abs(np.linalg.det(lat)), 5.64**3 / 4, rel_tol=1e-12)
    tri = _random(1)
    lat, rep = _primitive(*_cell(tri * [[1, 1, 0], [0, 2, 0], [0, 0, 1]]))
    assert len(rep) == 5 and math.isclose(abs(np.linalg.det(lat)), tri.volume, rel_tol=1e-9)
    lat, rep = _primitive(*_cell(tri))
    assert len(rep) == 5 and np.array_equal(lat, tri.lattice.matrix)
    rattled = _nacl(True).copy()
    rattled.perturb(0.02)  # what an ML-potential relaxation leaves: still a supercell of the rock-salt cell
    assert len(_primitive(*_cell(rattled))[1]) == 2


def _cell(s: Structure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cell = structure_cell(s)
    return np.asarray(cell.lattice, float), np.asarray(cell.positions, float), np.asarray(cell.types)


def test_isolated_molecules_are_floppy_and_finite() -> None:
    """N2 molecules 1.1 Å long, 8 Å apart: no spring between molecules (1.6 × 1.1 Å), so at the zone
    boundary each molecule's 3 translations are zero modes: 21 of the 45 sampled modes (Gamma: the 3
    internal ones; 7 points × 6); velocities floored, every feature finite."""
    s = Structure(Lattice.cubic(8.0), ["N", "N"], [[0, 0, 0], [1.1 / 8.0, 0, 0]])
    f = dict(zip(ALL_GEOMETRIC_FEATURES, raw_geometric_features(s)))
    assert math.isclose(f["spring_floppy_fraction"], 21 / 45)
    assert all(math.isfinite(v) for v in f.values())


@pytest.mark.parametrize("seed", range(3))
def test_rotated_cubic_crystal_gives_the_same_spring_features(seed: int) -> None:
    """A cubic crystal (its reduced basis has ties: the frame is fixed up to a symmetry of the
    directions) in a random orientation and cell."""
    rng = np.random.default_rng(seed)
    s = _nacl(True)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    moved = Structure(s.lattice.matrix @ q.T, s.species, s.cart_coords @ q.T, coords_are_cartesian=True)
    np.testing.assert_allclose(raw_geometric_features(moved)[35:], raw_geometric_features(_nacl(False))[35:],
                               rtol=1e-9, atol=1e-9)


def test_a_small_displacement_moves_the_features_a_little() -> None:
    """Continuity away from the shells' cutoffs: rock salt (neighbours at 1, 1.41 and 1.73 x the nearest
    distance, none near 1.2 or 1.6) rattled by 0.005 Å changes no spring feature by more than a few per
    cent of its spread. (At a cutoff a feature jumps: a neighbour enters or leaves a shell.)"""
    from cloudphys.scope.geometry import GEOMETRY_STD

    s = _nacl(True)
    rng = np.random.default_rng(0)
    moved = Structure(s.lattice, s.species, s.cart_coords + rng.normal(0.0, 0.005, (len(s), 3)),
                      coords_are_cartesian=True)
    change = np.abs(raw_geometric_features(moved) - raw_geometric_features(s))[35:] / GEOMETRY_STD[35:]
    assert 0 < change.max() < 0.05, change


def test_a_large_supercell_reads_as_its_primitive_cell() -> None:
    """216 atoms of one kind (a 3x3x3 diamond supercell: 215 candidate translations, checked in blocks
    of bounded memory) give the 2-atom primitive cell's features."""
    si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])
    big = si * (3, 3, 3)
    lat, rep = _primitive(*_cell(big))
    assert len(rep) == 2 and math.isclose(abs(np.linalg.det(lat)), 5.43**3 / 4, rel_tol=1e-9)
    np.testing.assert_allclose(raw_geometric_features(big), raw_geometric_features(si.get_primitive_structure()),
                               rtol=1e-9, atol=1e-9)
