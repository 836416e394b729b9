"""Symmetry of noisy (relaxed) structures: ``symprec="auto"``, the tolerances' validation and plumbing,
and the low-symmetry warning (issue 20 §3, §5)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudphys import scope
from cloudphys.errors import ConfigError, ScopeError, StructureError
from cloudphys.scope.structure import analyze
from cloudphys.scope.symmetry import AUTO_LADDER, check_tolerances, symmetrization_displacement

ROCKSALT = "-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5"


def rocksalt_supercell(sigma: float = 0.0, seed: int = 0, n: int = 2) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """NaCl's conventional cell repeated n×n×n (8n³ atoms), every atom displaced by Gaussian noise of
    ``sigma`` Å per Cartesian component."""
    a = 5.64
    basis = [((0, 0, 0), 11), ((.5, .5, 0), 11), ((.5, 0, .5), 11), ((0, .5, .5), 11),
             ((.5, 0, 0), 17), ((0, .5, 0), 17), ((0, 0, .5), 17), ((.5, .5, .5), 17)]
    pos, z = [], []
    for i in range(n):
        for j in range(n):
            for k in range(n):
                for f, el in basis:
                    pos.append([(f[0] + i) / n, (f[1] + j) / n, (f[2] + k) / n])
                    z.append(el)
    lattice = np.eye(3) * a * n
    frac = np.asarray(pos) + np.random.default_rng(seed).normal(0.0, sigma, (len(pos), 3)) / (a * n)
    return lattice, frac, z


@pytest.mark.parametrize("sigma", [0.01, 0.02])
def test_rattled_structure_keeps_its_string_at_the_default(sigma: float) -> None:
    cell = rocksalt_supercell(sigma)
    rec, sym = analyze(cell)
    assert rec.render() == ROCKSALT
    assert sym.symprec > 0.01 and sym.rms < 0.1 and sym.warning is None
    assert scope.from_structure(cell).render() == ROCKSALT  # the default is "auto"
    # the published tolerance and a strict one lose the symmetry, and say so
    for strict in (0.01, 1e-5):
        rec, sym = analyze(cell, strict)
        assert rec.render() == "P 1 | 1a | Na 0.5 Cl 0.5" and rec.spacegroup == 1
        assert sym.warning is not None and "P1 (no. 1" in sym.warning and "Fm-3m (no. 225" in sym.warning


def test_exact_structure_reads_as_the_published_converter_with_no_warning() -> None:
    cell = rocksalt_supercell(0.0)
    for tol in ("auto", 0.01, 1e-5):
        rec, sym = analyze(cell, tol)
        assert rec.render() == ROCKSALT and sym.warning is None
    assert analyze(cell)[1].symprec == 0.01  # exact: the published tolerance, not a looser one


def test_real_lower_symmetry_gets_no_warning() -> None:
    # a tetragonal strain of 0.008 Å (c/a) is real at symprec 1e-4: I4/mmm satisfied exactly, so no warning
    # although the cell is cubic at 0.01 Å
    lattice, frac, z = rocksalt_supercell(0.0)
    tet = (np.diag([11.28, 11.28, 11.288]), frac, z)
    rec, sym = analyze(tet, 1e-4)
    assert rec.spacegroup == 139 and sym.warning is None  # I4/mmm
    assert analyze(tet)[0].spacegroup == 225  # at the published 0.01 Å it is cubic, as CLOUD's converter reads it


def test_symmetrization_displacement_measures_the_noise() -> None:
    import spglib

    for sigma in (0.0, 0.01, 0.02):
        lattice, frac, z = rocksalt_supercell(sigma, seed=1)
        ds = spglib.get_symmetry_dataset((lattice, frac, z), symprec=0.2)
        assert ds.number == 225
        rms, dmax = symmetrization_displacement(lattice, frac, ds)
        # RMS of a 3-D Gaussian displacement: sigma·sqrt(3) (the orbit average removes a little)
        assert rms == pytest.approx(sigma * np.sqrt(3), rel=0.2, abs=1e-9) and dmax >= rms


def test_primitive_atoms_reads_the_same_symmetry() -> None:
    cell = rocksalt_supercell(0.02)
    assert scope.primitive_atoms(cell) == 2
    assert scope.primitive_atoms(cell, 1e-5) == 64


@pytest.mark.parametrize("bad, match", [
    ({"symprec": 0}, "symprec must be a finite number > 0 and <= 1"),
    ({"symprec": -0.01}, "symprec must be"),
    ({"symprec": 2.0}, "<= 1"),
    ({"symprec": float("nan")}, "symprec must be a finite number"),
    ({"symprec": "loose"}, "symprec: unknown value 'loose'"),
    ({"symprec": True}, 'symprec must be a number of Å or "auto"'),
    ({"symprec": None}, 'symprec must be a number of Å or "auto"'),
    ({"angle_tolerance": 0}, "angle_tolerance must be a finite number > 0 and <= 30"),
    ({"angle_tolerance": "5"}, "angle_tolerance must be a number of degrees"),
])
def test_bad_tolerances_are_refused_naming_the_option(bad: dict, match: str) -> None:
    kw = {"symprec": "auto", "angle_tolerance": 5.0, **bad}
    with pytest.raises(ConfigError, match=match):
        check_tolerances(kw["symprec"], kw["angle_tolerance"])
    with pytest.raises(StructureError, match=match):
        scope.from_structure(rocksalt_supercell(), kw["symprec"], kw["angle_tolerance"])
    with pytest.raises(ScopeError, match=match):
        scope.convert_many([rocksalt_supercell()], symprec=kw["symprec"], angle_tolerance=kw["angle_tolerance"])
    from cloudphys.inputs import read_inputs, to_records

    with pytest.raises(ConfigError, match=match):
        to_records(read_inputs([ROCKSALT]), dialect="default", symprec=kw["symprec"],
                   angle_tolerance=kw["angle_tolerance"])


def test_check_tolerances_accepts_numbers_strings_and_auto() -> None:
    assert check_tolerances("auto", 5) == ("auto", 5.0)
    assert check_tolerances(" AUTO ", 2.5) == ("auto", 2.5)
    assert check_tolerances("0.05", 5) == (0.05, 5.0)  # the command line passes text
    assert check_tolerances(1e-5, 1) == (1e-5, 1.0)
    with pytest.raises(ConfigError, match="--symprec must be"):
        check_tolerances(0, 5, prefix="--")
    with pytest.raises(ConfigError, match="--angle-tolerance must be"):
        check_tolerances("auto", 90, prefix="--")


def _write_poscar(path: Path, cell: tuple[np.ndarray, np.ndarray, list[int]]) -> Path:
    lattice, frac, z = cell
    order = np.argsort(z, kind="stable")
    names = {11: "Na", 17: "Cl"}
    counts = [(names[el], int(np.sum(np.asarray(z) == el))) for el in sorted(set(z))]
    lines = ["rattled NaCl", "1.0", *(" ".join(f"{x:.10f}" for x in row) for row in lattice),
             " ".join(n for n, _ in counts), " ".join(str(c) for _, c in counts), "Direct",
             *(" ".join(f"{x:.10f}" for x in frac[i]) for i in order)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_scope_takes_the_tolerances_and_writes_the_warning(tmp_path, monkeypatch, capsys) -> None:
    from cloudphys.cli import main

    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    poscar = _write_poscar(tmp_path / "POSCAR", rocksalt_supercell(0.02))
    out = tmp_path / "out.csv"
    assert main(["scope", str(poscar), "-o", str(out), "--no-progress", "--no-spreadsheet-safe"]) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert row["scope"] == ROCKSALT and row["symmetry_warning"] == ""
    assert main(["scope", str(poscar), "-o", str(out), "--symprec", "1e-5", "--angle-tolerance", "3",
                 "--no-progress"]) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert row["scope"].startswith("P 1 | 1a") and "Fm-3m" in row["symmetry_warning"]
    assert "1 with a symmetry warning" in capsys.readouterr().err
    jl = tmp_path / "out.jsonl"
    assert main(["scope", str(poscar), "-o", str(jl), "--symprec", "0.01", "--no-progress"]) == 0
    assert "Fm-3m" in json.loads(jl.read_text())["symmetry_warning"]
    for bad, match in ((["--symprec", "0"], "--symprec must be"), (["--symprec", "tight"], "--symprec: unknown"),
                       (["--angle-tolerance", "-1"], "--angle-tolerance must be")):
        rc = main(["scope", str(poscar), "-o", str(out), *bad])
        assert rc != 0 and match in capsys.readouterr().err


def _as_dict(cell: tuple[np.ndarray, np.ndarray, list[int]]) -> dict:
    """A pymatgen ``Structure.as_dict()``-shaped dict of a spglib cell (NaCl only)."""
    lattice, frac, z = cell
    names = {11: "Na", 17: "Cl"}
    return {"lattice": {"matrix": lattice.tolist()},
            "sites": [{"species": [{"element": names[el], "occu": 1}], "abc": list(map(float, x))}
                      for x, el in zip(frac, z)]}


def test_cache_distinguishes_tolerances(tmp_path, monkeypatch) -> None:
    from cloudphys.inputs import read_inputs, to_records

    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{k}", "structure": _as_dict(rocksalt_supercell(0.02, seed=k))}) + "\n"
                            for k in range(2)))
    for _ in range(2):  # the second round reads the cache: same answers, warnings included
        auto = to_records(read_inputs([str(rows)]), dialect="default")
        strict = to_records(read_inputs([str(rows)]), dialect="default", symprec=0.01)
        tight_angle = to_records(read_inputs([str(rows)]), dialect="default", symprec=0.01, angle_tolerance=1)
        assert [it.scope for it in auto] == [ROCKSALT] * 2 and not any(it.symmetry_warning for it in auto)
        assert all(it.scope.startswith("P 1") and "Fm-3m" in it.symmetry_warning for it in strict)
        assert all(it.scope.startswith("P 1") for it in tight_angle)
    files = sorted((tmp_path / "cache" / "scope").glob("rows.jsonl.*.json"))
    assert len(files) == 3  # one cache file per (symprec, angle_tolerance)
    blobs = [json.loads(f.read_text()) for f in files]
    assert sorted(f"{b['meta']['settings']['symprec']}/{b['meta']['settings']['angle_tolerance']}" for b in blobs) == [
        "0.01/1.0", "0.01/5.0", "auto/5.0"]
    assert sorted(len(b["warnings"]) for b in blobs) == [0, 2, 2]  # the warnings are cached with the strings


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from cloudphys.modeling.model import build_model

    root = tmp_path_factory.mktemp("tiny") / "model"
    torch.manual_seed(0)
    build_model({"encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2,
                             "composition_features": True},
                 "head": {"name": "debye", "observables": ["cv"]}, "data": {"name": "cloud-cv"}}).save_pretrained(root)
    return root


def test_model_predict_takes_the_tolerances_and_reports_the_warning(tiny_model, tmp_path, monkeypatch) -> None:
    from cloudphys.models import load_model

    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    from pymatgen.core import Structure

    def structure(cell: tuple) -> Structure:
        return Structure(cell[0], cell[2], cell[1])

    m = load_model(str(tiny_model))
    cell = structure(rocksalt_supercell(0.02))
    exact = m.predict(structure(rocksalt_supercell(0.0)), [300])
    auto = m.predict(cell, [300])
    strict = m.predict(cell, [300], symprec=1e-5)
    assert auto[0].scope == exact[0].scope == ROCKSALT and auto[0].symmetry_warning is None
    np.testing.assert_allclose(auto[0].values("cv"), exact[0].values("cv"), rtol=1e-6)
    assert strict[0].scope.startswith("P 1") and "Fm-3m" in strict[0].symmetry_warning
    assert "WARNING low symmetry" in repr(strict)
    row = strict.rows()[0]
    assert "Fm-3m" in row["symmetry_warning"] and strict.columns()[-1] == "symmetry_warning"
    assert auto.rows()[0]["symmetry_warning"] is None
    with pytest.raises(ConfigError, match="symprec must be"):
        m.predict(cell, [300], symprec=0)
    with pytest.raises(ConfigError, match="angle_tolerance must be"):
        m.predict(cell, [300], angle_tolerance=float("inf"))


def test_cli_predict_takes_the_tolerances(tiny_model, tmp_path, monkeypatch, capsys) -> None:
    from cloudphys.cli import main

    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    poscar = _write_poscar(tmp_path / "POSCAR", rocksalt_supercell(0.02))
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_model), "--input", str(poscar), "-T", "300", "-o", str(out),
                 "--no-spreadsheet-safe"]) == 0
    (row,) = list(csv.DictReader(out.read_text().splitlines()))
    assert row["scope"] == ROCKSALT and row["symmetry_warning"] == ""
    assert main(["predict", str(tiny_model), "--input", str(poscar), "-T", "300", "-o", str(out),
                 "--symprec", "1e-5"]) == 0
    (row,) = list(csv.DictReader(out.read_text().splitlines()))
    assert row["scope"].startswith("P 1") and "Fm-3m" in row["symmetry_warning"]
    assert "symmetry warning" in capsys.readouterr().err
    rc = main(["predict", str(tiny_model), "--input", str(poscar), "-o", str(out), "--symprec", "-1"])
    assert rc != 0 and "--symprec must be" in capsys.readouterr().err


def test_ladder_skips_tolerances_that_would_merge_close_atoms() -> None:
    # two atoms 0.3 Å apart: the 0.2 Å step would let spglib merge them, so it is not tried
    cell = (np.eye(3) * 4, [[0, 0, 0], [0.075, 0.001, 0]], [11, 17])
    rec, sym = analyze(cell)
    assert sym.symprec < 0.15 and rec.spacegroup >= 1
    assert max(AUTO_LADDER) == 0.2
