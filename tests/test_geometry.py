"""Geometric features of a structure (issue 20 §3): values, invariances, the opt-in encoder option."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("pymatgen")
from pymatgen.core import Lattice, Structure

from cloudphys.errors import DataError, StructureError
from cloudphys.scope.geometry import (
    ALL_GEOMETRIC_FEATURES,
    GEOMETRIC_FEATURES,
    GEOMETRY_MEAN,
    GEOMETRY_STD,
    N_GEOMETRIC_FEATURES,
    NEEDS_STRUCTURE,
    geometric_features,
    geometry_layout,
    n_geometric_features,
    raw_geometric_features,
)

A_NACL = 5.64
M_NA, M_CL = 22.98976928, 35.453


def _nacl(conventional: bool = True) -> Structure:
    if conventional:
        return Structure.from_spacegroup("Fm-3m", Lattice.cubic(A_NACL), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    a = A_NACL / 2
    return Structure(Lattice([[0, a, a], [a, 0, a], [a, a, 0]]), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _random(seed: int) -> Structure:
    """A triclinic, skewed, 5-atom crystal (atoms at least 1.5 Å apart)."""
    rng = np.random.default_rng(seed)
    while True:
        lat = np.diag(rng.uniform(3.5, 6.0, 3)) + np.triu(rng.uniform(-2.0, 2.0, (3, 3)), 1)
        frac = rng.random((5, 3))
        s = Structure(lat, ["Mg", "O", "O", "Si", "Fe"], frac)
        if s.distance_matrix[np.triu_indices(5, 1)].min() > 1.5:
            return s


def _radius_en(element: str) -> tuple[float, float]:
    from pymatgen.core import Element

    e = Element(element)
    return float(e.atomic_radius), float(e.X)


def test_rock_salt_values_by_hand() -> None:
    """NaCl: every atom has 6 neighbours at a/2; V/atom = a³/8; mass the mean of Na and Cl; every
    bond Na-Cl at a/2 (layout 2)."""
    assert len(ALL_GEOMETRIC_FEATURES) == N_GEOMETRIC_FEATURES == n_geometric_features(3) == 46
    assert n_geometric_features(2) == 35
    assert ALL_GEOMETRIC_FEATURES[:9] == GEOMETRIC_FEATURES and n_geometric_features(1) == 9
    (r_na, x_na), (r_cl, x_cl) = _radius_en("Na"), _radius_en("Cl")
    for conventional in (True, False):
        f = raw_geometric_features(_nacl(conventional))
        assert f.dtype == np.float64 and f.shape == (N_GEOMETRIC_FEATURES,)
        mass, vol, d = (M_NA + M_CL) / 2, A_NACL**3 / 8, A_NACL / 2
        expected = [np.log(vol), mass / vol, d, d, 0.0, 6.0, np.log(mass),
                    np.log(vol) / 3 - 0.5 * np.log(mass), np.log(d) - 0.5 * np.log(mass)]
        np.testing.assert_allclose(f[:9], expected, rtol=1e-4, atol=1e-12)  # pymatgen's masses: 4 digits
        mu = M_NA * M_CL / (M_NA + M_CL)
        bond = {"bond_log_length": np.log(d), "bond_log_reduced_mass": np.log(mu),
                "bond_strain": np.log(d / (r_na + r_cl)), "bond_en_difference": abs(x_na - x_cl),
                "bond_frequency": -0.5 * np.log(mu) - 1.5 * np.log(d)}
        got = dict(zip(ALL_GEOMETRIC_FEATURES, f))
        for q, v in bond.items():  # one kind of bond: mean = min = max, no spread
            np.testing.assert_allclose([got[f"{q}_{a}"] for a in ("mean", "min", "max")], [v] * 3, rtol=1e-4)
            assert abs(got[f"{q}_std"]) < 1e-9
        packing = 4 / 3 * np.pi * (r_na**3 + r_cl**3) / (2 * vol)
        np.testing.assert_allclose(got["log_packing_fraction"], np.log(packing), rtol=1e-6)
        site_na, site_cl = (-0.5 * np.log(m) - 1.5 * np.log(d) for m in (M_NA, M_CL))
        # half the atoms are Cl (lower proxy): quantiles 0, 1/4, 1/2 are Cl's, 3/4 and 1 Na's (inverted CDF)
        np.testing.assert_allclose([got[f"site_frequency_q{q}"] for q in (0, 25, 50, 75, 100)],
                                   [site_cl, site_cl, site_cl, site_na, site_na], rtol=1e-4)
    np.testing.assert_allclose(geometric_features(_nacl()), (raw_geometric_features(_nacl()) - GEOMETRY_MEAN)
                               / GEOMETRY_STD, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_crystal_other_cell_same_features(seed: int) -> None:
    """Supercell (non-diagonal too), rotation, translation, site order and another lattice basis of one
    crystal give the same features (float64 rounding only)."""
    s = _random(seed)
    ref = raw_geometric_features(s)
    assert np.isfinite(ref).all()
    rng = np.random.default_rng(100 + seed)
    variants = [s * (2, 1, 3), s * [[1, 1, 0], [0, 1, 0], [0, 0, 2]]]
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = Structure(s.lattice.matrix @ q.T, s.species, s.cart_coords @ q.T, coords_are_cartesian=True)
    variants.append(rot)
    variants.append(Structure(s.lattice, s.species, s.frac_coords + rng.random(3)))
    perm = rng.permutation(len(s))
    variants.append(Structure(s.lattice, [s.species[i] for i in perm], s.frac_coords[perm]))
    u = np.array([[1, 3, 0], [0, 1, -2], [0, 0, 1]])  # unimodular: a much more skewed basis of the lattice
    variants.append(Structure(u @ s.lattice.matrix, s.species, s.cart_coords, coords_are_cartesian=True))
    for v in variants:
        np.testing.assert_allclose(raw_geometric_features(v), ref, rtol=1e-9, atol=1e-9)


def test_every_input_kind_gives_the_same_numbers(tmp_path: Path) -> None:
    s = _random(3)
    ref = raw_geometric_features(s)
    np.testing.assert_array_equal(raw_geometric_features(s.as_dict()), ref)
    path = tmp_path / "POSCAR"
    s.to(filename=str(path), fmt="poscar")
    np.testing.assert_allclose(raw_geometric_features(path), ref, rtol=1e-6)  # POSCAR keeps ~16 digits
    ase = pytest.importorskip("pymatgen.io.ase")
    np.testing.assert_allclose(raw_geometric_features(ase.AseAtomsAdaptor.get_atoms(s)), ref, rtol=1e-12)


def test_a_disordered_site_reads_its_occupancy_weighted_elements() -> None:
    """A site shared by Na and K (half each) bonds like an atom of their mean mass, radius and
    electronegativity: the same features from a pymatgen Structure and its dict."""
    s = _nacl(False)
    mixed = Structure(s.lattice, [{"Na": 0.5, "K": 0.5}, "Cl"], s.frac_coords)
    f = dict(zip(ALL_GEOMETRIC_FEATURES, raw_geometric_features(mixed)))
    from pymatgen.core import Element

    m_site = (M_NA + float(Element("K").atomic_mass)) / 2
    mu = m_site * M_CL / (m_site + M_CL)
    np.testing.assert_allclose(f["bond_log_reduced_mass_mean"], np.log(mu), rtol=1e-9)
    (r_na, x_na), (r_k, x_k), (r_cl, x_cl) = _radius_en("Na"), _radius_en("K"), _radius_en("Cl")
    np.testing.assert_allclose(f["bond_strain_mean"], np.log(A_NACL / 2 / ((r_na + r_k) / 2 + r_cl)), rtol=1e-9)
    np.testing.assert_allclose(f["bond_en_difference_mean"], abs((x_na + x_k) / 2 - x_cl), rtol=1e-9)
    np.testing.assert_array_equal(raw_geometric_features(mixed.as_dict()), raw_geometric_features(mixed))


def test_bad_structures_are_refused_with_a_reason() -> None:
    s = _nacl(False)
    with pytest.raises(StructureError, match="apart"):
        raw_geometric_features(Structure(s.lattice, ["Na", "Cl"], [[0, 0, 0], [0.001, 0, 0]]))
    with pytest.raises(StructureError, match="dummy"):
        raw_geometric_features(Structure(s.lattice, ["Na", "X"], [[0, 0, 0], [0.5, 0.5, 0.5]]))


def test_phonondb_loader_geometry_matches_the_function(tmp_path: Path) -> None:
    """thermo rows with geometry=True carry the standardised features of their structures, NaN where none."""
    from cloudphys.data.thermo_jsonl import structure_geometry

    rows = [{"structure": _nacl(False).as_dict()}, {"structure": {"not": "a structure"}}]
    g = structure_geometry(rows)
    np.testing.assert_allclose(g[0], geometric_features(_nacl(False)), rtol=1e-12)
    assert np.isnan(g[1]).all()


# -- the encoder option -------------------------------------------------------------------------------

TINY_GEO = {
    "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2, "dropout": 0.0,
                "composition_features": True, "feature_layout": 3, "latent_mlp": 8, "features_in_mlp": True,
                "geometric_features": True},
    "head": {"name": "debye", "observables": ["cv"]},
}


@pytest.mark.parametrize("option", [True, 2, 3])
def test_encoder_option_round_trips_and_old_configs_read_none(tmp_path: Path, option: bool | int) -> None:
    from cloudphys.encoders.bert import ScopeBertConfig, n_latent_features
    from cloudphys.encoders.descriptors import n_composition_features
    from cloudphys.modeling.model import build_model

    layout = geometry_layout(option)
    k = n_geometric_features(layout)
    model = build_model({**TINY_GEO, "encoder": {**TINY_GEO["encoder"], "geometric_features": option}})
    cfg = model.encoder.config
    assert cfg.geometric_features == layout and n_latent_features(cfg) == n_composition_features(3) + k
    assert model.reads_geometry
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["geometric_features"] == layout  # a model saved with `true` reads as layout 1
    assert ScopeBertConfig.from_dict(saved).geometric_features == layout
    saved.pop("geometric_features")  # a model saved before the option existed
    old = ScopeBertConfig.from_dict(saved)
    assert old.geometric_features == 0 and n_latent_features(old) == n_composition_features(3)
    plain = build_model({**TINY_GEO, "encoder": {**TINY_GEO["encoder"], "geometric_features": False}})
    assert not plain.reads_geometry
    text = _scope_of(_nacl())
    assert plain.featurize([text], [2.0]).shape == (1, n_composition_features(3))
    with pytest.raises(ValueError, match="geometric features"):
        model.featurize([text], [2.0])  # no geometry: never a silent zero
    geo = geometric_features(_nacl())[None]
    f = model.featurize([text], [2.0], geometry=geo)  # a full row: the layout reads its first k
    assert f.shape == (1, n_composition_features(3) + k)
    np.testing.assert_allclose(f[0, -k:], geo[0, :k])
    np.testing.assert_array_equal(model.featurize([text], [2.0], geometry=geo[:, :k]), f)  # or exactly k
    with pytest.raises(ValueError, match="geometry array, got shape"):
        model.featurize([text], [2.0], geometry=geo[:, :k - 1])


@pytest.mark.parametrize("bad", [4, -1, "yes", 1.5])
def test_an_unknown_geometric_layout_is_refused_by_value(bad: object) -> None:
    from cloudphys.modeling.model import build_model

    with pytest.raises(ValueError, match=r"geometric_features must be .*got"):
        build_model({**TINY_GEO, "encoder": {**TINY_GEO["encoder"], "geometric_features": bad}})


def test_ensemble_members_of_two_geometric_layouts_are_refused() -> None:
    from cloudphys.errors import ConfigError
    from cloudphys.modeling.ensemble import EnsembleEncoder
    from cloudphys.modeling.model import build_model

    one = build_model(TINY_GEO).encoder
    two = build_model({**TINY_GEO, "encoder": {**TINY_GEO["encoder"], "geometric_features": 2}}).encoder
    with pytest.raises(ConfigError, match="geometric_features"):
        EnsembleEncoder([one, two])
    assert EnsembleEncoder([two, two]).featurize([_scope_of(_nacl())], [2.0], geometry=geometric_features(
        _nacl())[None]).shape[1] == two.latent_layer.n_features


def _scope_of(structure: Structure) -> str:
    from cloudphys.scope import from_structure

    return from_structure(structure).render()


def test_geometric_model_saves_loads_predicts_and_refuses_a_bare_string(tmp_path: Path) -> None:
    from cloudphys.modeling.model import build_model
    from cloudphys.models import load_model

    torch.manual_seed(0)
    build_model(TINY_GEO).save_pretrained(tmp_path / "m")
    model = load_model(str(tmp_path / "m"))
    bare = _scope_of(_nacl())
    pred = model.predict([_nacl(), bare, _random(0)], [50.0, 300.0])
    assert [it.error is None for it in pred.items] == [True, False, True]  # the rest of the batch predicted
    assert NEEDS_STRUCTURE in pred.items[1].error
    cv = pred.observables["cv"]
    assert np.isfinite(cv[[0, 2]]).all() and np.isnan(cv[1]).all()
    # the geometry reaches the prediction: the same string with another cell volume predicts otherwise
    squeezed = _nacl().copy()
    squeezed.scale_lattice(squeezed.volume * 0.7)
    other = model.predict([squeezed], [50.0, 300.0]).observables["cv"]
    assert not np.allclose(other[0], cv[0])
    again = load_model(str(tmp_path / "m")).predict([_nacl()], [50.0, 300.0]).observables["cv"]
    np.testing.assert_array_equal(again[0], cv[0])


def test_training_data_without_geometry_is_refused_by_name() -> None:
    from cloudphys.data.base import Examples
    from cloudphys.modeling.encoding import encode
    from cloudphys.modeling.model import build_model

    model = build_model(TINY_GEO)
    text = _scope_of(_nacl())
    ex = Examples(ids=["nacl", "kcl"], scope=[text, text], n_atoms=np.array([8.0, 8.0]), temperatures=np.array([300.0]))
    with pytest.raises(DataError, match="no geometric features"):
        encode(ex, model)
    ex.geometry = np.vstack([geometric_features(_nacl()), np.full(N_GEOMETRIC_FEATURES, np.nan)])
    with pytest.raises(DataError, match="kcl"):
        encode(ex, model)
    ex.geometry[1] = ex.geometry[0]
    enc = encode(ex, model)
    assert enc.features is not None and enc.features.shape[1] == model.encoder.latent_layer.n_features


def test_a_model_saved_before_the_option_loads_and_predicts_as_before(tmp_path: Path) -> None:
    """A config.json without ``geometric_features`` (every model saved before it existed) reads no
    geometry: it loads, takes bare SCOPE strings and predicts exactly what it did."""
    from cloudphys.modeling.model import build_model
    from cloudphys.models import load_model

    torch.manual_seed(0)
    plain = {**TINY_GEO, "encoder": {**TINY_GEO["encoder"], "geometric_features": False}}
    build_model(plain).save_pretrained(tmp_path / "m")
    text = _scope_of(_nacl())
    before = load_model(str(tmp_path / "m")).predict([text, _nacl()], [50.0, 300.0]).observables["cv"]
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["geometric_features"]
    cfg_path.write_text(json.dumps(cfg))
    old = load_model(str(tmp_path / "m"))
    assert not old.core.reads_geometry
    pred = old.predict([text, _nacl()], [50.0, 300.0])
    assert not pred.errors
    np.testing.assert_array_equal(pred.observables["cv"], before)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), det=st.sampled_from([1, 2, 3]))
def test_property_any_cell_of_the_crystal_gives_the_same_features(seed: int, det: int) -> None:
    """Hypothesis: a random integer supercell (determinant 1-3, skewing the basis), then a random
    rotation and translation, leaves the features unchanged."""
    rng = np.random.default_rng(seed)
    s = _random(seed % 5)
    m = np.eye(3, dtype=int)
    m[0, 0] = det
    m[np.triu_indices(3, 1)] = rng.integers(-2, 3, 3)  # upper triangular: determinant det
    sup = s * m
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    moved = Structure(sup.lattice.matrix @ q.T, sup.species, sup.cart_coords @ q.T + rng.normal(size=3),
                      coords_are_cartesian=True)
    np.testing.assert_allclose(raw_geometric_features(moved), raw_geometric_features(s), rtol=1e-9, atol=1e-9)


def _reference_raw_features(s: Structure) -> np.ndarray:
    """The 35 raw features written out plainly on pymatgen's neighbour search
    (``Structure.get_all_neighbors``, every periodic image within the radius), to check the vectorised
    search (minimum image, the 27 nearest images, then the images a bound says can reach) against."""
    from pymatgen.core import Element

    n, volume = len(s), s.volume
    radius = 1.0
    while True:  # a radius within which every atom has a neighbour
        found = s.get_all_neighbors(radius)
        if all(found):
            break
        radius *= 1.5
    nearest = np.array([min(nb.nn_distance for nb in row) for row in found])
    found = s.get_all_neighbors(SHELL_REF * float(nearest.max()) * 1.01)
    bonds = [(i, nb.index, nb.nn_distance) for i, row in enumerate(found) for nb in row
             if nb.nn_distance <= SHELL_REF * nearest[i] * (1 + 1e-9)]
    mass = np.array([float(Element(sp.symbol).atomic_mass) for sp in s.species])
    radius_en = np.array([_radius_en(sp.symbol) for sp in s.species])
    coordination = np.bincount([b[0] for b in bonds], minlength=n)
    m = mass.mean()
    v = np.log(volume / n)
    out = [v, m / (volume / n), nearest.mean(), nearest.min(), nearest.std(), coordination.mean(), np.log(m),
           v / 3 - 0.5 * np.log(m), np.log(nearest.mean()) - 0.5 * np.log(m)]
    w = np.array([1.0 / (n * coordination[i]) for i, _, _ in bonds])
    per_bond: list[list[float]] = [[], [], [], [], []]
    for i, j, d in bonds:
        mu = mass[i] * mass[j] / (mass[i] + mass[j])
        per_bond[0].append(np.log(d))
        per_bond[1].append(np.log(mu))
        per_bond[2].append(np.log(d / (radius_en[i, 0] + radius_en[j, 0])))
        per_bond[3].append(abs(radius_en[i, 1] - radius_en[j, 1]))
        per_bond[4].append(-0.5 * np.log(mu) - 1.5 * np.log(d))
    for q in map(np.array, per_bond):
        mean = float(w @ q)
        out += [mean, np.sqrt(float(w @ (q - mean) ** 2)), q.min(), q.max()]
    out.append(np.log((4 / 3 * np.pi * radius_en[:, 0] ** 3).sum() / volume))
    site = -0.5 * np.log(mass) - 1.5 * np.log(nearest)
    out += list(np.quantile(site, [0, 0.25, 0.5, 0.75, 1], method="inverted_cdf"))
    return np.array(out, dtype=np.float64)


SHELL_REF = 1.2


def _skewed_cells() -> list[Structure]:
    cells = []
    for seed in range(4):
        s = _random(seed)
        u = np.array([[1, 2, 0], [0, 1, -3], [0, 0, 1]])  # unimodular: a very skewed basis
        cells += [s, s * [[1, 1, 0], [0, 1, 0], [0, 0, 2]],
                  Structure(u @ s.lattice.matrix, s.species, s.cart_coords, coords_are_cartesian=True)]
    # a long thin cell: its images beyond the nearest 27 are needed along the short axes
    cells.append(Structure(Lattice([[2.1, 0, 0], [1.0, 2.3, 0], [0.4, 0.3, 9.0]]), ["Si", "O"],
                           [[0, 0, 0], [0.5, 0.5, 0.25]]))
    return cells


@pytest.mark.parametrize("k", range(13))
def test_vectorised_neighbour_search_equals_pymatgen_reference(k: int) -> None:
    """The fast search (squared distances, the nearest images reused, only the images that can reach
    added) gives every feature of the plain pymatgen-based reference, to 1e-9, on skewed cells,
    non-diagonal supercells and a long thin cell."""
    assert SHELL_REF == __import__("cloudphys.scope.geometry", fromlist=["SHELL"]).SHELL
    s = _skewed_cells()[k]
    np.testing.assert_allclose(raw_geometric_features(s)[:35], _reference_raw_features(s), rtol=1e-9, atol=1e-9)


def test_site_quantiles_are_numpy_inverted_cdf_quantiles() -> None:
    from cloudphys.scope.geometry import _quantiles

    rng = np.random.default_rng(0)
    for n in range(1, 80):
        v = rng.normal(size=n)
        v[rng.integers(0, n, n // 3)] = v[0]  # ties
        assert _quantiles(v) == [float(x) for x in np.quantile(v, [0, 0.25, 0.5, 0.75, 1], method="inverted_cdf")]
