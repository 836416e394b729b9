"""The phonondb builder reproduces phonondb-thermo from the 32 raw archives (phonopy required)."""

from __future__ import annotations

import gzip
import json
import lzma
import tarfile
from pathlib import Path

import numpy as np
import pytest
from _gamma_modes import assert_curves_agree

from cloudphys.data.phonondb_build import (
    PHONONDB_GRID,
    build_rows,
    expand_inputs,
    material_id,
    read_phonopy_conf,
    write_jsonl,
)
from cloudphys.errors import DataError


def test_read_phonopy_conf():
    smat, pmat = read_phonopy_conf("DIM = 2 0 0 0 2 0 0 0 2\nPRIMITIVE_AXIS = 0 1/2 1/2 1/2 0 1/2 1/2 1/2 0\n")
    assert smat.tolist() == (2 * np.eye(3, dtype=int)).tolist()
    np.testing.assert_allclose(pmat, [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    smat, pmat = read_phonopy_conf("DIM = 3 3 2  # comment\n")
    assert np.diag(smat).tolist() == [3, 3, 2] and np.array_equal(pmat, np.eye(3))
    assert read_phonopy_conf("DIM = 1 1 1\nPRIMITIVE_AXIS = AUTO")[1] == "auto"
    with pytest.raises(DataError, match="no DIM"):
        read_phonopy_conf("PRIMITIVE_AXIS = AUTO", source="x.conf")
    with pytest.raises(DataError, match="9 numbers"):
        read_phonopy_conf("DIM = 2 2 2\nPRIMITIVE_AXIS = 1 0 0")


def test_material_id():
    assert material_id(Path("materials-id-149-si-fd-3m-227.tar.lzma")) == "mp-149"
    assert material_id(Path("whatever"), "mp-25-20180417") == "mp-25"
    assert material_id(Path("my-calc.tar.gz")) == "my-calc"


@pytest.mark.slow  # ~35 s: phonopy on the shared archives
def test_builder_reproduces_shared_rows(data_root, tmp_path):
    pytest.importorskip("phonopy", reason="phonopy is not installed (pip install 'cloudphys[phonopy]')")
    raw = data_root / "phonondb-raw-sample"
    archives = expand_inputs([raw])
    assert len(archives) == 32
    out = tmp_path / "materials.jsonl.gz"
    n, errors = write_jsonl(build_rows([raw], workers=2), out)
    assert n == 32 and errors == []
    with gzip.open(out, "rt") as fh:
        built = [json.loads(line) for line in fh]
    ref = {}
    with gzip.open(data_root / "phonondb-thermo" / "materials.jsonl.gz", "rt") as fh:
        for line in fh:
            row = json.loads(line)
            ref[row["id"]] = row
    meta = json.loads((data_root / "phonondb-thermo" / "meta.json").read_text())
    assert list(PHONONDB_GRID) == meta["temperatures_K"]
    assert [material_id(a) for a in archives] == [r["id"] for r in built]
    gamma_counts = []
    for row in built:
        want = ref[row["id"]]
        for key in ("formula", "spacegroup", "n_atoms", "stable", "has_born"):
            assert row[key] == want[key], (row["id"], key)
        assert row["min_freq_thz"] == pytest.approx(want["min_freq_thz"], abs=1e-5)
        np.testing.assert_allclose(row["structure"]["lattice"]["matrix"], want["structure"]["lattice"]["matrix"],
                                   atol=1e-8)
        assert [s["species"] for s in row["structure"]["sites"]] == [s["species"] for s in want["structure"]["sites"]]
        np.testing.assert_allclose([s["abc"] for s in row["structure"]["sites"]],
                                   [s["abc"] for s in want["structure"]["sites"]], atol=1e-8)
        # every curve value within 1e-4 relative, up to phonopy's Γ acoustic-mode noise (tests/_gamma_modes.py)
        assert len(row["mesh"]) == 3 and min(row["mesh"]) >= 1
        m = assert_curves_agree(row, want, PHONONDB_GRID, int(np.prod(row["mesh"])), label=row["id"])
        gamma_counts.append(m)
        # internal consistency in our units: u = f + T s (J/mol), u(0) = f(0) = zero-point energy > 0
        np.testing.assert_allclose(row["u"], np.asarray(row["f"]) + np.asarray(PHONONDB_GRID) * row["s"], atol=2e-3)
        assert row["u"][0] == row["f"][0] > 0
    assert len(gamma_counts) == 32  # every row checked; m per row is this machine's Γ noise against the shared set's


def test_builder_reports_broken_inputs(data_root, tmp_path):
    pytest.importorskip("phonopy", reason="phonopy is not installed (pip install 'cloudphys[phonopy]')")
    good = sorted((data_root / "phonondb-raw-sample").glob("*.tar.lzma"))[0]
    # an archive without FORCE_SETS
    bad = tmp_path / "materials-id-999999-xx-p1-1.tar.lzma"
    with tarfile.open(good) as src, lzma.open(bad, "wb") as raw, tarfile.open(fileobj=raw, mode="w:") as dst:
        for member in src:
            if not member.name.endswith("FORCE_SETS"):
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    corrupt = tmp_path / "materials-id-888888-yy-p1-1.tar.lzma"
    corrupt.write_bytes(b"not an archive")
    rows = list(build_rows([bad, good, corrupt], workers=1))
    assert [r["id"] for r in rows] == ["mp-999999", material_id(good), "mp-888888"]
    assert "missing FORCE_SETS" in rows[0]["error"] and rows[0]["source"] == bad.name
    assert "error" not in rows[1] and len(rows[1]["cv"]) == 28
    assert rows[2]["source"] == corrupt.name and rows[2]["error"]
    with pytest.raises(DataError, match="no such file"):
        expand_inputs([tmp_path / "nope"])
