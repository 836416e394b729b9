"""A user's own phonopy / pymatgen results become training rows in our units (docs/data.md example)."""

from __future__ import annotations

import gzip
import json
import warnings

import numpy as np
import pytest
from _gamma_modes import assert_curves_agree, gamma_mode_corrections

from cloudphys.data.labels import (
    read_thermal_properties_yaml,
    row_from_phonon_dos,
    row_from_thermal_properties_yaml,
)
from cloudphys.data.phonondb import DataWarning, load_thermo_jsonl
from cloudphys.data.phonondb_build import (
    PHONONDB_GRID,
    _extract,
    read_phonopy_conf,
    write_jsonl,
)
from cloudphys.errors import DataError

phonopy = pytest.importorskip("phonopy", reason="phonopy is not installed (pip install 'cloudphys[phonopy]')")

ARCHIVE = "materials-id-149-si-fd-3m-227.tar.lzma"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def silicon(data_root, tmp_path_factory):
    """A phonopy calculation of Si as a user would have it: files, Phonopy object, shared row."""
    work = tmp_path_factory.mktemp("si")
    _extract(data_root / "phonondb-raw-sample" / ARCHIVE, work)
    smat, pmat = read_phonopy_conf((work / "phonopy.conf").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ph = phonopy.load(supercell_matrix=smat, primitive_matrix=pmat, unitcell_filename=str(work / "POSCAR-unitcell"),
                          force_sets_filename=str(work / "FORCE_SETS"), born_filename=str(work / "BORN"), log_level=0)
        ph.run_mesh(40.0, is_gamma_center=True)
        ph.run_thermal_properties(temperatures=PHONONDB_GRID)
        ph.write_yaml_thermal_properties(filename=str(work / "thermal_properties.yaml"))
    with gzip.open(data_root / "phonondb-thermo" / "materials.jsonl.gz", "rt") as fh:
        ref = next(r for r in map(json.loads, fh) if r["id"] == "mp-149")
    return work, ph, ref


def n_mesh_points(ph) -> int:
    return int(np.prod(ph.mesh.mesh_numbers))


def test_thermal_properties_yaml_units(silicon):
    work, ph, ref = silicon
    raw = read_thermal_properties_yaml(work / "thermal_properties.yaml")
    tp = ph.thermal_properties
    assert raw["natom"] == 2
    # phonopy writes kJ/mol; we use J/mol
    np.testing.assert_allclose(raw["f"], np.asarray(tp.free_energy) * 1000, rtol=1e-7)
    np.testing.assert_allclose(raw["cv"], tp.heat_capacity, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(raw["u"], raw["f"] + raw["temperatures_K"] * raw["s"], rtol=1e-7)

    row = row_from_thermal_properties_yaml(work / "thermal_properties.yaml", work / "POSCAR-unitcell", id="mp-149")
    assert row["n_atoms"] == 2 and row["formula"] == "Si" and row["temperatures_K"] == list(PHONONDB_GRID)
    assert row.get("structure_cell_atoms") == 8  # the conventional cell was given; curves stay per 2-atom cell
    # the same numbers as the shared phonondb-thermo row, up to phonopy's Γ acoustic-mode noise
    assert_curves_agree(row, ref, PHONONDB_GRID, n_mesh_points(ph), label="mp-149")
    # Dulong-Petit at 1000 K for 2 atoms: Cv -> 6R
    assert 0.95 * 6 * 8.314462618 < row["cv"][-1] < 6 * 8.314462618


def test_train_rows_from_own_phonopy_output(silicon, tmp_path, monkeypatch):
    work, ph, ref = silicon
    row = row_from_thermal_properties_yaml(work / "thermal_properties.yaml", work / "POSCAR-unitcell", id="my-si")
    broken = {"id": "broken", "source": "x.tar.lzma", "error": "DataError: missing FORCE_SETS"}
    out = tmp_path / "mine.jsonl"
    write_jsonl([row, broken], out)
    (tmp_path / "split.json").write_text(json.dumps({"my-si": "train", "broken": "train"}))
    from cloudphys.scope import ConversionResult

    monkeypatch.setattr("cloudphys.inputs.convert.convert_many",
                        lambda jobs, **kw: [ConversionResult(i, "P 1 | 1a | Si 1.0", None, 2) for i, _ in jobs])
    with pytest.warns(DataWarning, match="broken: failed build"):
        ex = load_thermo_jsonl("train", path=str(out), split_file=str(tmp_path / "split.json"),
                               temperature_range=[20, 1000], observables=["cv", "u"])
    assert ex.ids == ["my-si"] and ex.n_atoms.tolist() == [2.0]
    assert ex.temperatures[0] == 20 and ex.units == {"cv": "J/(K*mol)", "u": "J/mol"}
    _, gamma = gamma_mode_corrections(row, ref, PHONONDB_GRID, n_mesh_points(ph))
    np.testing.assert_allclose(ex.targets["u"][0] - gamma["u"][4:], np.asarray(ref["u"])[4:], rtol=1e-4)
    with pytest.raises(DataError, match="needs path"):
        load_thermo_jsonl("train")


def test_phonon_dos_rows(silicon):
    from pymatgen.phonon.dos import PhononDos

    work, ph, _ = silicon
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ph.run_mesh(40.0, is_gamma_center=True)
        ph.run_total_dos(freq_pitch=0.02)
    d = ph.total_dos
    dos = PhononDos(d.frequency_points, d.dos)
    temps = [0, 50, 300, 1000]
    row = row_from_phonon_dos(dos.as_dict(), work / "POSCAR-unitcell", id="si-dos", temperatures=temps, n_atoms=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ph.run_thermal_properties(temperatures=temps)
    tp = ph.thermal_properties
    # histogram DOS vs mesh sums: same units, agreement to the DOS smearing
    np.testing.assert_allclose(row["cv"][1:], np.asarray(tp.heat_capacity)[1:], rtol=2e-2)
    np.testing.assert_allclose(row["f"], np.asarray(tp.free_energy) * 1000, rtol=2e-2)
    assert row["u"][0] == row["f"][0] > 0 and row["cv"][0] == 0
    with pytest.raises(DataError, match="modes"):
        row_from_phonon_dos(dos, work / "POSCAR-unitcell", id="si-dos")  # 8-atom cell, 2-atom DOS


def test_bad_yaml(tmp_path):
    p = tmp_path / "thermal_properties.yaml"
    p.write_text("foo: 1\n")
    with pytest.raises(DataError, match="not a phonopy thermal_properties.yaml"):
        read_thermal_properties_yaml(p)
    p.write_text("unit: {free_energy: Ry}\nnatom: 1\nthermal_properties: []\n")
    with pytest.raises(DataError, match="unknown free-energy unit"):
        read_thermal_properties_yaml(p)


def test_cli_from_phonopy_and_build(silicon, data_root, tmp_path, capsys):
    from cloudphys.cli import main

    work, _, ref = silicon
    out = tmp_path / "rows.jsonl"
    for k in range(2):
        assert main(["data", "from-phonopy", str(work / "thermal_properties.yaml"), "--structure",
                     str(work / "POSCAR-unitcell"), "--id", f"si-{k}", "-o", str(out), "--append"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["si-0", "si-1"] and rows[0]["u"][0] == pytest.approx(ref["u"][0], rel=1e-6)
    archives = sorted((data_root / "phonondb-raw-sample").glob("*.tar.lzma"))[:2]
    built = tmp_path / "built.jsonl.gz"
    assert main(["data", "build-phonondb", *map(str, archives), "-o", str(built), "-q"]) == 0
    assert "wrote 2 rows (2 built, 0 failed)" in capsys.readouterr().out
    with gzip.open(built, "rt") as fh:
        assert len(fh.readlines()) == 2
    broken = tmp_path / "materials-id-1-x-p1-1.tar.lzma"
    broken.write_bytes(b"junk")
    assert main(["data", "build-phonondb", str(broken), str(archives[0]), "-o", str(built), "-q"]) == 1
    err = capsys.readouterr().err
    assert "FAILED materials-id-1-x-p1-1.tar.lzma (mp-1)" in err
