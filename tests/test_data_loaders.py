"""Loaders of the built-in data sets: cloud-cv, cloud-pretrain, cloud-dielectric, phonondb-thermo."""

from __future__ import annotations

import csv
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from cloudphys import inputs as cache_mod
from cloudphys.data import Examples
from cloudphys.data.cloud import (
    cloud_split_indices,
    load_cloud_cv,
    load_cloud_dielectric,
    load_cloud_pretrain,
)
from cloudphys.data.phonondb import (
    DataWarning,
    load_phonondb_thermo,
    select_temperatures,
)
from cloudphys.errors import DataError
from cloudphys.plugins import Registry, make_plugin_manager


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CLOUDPHYS_OFFLINE", "1")


def _registry() -> Registry:
    return Registry(make_plugin_manager(("cloudphys.data.builtin",), entry_points=False))


def test_builtins_registered():
    reg = _registry()
    assert not reg.errors
    for name in ("cloud-cv", "cloud-pretrain", "cloud-dielectric", "phonondb-thermo"):
        spec = reg.dataset(name)
        assert spec.name == name and callable(spec.load) and spec.files and spec.licence and spec.source


# -- cloud-cv -------------------------------------------------------------------------------------

def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cloud_split_matches_cloud_protocol():
    # CLOUD: indices = list(range(n)); RandomState(0).shuffle(indices); val = first floor(0.25 n)
    n = 1213
    indices = list(range(n))
    np.random.RandomState(seed=0).shuffle(indices)
    train, val = cloud_split_indices(n)
    assert val.tolist() == indices[: math.floor(0.25 * n)]
    assert train.tolist() == indices[math.floor(0.25 * n):]
    assert len(val) == 303 and len(train) == 910
    assert sorted(train.tolist() + val.tolist()) == list(range(n))


def test_cloud_cv_splits(data_root):
    rows = _csv_rows(data_root / "cloud" / "cloud_cv_train_and_val.csv")
    test_rows = _csv_rows(data_root / "cloud" / "cloud_cv_test.csv")
    tr = load_cloud_cv("train")
    va = load_cloud_cv("val")
    te = load_cloud_cv("test")
    assert isinstance(tr, Examples)
    assert (len(tr), len(va), len(te)) == (910, 303, 299)
    assert set(tr.ids).isdisjoint(va.ids)
    assert len(set(tr.ids) | set(va.ids)) == len(rows)
    assert tr.temperatures.tolist() == [300.0]
    assert tr.targets["cv"].shape == (910, 1) and tr.units == {"cv": "J/(K*mol)"}
    # every example is the row its id names
    for ex in (tr, va):
        for k in (0, 17, len(ex) - 1):
            row = rows[int(ex.ids[k].split(":")[1])]
            assert ex.ids[k].startswith("train_and_val:")
            assert ex.scope[k] == row["cloud"]
            assert ex.targets["cv"][k, 0] == float(row["cv"])
            assert ex.n_atoms[k] == float(row["n_atoms"])
    assert te.ids[5] == "test:5" and te.scope[5] == test_rows[5]["cloud"]
    assert te.targets["cv"][5, 0] == float(test_rows[5]["cv"])
    # physical sanity: Cv/(3R n) in (0, 1]
    ratio = tr.targets["cv"][:, 0] / (3 * 8.314462618 * tr.n_atoms)
    assert ratio.min() > 0.2 and ratio.max() <= 1.0


def test_cloud_cv_rejects_bad_params():
    with pytest.raises(DataError, match="300 K"):
        load_cloud_cv("train", temperature=500)
    with pytest.raises(DataError, match="no split"):
        load_cloud_cv("validation")
    with pytest.raises(DataError, match="no parameter"):
        load_cloud_cv("train", temprature=300)


def test_cloud_pretrain_and_dielectric(data_root):
    all_ = load_cloud_pretrain("all")
    train, val = load_cloud_pretrain("train"), load_cloud_pretrain("val")
    assert len(all_) == 10000 and len(val) == 500 and len(train) == 9500
    assert sorted(train + val) == sorted(all_)
    d = load_cloud_dielectric("test")
    assert len(d) == 953 and d.targets["n"].shape == (953, 1) and np.all(d.targets["n"] >= 1.0)


