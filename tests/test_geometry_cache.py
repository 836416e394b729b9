"""Geometric features kept in the SCOPE cache beside the strings (issue 20 §4): a second prediction of
the same files computes none; a changed geometry code or a damaged row is computed again; errors keep
their item and the rest of the batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("pymatgen")
from pymatgen.core import Lattice, Structure

import cloudphys.inputs.cache as cache_module
import cloudphys.scope.geometry as geometry_module
from cloudphys.scope.geometry import N_GEOMETRIC_FEATURES, NEEDS_STRUCTURE, geometric_features

TINY_GEO = {
    "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2, "dropout": 0.0,
                "composition_features": True, "feature_layout": 3, "latent_mlp": 8, "features_in_mlp": True,
                "geometric_features": 2},
    "head": {"name": "debye", "observables": ["cv"]},
}
T = [50.0, 300.0]


def _nacl() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _random(seed: int) -> Structure:
    rng = np.random.default_rng(seed)
    while True:
        lat = np.diag(rng.uniform(3.5, 6.0, 3)) + np.triu(rng.uniform(-2.0, 2.0, (3, 3)), 1)
        s = Structure(lat, ["Mg", "O", "O", "Si"], rng.random((4, 3)))
        if s.distance_matrix[np.triu_indices(4, 1)].min() > 1.5:
            return s


def _americium() -> Structure:
    """Converts to a SCOPE string, but has no geometric features (no element data beyond Pu)."""
    return Structure(Lattice.cubic(3.5), ["Am"], [[0, 0, 0]])


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from cloudphys.modeling.model import build_model
    from cloudphys.models import load_model

    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    build_model(TINY_GEO).save_pretrained(tmp_path / "m")
    return load_model(str(tmp_path / "m"))


def _files(folder: Path, structures: list[Structure]) -> list[str]:
    folder.mkdir(exist_ok=True)
    paths = []
    for k, s in enumerate(structures):
        path = folder / f"s{k}.cif"
        s.to(filename=str(path), fmt="cif")
        paths.append(str(path))
    return paths


def _cache_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "scope").glob("*.json"))


def _counting(monkeypatch: pytest.MonkeyPatch, *, fail: bool = False) -> list[int]:
    """Patch ``geometric_features``: count its calls, or make every call fail."""
    calls: list[int] = []
    real = geometry_module.geometric_features

    def patched(structure: Any) -> np.ndarray:
        calls.append(1)
        if fail:
            raise RuntimeError("geometry computed although it was cached")
        return real(structure)

    monkeypatch.setattr(geometry_module, "geometric_features", patched)
    return calls


def test_second_prediction_from_files_reads_geometry_from_the_cache(model: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    structures = [_nacl(), _random(0), _random(1)]
    paths = _files(tmp_path / "in", structures)
    first = model.predict(paths, T)
    assert not first.errors
    # the cache holds each file's row beside its string: exactly the features of its structure
    files = _cache_files(tmp_path)
    assert len(files) == 3
    for path in paths:
        blob = json.loads(next(f for f in files if f.name.startswith(Path(path).name)).read_text())
        assert blob["geometry"]["fingerprint"] == cache_module.geometry_fingerprint()
        (row,) = blob["geometry"]["rows"].values()
        assert len(row) == N_GEOMETRIC_FEATURES
        np.testing.assert_array_equal(row, geometric_features(Structure.from_file(path)))
    np.testing.assert_array_equal(first.geometry, np.stack([geometric_features(Structure.from_file(p)) for p in paths]))
    _counting(monkeypatch, fail=True)  # any computation now is an error
    second = model.predict(paths, T)
    assert not second.errors
    np.testing.assert_array_equal(second.observables["cv"], first.observables["cv"])
    np.testing.assert_array_equal(second.geometry, first.geometry)
    # a structure given as an object is not cached: its geometry is computed on every call
    obj = model.predict([structures[0]], T)
    assert "no geometric features (RuntimeError: geometry computed although it was cached)" in obj.items[0].error


def test_a_changed_geometry_fingerprint_recomputes_and_rewrites(model: Any, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _files(tmp_path / "in", [_nacl(), _random(2)])
    first = model.predict(paths, T)
    assert not first.errors
    monkeypatch.setattr(cache_module, "_GEOMETRY_FINGERPRINT", "another-version")
    calls = _counting(monkeypatch)
    second = model.predict(paths, T)
    assert len(calls) == 2 and not second.errors  # the strings stay cached, the rows are computed again
    np.testing.assert_array_equal(second.observables["cv"], first.observables["cv"])
    for f in _cache_files(tmp_path):
        assert json.loads(f.read_text())["geometry"]["fingerprint"] == "another-version"
    calls.clear()
    assert not model.predict(paths, T).errors and not calls  # and kept under the new fingerprint


@pytest.mark.parametrize("damage", [[1.0, 2.0], "row", [float("nan")] * N_GEOMETRIC_FEATURES,
                                    [True] * N_GEOMETRIC_FEATURES, None])
def test_a_damaged_cached_row_is_computed_again(model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                damage: Any) -> None:
    paths = _files(tmp_path / "in", [_random(3)])
    first = model.predict(paths, T)
    (f,) = _cache_files(tmp_path)
    blob = json.loads(f.read_text())
    (key,) = blob["geometry"]["rows"]
    if damage is None:
        blob["geometry"] = "not a section"
    else:
        blob["geometry"]["rows"][key] = damage
    f.write_text(json.dumps(blob))
    calls = _counting(monkeypatch)
    second = model.predict(paths, T)
    assert len(calls) == 1 and not second.errors
    np.testing.assert_array_equal(second.observables["cv"], first.observables["cv"])
    assert json.loads(f.read_text())["geometry"]["rows"][key] == list(first.geometry[0])  # repaired


def test_a_bare_scope_string_still_fails_by_name(model: Any, tmp_path: Path) -> None:
    from cloudphys.scope import from_structure

    text = from_structure(_nacl()).render()
    table = tmp_path / "strings.csv"
    table.write_text(f"id,scope,n_atoms\nnacl,{text},8\n")
    paths = _files(tmp_path / "in", [_random(0)])
    pred = model.predict([text, str(table), *paths], T)
    assert [it.error is None for it in pred.items] == [False, False, True]
    for it in pred.items[:2]:
        assert NEEDS_STRUCTURE in it.error
    assert pred.items[1].name == "nacl" and np.isnan(pred.geometry[:2]).all() and np.isfinite(pred.geometry[2]).all()


def test_one_bad_structure_keeps_the_rest_and_its_reason_is_cached(model: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _files(tmp_path / "in", [_nacl(), _americium(), _random(4)])
    first = model.predict(paths, T)
    assert [it.error is None for it in first.items] == [True, False, True]
    reason = first.items[1].error
    assert "no geometric features (StructureError: no element data for Am" in reason
    assert np.isfinite(first.observables["cv"][[0, 2]]).all() and np.isnan(first.observables["cv"][1]).all()
    _counting(monkeypatch, fail=True)
    second = model.predict(paths, T)  # the reason is cached too: nothing computed
    assert [it.error for it in second.items] == [None, reason, None]
    np.testing.assert_array_equal(second.observables["cv"], first.observables["cv"])


def test_workers_compute_the_same_rows_and_fill_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudphys.inputs import read_inputs, to_records

    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    paths = _files(tmp_path / "in", [_nacl(), _americium(), _random(5)])
    plain = to_records(read_inputs(paths), dialect="default", cache=False, geometry=True)
    pooled = to_records(read_inputs(paths), dialect="default", workers=2, geometry=True)
    for a, b in zip(plain, pooled):
        assert a.error == b.error
        if a.error is None:
            np.testing.assert_array_equal(a.geometry, b.geometry)
    assert plain[1].error is not None and "no element data for Am" in plain[1].error
    _counting(monkeypatch, fail=True)
    again = to_records(read_inputs(paths), dialect="default", geometry=True)  # from the cache the pool filled
    assert [it.error for it in again] == [it.error for it in plain]
    without = to_records(read_inputs(paths), dialect="default")  # a caller that does not ask: no rows, no error
    assert all(it.geometry is None for it in without) and [it.error is None for it in without] == [True] * 3


def test_tensors_of_a_geometric_model_read_the_predicted_rows(model: Any, tmp_path: Path) -> None:
    paths = _files(tmp_path / "in", [_nacl(), _random(6)])
    batch = model.tensors(paths)
    want = model.core.featurize([it.scope for it in model.predict(paths, T).items], [8.0, 4.0],
                                geometry=np.stack([geometric_features(Structure.from_file(p)) for p in paths]))
    np.testing.assert_allclose(batch["features"].numpy(), np.asarray(want), rtol=1e-6)
