"""The cold prediction path's shortcuts give the same bits as the long way (issue 20 §4): features of
every item in one call, geometric features from the conversion's own cell, the SCOPE cache written as
one string, a converted string's record shared with featurizing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("pymatgen")
from pymatgen.core import Lattice, Structure

from cloudphys.scope import from_structure, parse_cached
from cloudphys.scope.geometry import geometric_features
from cloudphys.scope.structure import analyze, analyze_cell, structure_cell

TINY = {
    "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2, "dropout": 0.0,
                "composition_features": True, "feature_layout": 3, "latent_mlp": 8, "features_in_mlp": True},
    "head": {"name": "debye", "observables": ["cv"]},
}
T = [50.0, 300.0]


def _structures() -> list[Structure]:
    rng = np.random.default_rng(3)
    out = [Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
           Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])]
    while len(out) < 5:
        lat = np.diag(rng.uniform(3.5, 6.0, 3)) + np.triu(rng.uniform(-2.0, 2.0, (3, 3)), 1)
        s = Structure(lat, ["Mg", "O", "O", "Si"], rng.random((4, 3)))
        if s.distance_matrix[np.triu_indices(4, 1)].min() > 1.5:
            out.append(s)
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from cloudphys.modeling.model import build_model
    from cloudphys.models import load_model

    folder = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    build_model(TINY).save_pretrained(folder / "m")
    return load_model(str(folder / "m"))


def test_features_of_all_items_at_once_equal_one_call_per_item(model: Any) -> None:
    from cloudphys.inference.predict import _check_items, _featurize_each, prepare_items, read_items

    items = prepare_items(read_items(_structures()), "default")
    good, tokens, feats = _check_items(model.core, items)
    assert good == list(range(5))
    again = prepare_items(read_items(_structures()), "default")
    good1, tokens1, feats1 = _featurize_each(model.core, again, good, tokens, [None] * len(good))
    assert good1 == good
    for a, b in zip(feats, feats1):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_an_item_the_featurizer_refuses_fails_alone(model: Any) -> None:
    good = [from_structure(s).render() for s in _structures()[:3]]
    # Am converts to a string, but the descriptors know no element beyond Pu: featurizing refuses it
    bad = from_structure(Structure(Lattice.cubic(3.5), ["Am"], [[0, 0, 0]])).render()
    rows = [{"id": f"g{k}", "scope": s, "n_atoms": 2.0} for k, s in enumerate(good)]
    mixed = model.predict([rows[0], {"id": "am", "scope": bad, "n_atoms": 1.0}, rows[1], rows[2]], T)
    alone = model.predict(rows, T)
    assert list(mixed.errors) == ["am"] and "no known element" in mixed.errors["am"]
    cv_mixed = np.asarray(mixed.observables["cv"])
    cv_alone = np.asarray(alone.observables["cv"])
    assert np.isnan(cv_mixed[1]).all()
    assert cv_mixed[[0, 2, 3]].tobytes() == cv_alone.tobytes()


def test_the_conversion_cell_gives_the_structures_geometry_bit_for_bit() -> None:
    disordered = Structure(Lattice.cubic(4.1), [{"Fe": 0.5, "Ni": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    for s, allow in [(x, False) for x in _structures()] + [(disordered, True)]:
        rec, choice, cell = analyze_cell(s, allow_disordered=allow)
        assert structure_cell(cell) is cell and structure_cell(cell, allow_disordered=True) is cell
        assert geometric_features(cell).tobytes() == geometric_features(s).tobytes()
        rec2, choice2 = analyze(s, allow_disordered=allow)
        assert rec2 == rec and choice2.symprec == choice.symprec and choice2.warning == choice.warning


def test_convert_many_geometry_equals_the_features_of_the_structure() -> None:
    from cloudphys.scope import convert_many

    structures = _structures()
    results = convert_many(list(enumerate(structures)), geometry=True, progress=False)
    for s, res in zip(structures, results):
        assert res.error is None
        assert np.asarray(res.geometry).tobytes() == geometric_features(s).tobytes()


def test_cache_file_is_what_json_dump_writes_and_records_are_shared(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudphys.inputs import read_inputs, to_records
    from cloudphys.inputs.cache import ScopeCache

    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "nacl.cif"
    _structures()[0].to(filename=str(path))
    items = to_records(read_inputs([str(path)]), dialect="default", geometry=True)
    assert items[0].error is None and items[0].record is parse_cached(items[0].scope)
    files = list((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 1
    blob = json.loads(files[0].read_text())
    with open(tmp_path / "ref.json", "w") as fh:
        json.dump(blob, fh)  # what the cache wrote before: the same bytes
    assert files[0].read_bytes() == (tmp_path / "ref.json").read_bytes()
    c = ScopeCache(str(path), settings=blob["meta"]["settings"])
    assert c.scope == {"": items[0].scope} and c.geometry[""] == items[0].geometry.tolist()


def test_a_non_finite_value_fails_its_item_only(model: Any) -> None:
    from cloudphys.inference.predict import _collect
    from cloudphys.inputs import make_item

    core = model.core
    items = [make_item(f"s{k}", "-P 1 | 1a | Na 1") for k in range(4)]
    good = [0, 1, 3]
    cv = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    theta = np.array([300.0, 310.0, 320.0])
    cv_bad, theta_bad = cv.copy(), theta.copy()
    cv_bad[0, 1] = np.inf  # item 0: an observable
    theta_bad[2] = np.nan  # item 3: a latent
    out = _collect(core, items, good, ({"cv": cv_bad}, {"theta_D": theta_bad}), np.array(T), ["cv"])
    assert [e is None for e in out.errors] == [False, True, True, False]  # item 2: not predicted, no error here
    assert "non-finite" in str(out.errors[0]) and "non-finite" in str(out.errors[3])
    assert np.isnan(out.observables["cv"][[0, 2, 3]]).all() and out.observables["cv"][1].tolist() == [3.0, 4.0]
    assert out.latents["theta_D"][1] == 310.0
    items = [make_item(f"s{k}", "-P 1 | 1a | Na 1") for k in range(4)]
    out = _collect(core, items, [0, 1, 2, 3], ({"cv": np.ones((4, 2))}, {"theta_D": np.array([1.0, 2.0, np.nan, 3.0])}),
                   np.array(T), ["cv"])
    assert [e is None for e in out.errors] == [True, True, False, True]


def test_the_tabulated_general_letters_are_spglibs() -> None:
    from cloudphys.scope import _grammar as G

    for n in range(1, 231):
        assert G.general_wyckoff_letter(n) == G._general_wyckoff_letter_spglib(n), n
    assert G.general_wyckoff_letter(np.int64(225)) == G._general_wyckoff_letter_spglib(225)
    for bad in (0, 231, -1):  # not a space group: refused as before (by the spglib path)
        with pytest.raises(KeyError):  # what the Hall-number lookup raised before the table
            G.general_wyckoff_letter(bad)


def test_read_text_reads_small_files_whole_and_keeps_the_budget(tmp_path: Path) -> None:
    import gzip

    from cloudphys.inputs.textio import read_text

    text = "data_x\n_cell_length_a 4.0\r\nÅ line\n" * 3
    plain = tmp_path / "a.cif"
    plain.write_bytes(text.encode("utf-8"))
    packed = tmp_path / "a.cif.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    n = len(text)
    for path in (plain, packed):
        assert read_text(path, n) == (text, n)  # exactly at the budget, newlines as written
        assert read_text(path, n + 100) == (text, n)
        assert read_text(path, n - 1) == (None, n)  # over it: reading stopped at max_chars + 1
        assert read_text(path, 5) == (None, 6)
    bad = tmp_path / "bad.cif"
    bad.write_bytes(b"data_x\n\xff\xfe\n")
    with pytest.raises(UnicodeDecodeError) as err:
        read_text(bad, 1000)
    assert err.value.object[err.value.start] == 0xFF