def test_missing_file_message(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUDPHYS_DATA", str(tmp_path / "nodata"))
    with pytest.raises(DataError) as info:
        load_cloud_cv("test")
    msg = str(info.value)
    assert "cloud/cloud_cv_test.csv" in msg and str(tmp_path / "nodata" / "cloud" / "cloud_cv_test.csv") in msg
    assert "https://raw.githubusercontent.com/ChangwenXu98/CLOUD/main/example_data/cloud_cv_test.csv" in msg
    with pytest.raises(DataError) as info:
        load_phonondb_thermo("test")
    msg = str(info.value)
    assert "phonondb-thermo/" in msg and str(tmp_path / "nodata" / "phonondb-thermo") in msg


# -- phonondb-thermo ------------------------------------------------------------------------------

GRID = [0, 5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100, 125, 150, 175, 200, 250, 300, 350, 400, 500,
        600, 700, 800, 900, 1000]


def test_select_temperatures():
    assert select_temperatures(GRID).tolist() == list(range(28))
    assert [GRID[i] for i in select_temperatures(GRID, [300, 20])] == [20, 300]
    assert [GRID[i] for i in select_temperatures(GRID, temperature_range=[20, 100])] == [
        20, 25, 30, 40, 50, 60, 70, 80, 90, 100]
    assert [GRID[i] for i in select_temperatures(GRID, [5, 300], temperature_range=[20, 1000])] == [300]
    with pytest.raises(DataError, match="not on the data set's grid"):
        select_temperatures(GRID, [298.15])
    with pytest.raises(DataError, match="no grid temperature"):
        select_temperatures(GRID, temperature_range=[1001, 2000])


FAKE_SCOPE = "P 1 | 1a | Si 1.0"


def _fake_converter(monkeypatch, fail: set[str] = frozenset()):
    """Replace spglib's conversion (under cloudphys.inputs.to_records and its cache) by a stand-in
    that records the ids it is asked for."""
    from cloudphys.scope import ConversionResult

    calls: list[list[str]] = []

    def convert(jobs, **kw):
        calls.append([i for i, _ in jobs])
        return [ConversionResult(i, None, "cannot convert") if i in fail else ConversionResult(i, FAKE_SCOPE, None, 1)
                for i, _ in jobs]

    monkeypatch.setattr("cloudphys.inputs.convert.convert_many", convert)
    return calls


def test_phonondb_rows_and_filters(data_root, monkeypatch):
    calls = _fake_converter(monkeypatch)
    ex = load_phonondb_thermo("test", limit=5)
    meta = json.loads((data_root / "phonondb-thermo" / "meta.json").read_text())
    split = json.loads((data_root / "phonondb-thermo" / "split.json").read_text())
    assert len(ex) == 5 and ex.temperatures.tolist() == meta["temperatures_K"]
    assert set(ex.targets) == {"cv", "s", "u", "f"} and ex.units["u"] == "J/mol"
    rows = {}
    with gzip.open(data_root / "phonondb-thermo" / "materials.jsonl.gz", "rt") as fh:
        for line in fh:
            r = json.loads(line)
            if r["id"] in ex.ids:
                rows[r["id"]] = r
    for k, i in enumerate(ex.ids):
        assert split[i] == "test" and rows[i]["stable"]
        assert ex.n_atoms[k] == rows[i]["n_atoms"]
        for o in ("cv", "s", "u", "f"):
            np.testing.assert_array_equal(ex.targets[o][k], rows[i][o])
        # F = U - T S holds in the file's units (J/mol vs J/(K*mol))
        np.testing.assert_allclose(ex.targets["f"][k], ex.targets["u"][k] - ex.temperatures * ex.targets["s"][k],
                                   rtol=1e-6, atol=1e-2)
    assert calls == [ex.ids]
    # second call: served from the per-user cache, no conversion
    sub = load_phonondb_thermo("test", limit=5, observables=["cv"], temperature_range=[20, 1000])
    assert calls == [ex.ids] and sub.ids == ex.ids
    assert set(sub.targets) == {"cv"} and sub.temperatures[0] == 20 and sub.temperatures[-1] == 1000
    np.testing.assert_array_equal(sub.targets["cv"], ex.targets["cv"][:, 4:])
    # unstable ones only come with stable=False
    everything = load_phonondb_thermo("all", limit=40, stable=False, observables="cv")
    assert any(not rows_stable for rows_stable in _stable_flags(data_root, everything.ids))
    # min_freq_thz: a threshold on the lowest mesh frequency instead of the stable flag
    lowest = {}
    with gzip.open(data_root / "phonondb-thermo" / "materials.jsonl.gz", "rt") as fh:
        for line in fh:
            r = json.loads(line)
            if split.get(r["id"]) == "val":
                lowest[r["id"]] = r["min_freq_thz"]
    got = load_phonondb_thermo("val", min_freq_thz=-0.5, observables="cv")
    assert sorted(got.ids) == sorted(i for i, m in lowest.items() if m > -0.5)
    assert sum(m > -0.5 for m in lowest.values()) > sum(m > -0.1 for m in lowest.values())  # more than stable


def _stable_flags(data_root: Path, ids: list[str]) -> list[bool]:
    out = {}
    with gzip.open(data_root / "phonondb-thermo" / "materials.jsonl.gz", "rt") as fh:
        for line in fh:
            r = json.loads(line)
            if r["id"] in ids:
                out[r["id"]] = r["stable"]
    return [out[i] for i in ids]


def test_phonondb_unconvertible_structures_are_reported(data_root, monkeypatch):
    _fake_converter(monkeypatch)
    ids = load_phonondb_thermo("train", limit=4, observables="cv").ids
    monkeypatch.setenv("CLOUDPHYS_CACHE", str(Path(str(cache_mod.cache_dir())) / "other"))
    _fake_converter(monkeypatch, fail={ids[1]})
    with pytest.warns(DataWarning, match=rf"1 of 4 structures .*{ids[1]}: .*materials.jsonl.gz:\d+: cannot convert"):
        ex = load_phonondb_thermo("train", limit=4, observables="cv")
    assert ex.ids == [ids[0], ids[2], ids[3]]
    with pytest.raises(DataError, match=ids[1]):
        load_phonondb_thermo("train", limit=4, observables="cv", on_error="raise")


def test_phonondb_bad_params(data_root):
    with pytest.raises(DataError, match="unknown observable"):
        load_phonondb_thermo("train", observables=["heat"])
    with pytest.raises(DataError, match="not on the data set's grid"):
        load_phonondb_thermo("train", temperatures=[298.15])
    with pytest.raises(DataError, match="no split"):
        load_phonondb_thermo("dev")


def test_phonondb_with_real_converter(data_root):
    scope = pytest.importorskip("cloudphys.scope", reason="the SCOPE converter is not available")
    ex = load_phonondb_thermo("val", limit=6, observables="cv", temperatures=[300])
    assert len(ex) == 6 and ex.targets["cv"].shape == (6, 1)
    spg = {}
    with gzip.open(data_root / "phonondb-thermo" / "materials.jsonl.gz", "rt") as fh:
        for line in fh:
            r = json.loads(line)
            if r["id"] in ex.ids:
                spg[r["id"]] = (r["spacegroup"], r["structure"])
    for i, s in zip(ex.ids, ex.scope):
        rec = scope.parse(s)
        assert s == scope.from_structure(spg[i][1]).render("default")
        assert rec.spacegroup == spg[i][0], (i, s)
    # the cache file lives in CLOUDPHYS_CACHE, never in the data directory
    files = list(cache_mod.cache_dir().rglob("*.json"))
    assert files and all(data_root not in f.parents for f in files)
    cached = json.loads(files[0].read_text())
    # keyed by the row's place in the file (":LINE"), so repeated ids cannot collide
    assert len(cached["scope"]) >= len(ex) and set(ex.scope) <= set(cached["scope"].values())
    assert all(k.startswith(":") and k[1:].isdigit() for k in cached["scope"])


# -- thermo-jsonl: empty splits and temperature grids ---------------------------------------------

_SI = {"lattice": {"matrix": [[0.0, 2.7, 2.7], [2.7, 0.0, 2.7], [2.7, 2.7, 0.0]]},
       "sites": [{"species": [{"element": "Si", "occu": 1}], "abc": [0.0, 0.0, 0.0]},
                 {"species": [{"element": "Si", "occu": 1}], "abc": [0.25, 0.25, 0.25]}]}


def _thermo_row(rid: str, grid: list[float] | None, n: int | None = None, **extra) -> dict:
    """A thermo row with made-up curves on ``grid`` (``None``: no temperatures_K, ``n`` values)."""
    n = len(grid) if n is None else n
    row = {"id": rid, "n_atoms": 2, "structure": _SI, "stable": True,
           **({"temperatures_K": grid} if grid is not None else {}),
           "cv": [float(k) for k in range(n)], "s": [2.0 * k for k in range(n)],
           "u": [100.0 + k for k in range(n)], "f": [100.0 - k for k in range(n)]}
    row.update(extra)
    return row


def _write(path: Path, rows: list[dict], split: dict[str, str] | None = None) -> tuple[str, str | None]:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if split is None:
        return str(path), None
    sp = path.with_name(path.stem + ".split.json")
    sp.write_text(json.dumps(split))
    return str(path), str(sp)


def test_thermo_jsonl_empty_split_gives_empty_examples_on_the_files_grid(tmp_path, monkeypatch):
    from cloudphys.data.phonondb import load_thermo_jsonl

    calls = _fake_converter(monkeypatch)
    grid = [0.0, 50.0, 100.0, 300.0, 1000.0]
    path, split_file = _write(tmp_path / "mine.jsonl", [_thermo_row("a", grid), _thermo_row("b", grid)],
                              {"a": "train", "b": "train"})
    ex = load_thermo_jsonl("val", path=path, split_file=split_file, observables=["cv", "s", "u"])
    assert isinstance(ex, Examples) and len(ex) == 0 and ex.ids == [] and ex.scope == []
    assert ex.temperatures.tolist() == grid and ex.n_atoms.shape == (0,)
    assert {k: v.shape for k, v in ex.targets.items()} == {"cv": (0, 5), "s": (0, 5), "u": (0, 5)}
    assert ex.units == {"cv": "J/(K*mol)", "s": "J/(K*mol)", "u": "J/mol"}
    sub = load_thermo_jsonl("test", path=path, split_file=split_file, observables="cv", temperature_range=[40, 400])
    assert sub.temperatures.tolist() == [50.0, 100.0, 300.0] and sub.targets["cv"].shape == (0, 3)
    assert calls == []  # nothing to convert
    # the seeded random split leaves val and test empty below 10 rows: empty, not an error
    path3, _ = _write(tmp_path / "three.jsonl", [_thermo_row(i, grid) for i in "xyz"])
    assert len(load_thermo_jsonl("val", path=path3)) == 0 and len(load_thermo_jsonl("train", path=path3)) == 3
    # rows without temperatures_K (phonondb's 28-point grid): the empty split is on that grid
    path28, split28 = _write(tmp_path / "old.jsonl", [_thermo_row("p", None, n=28)], {"p": "train"})
    empty28 = load_thermo_jsonl("val", path=path28, split_file=split28)
    assert empty28.temperatures.tolist() == GRID and empty28.targets["f"].shape == (0, 28)


def test_thermo_jsonl_empty_train_split_is_a_clear_error(tmp_path, monkeypatch):
    from cloudphys.data.phonondb import load_thermo_jsonl

    _fake_converter(monkeypatch)
    grid = [0.0, 300.0]
    rows = [_thermo_row("a", grid), _thermo_row("b", grid), _thermo_row("c", grid)]
    path, split_file = _write(tmp_path / "mine.jsonl", rows, {"a": "val", "b": "val"})
    with pytest.raises(DataError, match="'train' split is empty") as err:
        load_thermo_jsonl("train", path=path, split_file=split_file)
    msg = str(err.value)
    assert "split_file" in msg and split_file in msg and "2 'val'" in msg and "1 not listed" in msg
    assert "not a value per grid" not in msg and "does not have one value" not in msg
    # random split: which fractions took every row (2 rows: floor(0.5 * 2) test, floor(0.5 * 2) val)
    path2, _ = _write(tmp_path / "two.jsonl", rows[:2])
    with pytest.raises(DataError, match=r"'train' split is empty.*RandomState\(seed=0\).*'train' the remaining 0"):
        load_thermo_jsonl("train", path=path2, test_size=0.5, valid_size=0.5)
    # rows assigned to train, but none usable
    unstable = [_thermo_row("u1", grid, stable=False), {"id": "e1", "source": "x.tar", "error": "boom"}]
    path_u, split_u = _write(tmp_path / "unstable.jsonl", unstable, {"u1": "train", "e1": "train"})
    with pytest.warns(DataWarning, match="e1: failed build"), pytest.raises(DataError, match="unstable") as err:
        load_thermo_jsonl("train", path=path_u, split_file=split_u)
    assert "2 rows are assigned to 'train'" in str(err.value) and "failed build" in str(err.value)
    with pytest.warns(DataWarning, match="1 of 2 rows are left out"):
        assert load_thermo_jsonl("train", path=path_u, split_file=split_u, stable=False).ids == ["u1"]


def test_thermo_rows_share_one_grid_whatever_their_split(tmp_path, monkeypatch):
    from cloudphys.data.phonondb import load_thermo_jsonl, load_thermo_rows

    _fake_converter(monkeypatch)
    g21 = [float(t) for t in range(0, 1001, 50)]
    # a row without temperatures_K is on the 28-point grid: never read on the file's 21-point one
    path, split_file = _write(tmp_path / "mixed.jsonl", [_thermo_row("si", g21), _thermo_row("old-build", None, n=21)],
                              {"si": "train", "old-build": "test"})
    with pytest.raises(DataError, match="old-build") as err:
        load_thermo_jsonl("train", path=path, split_file=split_file)  # old-build is not even in this split
    msg = str(err.value)
    assert "no temperatures_K" in msg and "28 points" in msg and "21 points" in msg and "si (line 1)" in msg
    # two rows with different temperatures_K: the second is named with both grids
    path2, _ = _write(tmp_path / "two.jsonl", [_thermo_row("a", [0.0, 300.0]), _thermo_row("b", [0.0, 298.15])])
    with pytest.raises(DataError, match=r"line 2 \(b\).*2 points \[0, 298\.15\] K.*2 points \[0, 300\] K"):
        load_thermo_jsonl("all", path=path2)
    # rows on the 28-point grid mix, whether they carry it or not
    path3, _ = _write(tmp_path / "ok.jsonl", [_thermo_row("new", GRID), _thermo_row("old", None, n=28)])
    ex = load_thermo_jsonl("all", path=path3)
    assert ex.ids == ["new", "old"] and ex.temperatures.tolist() == GRID and ex.targets["cv"].shape == (2, 28)
    # a curve that does not fit its row's grid is named
    path4, _ = _write(tmp_path / "short.jsonl", [_thermo_row("a", [0.0, 300.0]), {**_thermo_row("b", [0.0, 300.0]),
                                                                                   "cv": [1.0]}])
    with pytest.raises(DataError, match=r"\(b\): curve 'cv' has 1 values, but the row's temperature grid has 2"):
        load_thermo_jsonl("all", path=path4)
    # a known grid (meta.json's) is the grid in use: a row carrying another one is refused
    path5, _ = _write(tmp_path / "meta.jsonl", [_thermo_row("m", None, n=28), _thermo_row("x", g21)])
    with pytest.raises(DataError, match=r"\(x\).*21 points.*from meta\.json.*28 points"):
        load_thermo_rows(path5, "all", name="t", grid=GRID, split_of=None, grid_source="meta.json")
    assert load_thermo_rows(path5, "all", name="t", grid=GRID, split_of=None, limit=1).ids == ["m"]
