"""Issue 20 §1 output: the predicted DOS in phonopy's total-DOS convention (Prediction.total_dos, --dos,
--dos-grid, --phonopy-yaml's total_dos.dat), consistent with the predicted thermodynamics."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudphys.errors import DataError
from cloudphys.inference.export import export_phonopy
from cloudphys.inference.result import ItemInfo, Prediction, parse_dos_grid, quantities_from_head, total_dos_on_grid
from cloudphys_phonon_dos.head import K_PER_THZ, PhononDOSHead

R = 8.314462618
T = np.array([20.0, 50.0, 100.0, 300.0, 1000.0])


def _prediction(bins: int = 64) -> Prediction:
    torch.manual_seed(0)
    head = PhononDOSHead(bins=bins)
    w = torch.rand(2, bins, dtype=torch.float64) ** 2
    lat = {"dos": w, "theta_max": torch.tensor([450.0, 900.0], dtype=torch.float64)}
    n = torch.tensor([2.0, 5.0], dtype=torch.float64)
    out = head(lat, temperature=torch.tensor(T).expand(2, -1), n_atoms=n, observables=("u", "cv", "s", "f"))
    zp = head(lat, temperature=torch.zeros(2, 1, dtype=torch.float64), n_atoms=n, observables=("u",))["u"][:, 0]
    theta, g = head.density_of_states(lat, n)
    edges, _ = head.dos_histogram(lat, n)
    items = [ItemInfo("a.cif", "a.cif", "s", 2.0), ItemInfo("b.cif", "b.cif", "s", 5.0),
             ItemInfo("bad.cif", "bad.cif", None, None, "cannot read structure")]
    nan_row = np.full((1, len(T)), np.nan)
    obs = {k: np.vstack([v.numpy(), nan_row]) for k, v in out.items()}
    lat_np = {"dos": np.vstack([w.numpy(), np.full((1, bins), np.nan)]),
              "theta_max": np.append(lat["theta_max"].numpy(), np.nan)}
    dos = {"theta_K": np.vstack([theta.numpy(), np.full((1, bins), np.nan)]),
           "modes": np.vstack([g.numpy(), np.full((1, bins), np.nan)]),
           "edges_THz": np.vstack([edges.numpy(), np.full((1, bins + 1), np.nan)])}
    return Prediction(T, items, obs, quantities_from_head(head), lat_np, dos=dos,
                      zero_point=np.append(zp.numpy(), np.nan), model="test", head="phonon-dos")


def _cv_from_dos(freq_thz: np.ndarray, dos: np.ndarray, step: float, t: float) -> float:
    x = freq_thz * K_PER_THZ / t
    keep = x > 0
    x = x[keep]
    return float((dos[keep] * step * R * x * x * np.exp(-x) / np.expm1(-x) ** 2).sum())


def test_total_dos_holds_every_mode_per_cell_and_per_atom():
    p = _prediction()
    d = p.total_dos(0.05)
    step = 0.05
    np.testing.assert_allclose(d["dos_cell"][:2].sum(1) * step, [6.0, 15.0], rtol=1e-12)
    np.testing.assert_allclose(d["dos_atom"][:2].sum(1) * step, [3.0, 3.0], rtol=1e-12)
    assert np.isnan(d["dos_cell"][2]).all() and np.isnan(d["dos_atom"][2]).all()
    assert d["frequency_THz"][0] == 0.0 and d["frequency_THz"][-1] >= 900.0 / K_PER_THZ
    # a user grid that covers the spectrum: the same count; one that stops early: fewer modes
    f, cell, atom = p[1].total_dos("0:25:0.02")
    assert f[-1] == pytest.approx(25.0) and (cell * 0.02).sum() == pytest.approx(15.0, rel=1e-9)
    f2, cell2, _ = p[1].total_dos("0:5:0.02")
    assert (cell2 * 0.02).sum() < 15.0


@pytest.mark.parametrize("t_index", range(len(T)))
def test_cv_from_the_written_dos_matches_the_predicted_cv(t_index):
    # the head sums each bin's modes at its centre; the written DOS spreads them over the bin: the two
    # agree to the midpoint rule on bins of θ_max/64 (≈ 7 K and 14 K here)
    p = _prediction()
    d = p.total_dos(0.005)
    for i in range(2):
        cv_written = _cv_from_dos(d["frequency_THz"], d["dos_cell"][i], 0.005, T[t_index])
        n = p.items[i].n_atoms
        assert cv_written == pytest.approx(p.observables["cv"][i, t_index], abs=2e-3 * 3 * R * n, rel=5e-3)


def test_dos_csv_phonopy_convention(tmp_path: Path):
    p = _prediction()
    path = p.dos_to_csv(tmp_path / "dos.csv", grid="0:20:0.1")
    rows = list(csv.DictReader(open(path, newline="", encoding="utf-8")))
    assert list(rows[0]) == ["id", "frequency_THz", "dos_states_per_THz_cell", "dos_states_per_THz_atom", "error"]
    a = [r for r in rows if r["id"] == "a.cif"]
    assert len(a) == 201
    cell = np.array([float(r["dos_states_per_THz_cell"]) for r in a])
    atom = np.array([float(r["dos_states_per_THz_atom"]) for r in a])
    np.testing.assert_allclose(cell, 2.0 * atom, rtol=1e-6)  # as written (7 significant digits)
    assert cell.sum() * 0.1 == pytest.approx(6.0, rel=1e-6)
    bad = [r for r in rows if r["id"] == "bad.cif"]
    assert len(bad) == 1 and bad[0]["error"] == "cannot read structure"
    meta = json.loads((tmp_path / "dos.csv.json").read_text())
    assert meta["format_version"] == 2 and meta["grid_THz"]["points"] == 201


def test_phonopy_export_writes_a_consistent_total_dos(tmp_path: Path):
    p = _prediction()
    done = export_phonopy(p, tmp_path / "ph", dos_grid="0:25:0.005")
    assert isinstance(done["a.cif"], Path) and isinstance(done["bad.cif"], str)
    folder = done["b.cif"].parent
    data = np.loadtxt(folder / "total_dos.dat")
    assert data.shape[1] == 2
    assert (data[:, 1] * 0.005).sum() == pytest.approx(15.0, rel=1e-6)  # 3·natom modes
    import yaml

    tp = yaml.safe_load((folder / "thermal_properties.yaml").read_text())
    assert tp["natom"] == 5
    for row in tp["thermal_properties"]:
        cv = _cv_from_dos(data[:, 0], data[:, 1], 0.005, row["temperature"])
        assert cv == pytest.approx(row["heat_capacity"], abs=2e-3 * 3 * R * 5, rel=5e-3)
    csv_dos = p[1].total_dos("0:25:0.005")[1]
    np.testing.assert_allclose(data[:, 1], csv_dos, atol=1e-9)


@pytest.mark.parametrize("spec", ["0", "-1", "a:b:c", "1:0:0.1", "0:10", "0:10:0", "nan"])
def test_bad_grids_are_refused(spec):
    with pytest.raises(DataError, match="dos-grid"):
        parse_dos_grid(spec)


def test_grid_must_be_equally_spaced():
    with pytest.raises(DataError, match="equally spaced"):
        total_dos_on_grid(np.ones((1, 2)), np.array([[0.0, 1.0, 2.0]]), np.array([0.0, 1.0, 3.0]))
    np.testing.assert_allclose(parse_dos_grid("0:1:0.25"), [0, 0.25, 0.5, 0.75, 1.0])


def test_total_dos_same_spectrum_any_grid_offset():
    # a flat DOS of 3 modes on (0, 3] THz averaged on grids with another offset: 1 state/THz inside
    f = np.arange(0.25, 2.76, 0.5)
    d = total_dos_on_grid(np.ones((1, 3)), np.array([[0.0, 1.0, 2.0, 3.0]]), f)
    np.testing.assert_allclose(d[0], 1.0)
