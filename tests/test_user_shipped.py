"""The pretrained models shipped inside the package: registered, verified, loaded offline, predicting.

The Done-when of issue 11: ``cloudphys.load_model(cloudphys.list_models()[0]).predict(STRUCTURE,
temperatures=[50, 300])`` works without network for a pymatgen Structure and an ASE Atoms and gives
u, cv, s, f with a spread for the ensembles.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest

import cloudphys
from cloudphys.models import list_models, model_spec, verify_checksums

R = 8.314462618
SHIPPED = ("cloud-debye", "phonondb-dos", "phonondb-dos-geo")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty data directory: a shipped model needs neither (cloud-debye carries
    CLOUD's generator table to convert structures)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a shipped model touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CLOUDPHYS_DATA", str(tmp_path / "empty-data-dir"))
    monkeypatch.delenv("CLOUDPHYS_GENERATOR_TABLE", raising=False)


def _crystals():
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    mgo = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])
    return mgo, AseAtomsAdaptor.get_atoms(si)


def test_the_shipped_models_are_registered_with_cards() -> None:
    names = list_models(include_unavailable=True)
    for name in SHIPPED:
        assert name in names
        spec = model_spec(name)
        card = spec.card
        for section in ("## Data", "## Licence", "## Metrics", "## Units", "## Intended use", "## Limits"):
            assert section in card, (name, section)
        assert "cloudphys " in card  # the commands that measured the metrics
        verify_checksums(spec.path, name)
    assert cloudphys.list_models()[0] == "cloud-debye"  # core-only: the Debye head is built in


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_predicts_offline_for_structure_and_atoms(name, offline) -> None:
    if name not in cloudphys.list_models():
        pytest.skip(f"{name}: its head's plugin is not installed")
    m = cloudphys.load_model(name)
    assert m.is_ensemble and m.calibration is not None and m.calibration["fitted_on"] == "val"
    mgo, si_atoms = _crystals()
    for crystal in (mgo, si_atoms):
        p = m.predict(crystal, temperatures=[50, 300])
        assert not p.errors, p.errors
        s = p[0]
        for o in ("u", "cv", "s", "f"):
            v, sd = s.values(o), s.std(o)
            assert np.all(np.isfinite(v)) and sd is not None and np.all(sd > 0), (name, o)
        cv = s.values("cv")
        assert 0 < cv[0] < cv[1] <= 3 * R + 1e-6  # per atom, rising towards Dulong-Petit
        np.testing.assert_allclose(s.values("f"), s.values("u") - p.temperatures * s.values("s"), rtol=1e-4, atol=1e-3)
        text = repr(p)
        assert "cv" in text and "±" in text
    if name.startswith("phonondb-dos"):
        theta, g, sd = m.predict(mgo, [300]).ok[0].dos
        np.testing.assert_allclose(g.sum(), 3.0, rtol=1e-5)  # modes per atom
        assert sd is not None and np.all(theta > 0)


def test_si_conventional_and_primitive_cells_agree_per_atom(offline) -> None:
    from pymatgen.core import Lattice, Structure

    conv = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])
    prim = conv.get_primitive_structure()
    assert len(conv) == 8 and len(prim) == 2
    p = cloudphys.load_model("cloud-debye").predict([conv, prim], temperatures=[100, 300])
    np.testing.assert_allclose(p[0].values("cv"), p[1].values("cv"), rtol=1e-5)
    np.testing.assert_allclose(p[0].values("cv", "cell"), 4 * p[1].values("cv", "cell"), rtol=1e-5)


def test_the_geometric_model_refuses_a_bare_scope_string_and_predicts_the_rest(offline) -> None:
    """phonondb-dos-geo reads the structure's geometry: a SCOPE string alone gets an error row with the
    reason, the structures of the same batch are predicted."""
    if "phonondb-dos-geo" not in cloudphys.list_models():
        pytest.skip("phonondb-dos-geo: its head's plugin is not installed")
    m = cloudphys.load_model("phonondb-dos-geo")
    mgo, _ = _crystals()
    scope = cloudphys.load_model("phonondb-dos").predict(mgo, temperatures=[300]).ok[0].scope
    p = m.predict([mgo, {"id": "bare", "scope": scope, "n_atoms": 2}], temperatures=[300])
    assert len(p.ok) == 1 and list(p.errors) == ["bare"]
    assert "geometric" in p.errors["bare"] and "structure" in p.errors["bare"]
    cv = p.ok[0].values("cv")
    assert 0 < cv[0] <= 3 * R
