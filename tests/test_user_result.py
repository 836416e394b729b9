"""The user's result object (Prediction), its CSV/pandas/plot outputs and the phonopy export.

Built from the Debye head itself (no trained model needed): latents θ_D → head → u, cv, s, f, so
the numbers obey the physics and the phonopy file can be checked against the head.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from cloudphys.errors import DataError
from cloudphys.inference.export import export_phonopy, write_thermal_properties_yaml
from cloudphys.inference.result import (
    ItemInfo,
    Prediction,
    column_name,
    quantities_from_head,
    unit_slug,
)


def _prediction(n_ok: int = 3, ensemble: bool = True, failed: bool = True, T=(0.0, 50.0, 300.0, 1000.0)) -> Prediction:
    from cloudphys.physics.debye import DebyeHead

    head = DebyeHead()
    theta = torch.linspace(200.0, 800.0, n_ok, dtype=torch.float64)
    n_atoms = torch.arange(1, n_ok + 1, dtype=torch.float64) * 2.0
    temps = torch.tensor(T, dtype=torch.float64)
    out = head(latents={"theta_D": theta}, temperature=temps.expand(n_ok, -1), n_atoms=n_atoms)
    t0 = torch.zeros(n_ok, 1, dtype=torch.float64)
    zero = head(latents={"theta_D": theta}, temperature=t0, n_atoms=n_atoms)["u"][:, 0]
    items = [ItemInfo(f"m{k}", f"m{k}.cif", "scope", float(n_atoms[k])) for k in range(n_ok)]
    obs = {k: v.numpy() for k, v in out.items()}
    lat = {"theta_D": theta.numpy()}
    zp = zero.numpy()
    if failed:
        items.append(ItemInfo("broken.cif", "broken.cif", None, None, "cannot read structure: bad file"))
        obs = {k: np.vstack([v, np.full((1, len(T)), np.nan)]) for k, v in obs.items()}
        lat = {"theta_D": np.append(lat["theta_D"], np.nan)}
        zp = np.append(zp, np.nan)
    std = {k: 0.05 * np.abs(v) + 0.01 for k, v in {**obs, **lat}.items()} if ensemble else None
    return Prediction(np.asarray(T), items, obs, quantities_from_head(head), lat, member_std=std, scale=1.5,
                      calibration={"scale": 1.5, "fitted_on": "val"} if ensemble else None, zero_point=zp,
                      model="test-model", head="debye", members=4 if ensemble else 1)


def test_unit_slugs_and_columns() -> None:
    assert unit_slug("J/(K*mol)") == "J_per_K_mol"
    assert unit_slug("J/mol") == "J_per_mol"
    assert column_name("cv", "J/(K*mol)", "atom") == "cv_J_per_K_mol_atom"
    assert column_name("cv", "J/(K*mol)", "cell", "std") == "cv_std_J_per_K_mol_cell"
    assert column_name("theta_D", "K") == "theta_D_K"


def test_per_atom_is_per_cell_over_n_atoms_and_failed_items_are_kept() -> None:
    p = _prediction()
    assert len(p) == 4 and list(p.errors) == ["broken.cif"]
    for s in p.ok:
        for o in ("u", "cv", "s", "f"):
            np.testing.assert_allclose(s.values(o, "atom") * s.n_atoms, s.values(o, "cell"), rtol=1e-12)
        lo, hi = s.interval("cv")
        assert np.all(lo <= s.values("cv")) and np.all(s.values("cv") <= hi)
        # calibrated std = scale x members' std, band = ± z(0.9) std, clipped at cv >= 0
        np.testing.assert_allclose(hi, np.minimum(s.values("cv") + 1.6448536 * s.std("cv"), 3 * 8.314462618), rtol=1e-6)
        np.testing.assert_allclose(lo, np.maximum(s.values("cv") - 1.6448536 * s.std("cv"), 0.0), rtol=1e-6)
        assert np.all(lo >= 0) and lo[0] == 0.0  # at T = 0 cv is 0: the band does not go negative
        assert np.all(hi <= 3 * 8.314462618 * s.n_atoms + 1e-9)  # nor above Dulong-Petit (per cell: 3nR)
    assert p["broken.cif"].error.startswith("cannot read")
    assert "broken.cif" in repr(p) and "theta_D" in repr(p)


def test_csv_has_units_both_bases_spreads_header_and_error_rows(tmp_path) -> None:
    p = _prediction()
    path = p.to_csv(tmp_path / "out.csv")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("id,source,scope,n_atoms,temperature_K,")  # the first line is the header
    meta = json.loads((tmp_path / "out.csv.json").read_text())  # the metadata: a JSON sidecar
    assert meta["bases"]["atom"] == "per mole of atoms" and meta["spread"]["calibrated_on"] == "val"
    assert meta["model"] == "test-model" and meta["members"] == 4 and meta["errors"] == {
        "broken.cif": "cannot read structure: bad file"}
    assert meta["columns"]["cv_J_per_K_mol_atom"]["unit"] == "J/(K·mol-atom)"
    rows = list(csv.DictReader(lines))
    cols = rows[0].keys()
    for o, u in (("u", "J_per_mol"), ("cv", "J_per_K_mol"), ("s", "J_per_K_mol"), ("f", "J_per_mol")):
        for basis in ("cell", "atom"):
            assert f"{o}_{u}_{basis}" in cols and f"{o}_std_{u}_{basis}" in cols
            assert f"{o}_lo90_{u}_{basis}" in cols and f"{o}_hi90_{u}_{basis}" in cols
    assert {"theta_D_K", "theta_D_std_K", "temperature_K", "n_atoms", "error"} <= set(cols)
    assert len(rows) == 3 * 4 + 1  # 3 materials x 4 temperatures + one error row
    err = [r for r in rows if r["error"]]
    assert len(err) == 1 and err[0]["id"] == "broken.cif" and err[0]["cv_J_per_K_mol_atom"] == ""
    r = next(r for r in rows if r["id"] == "m1" and float(r["temperature_K"]) == 300.0)
    per_cell, per_atom = float(r["cv_J_per_K_mol_cell"]), float(r["cv_J_per_K_mol_atom"])
    assert math.isclose(per_cell, per_atom * float(r["n_atoms"]), rel_tol=1e-7)  # 8 digits written


def test_observables_subset_and_unknown(tmp_path) -> None:
    p = _prediction(ensemble=False)
    p.to_csv(tmp_path / "cv.csv", observables=["cv"])
    header = (tmp_path / "cv.csv").read_text().splitlines()[0]
    assert "cv_J_per_K_mol_atom" in header and "u_J_per_mol_atom" not in header and "std" not in header
    with pytest.raises(DataError, match="not predicted"):
        p.rows(["nope"])


def test_to_pandas_matches_csv() -> None:
    pd = pytest.importorskip("pandas")
    df = _prediction().to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == 13 and "cv_J_per_K_mol_atom" in df.columns


def test_phonopy_yaml_round_trip_with_both_readers(tmp_path) -> None:
    from cloudphys.data.labels import read_thermal_properties_yaml

    p = _prediction(T=(0.0, 10.0, 100.0, 300.0, 1000.0))
    s = p[1]
    path = write_thermal_properties_yaml(s, tmp_path / "thermal_properties.yaml", model="test-model")
    back = read_thermal_properties_yaml(path)
    assert back["natom"] == int(s.n_atoms)
    np.testing.assert_allclose(back["temperatures_K"], s.temperatures)
    for o in ("cv", "s", "u", "f"):  # phonopy's 7 decimals of kJ/mol and J/K/mol
        np.testing.assert_allclose(back[o], s.values(o, "cell"), atol=2e-4)
    phonopy_io = pytest.importorskip("phonopy.file_IO")
    T, cv, entropy, fe, modes, integrated = phonopy_io.read_thermal_properties_yaml([str(path)])
    np.testing.assert_allclose(T, s.temperatures)
    np.testing.assert_allclose(cv[:, 0], s.values("cv", "cell"), atol=1e-6)
    np.testing.assert_allclose(fe[:, 0], s.values("f", "cell") / 1000, atol=1e-6)
    assert modes == [3 * int(s.n_atoms)] and integrated == modes
    text = path.read_text()
    assert "zero_point_energy:" in text and "heat_capacity: J/K/mol" in text


def test_export_phonopy_reports_every_structure(tmp_path) -> None:
    p = _prediction()
    done = export_phonopy(p, tmp_path / "yaml")
    assert set(done) == {"m0", "m1", "m2", "broken.cif"}
    assert isinstance(done["broken.cif"], str) and "failed" in done["broken.cif"]
    assert (tmp_path / "yaml" / "m0" / "thermal_properties.yaml").is_file()


def test_export_refuses_missing_observables_and_fractional_atoms(tmp_path) -> None:
    p = _prediction(failed=False)
    only_cv = Prediction(p.temperatures, p.items, {"cv": p.observables["cv"]}, p.quantities, p.latents)
    with pytest.raises(DataError, match="lacks"):
        write_thermal_properties_yaml(only_cv[0], tmp_path / "x.yaml")
    frac = Prediction(p.temperatures, [ItemInfo("half", n_atoms=1.5)] + p.items[1:], p.observables, p.quantities)
    with pytest.raises(DataError, match="whole number"):
        write_thermal_properties_yaml(frac[0], tmp_path / "y.yaml")


def test_plot_legend_outside_distinct_styles_and_note(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    p = _prediction(n_ok=14)
    info = p.plot(tmp_path / "c.png", max_items=12)
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert info.shown == 12 and info.total == 15 and "12 of 14" in info.note and "1 of 15" in info.note
    fig = info.figure
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0]
    lb = legend.get_window_extent(renderer)
    for ax in fig.axes:
        if ax.get_visible():
            assert not lb.overlaps(ax.get_window_extent(renderer)), "legend covers an axes"
    ax = fig.axes[0]
    styles = {(line.get_color(), line.get_linestyle()) for line in ax.get_lines()}
    assert len(styles) == 12  # no colour/style pair repeats
    assert any("theta" in t.get_text() for t in legend.get_texts())
    assert any("12 of 14" in t.get_text() for t in fig.texts)


def test_plot_dos_panel_and_legend_in_the_spare_slot(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    p = _prediction(n_ok=3, failed=False)
    theta = np.tile((np.arange(16) + 0.5) * 40.0, (3, 1))
    modes = np.full((3, 16), 3.0 / 16) * np.array([[it.n_atoms] for it in p.items])
    p.dos = {"theta_K": theta, "modes": modes, "modes_std": 0.1 * modes}
    info = p.plot(tmp_path / "d.png")
    fig = info.figure
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 5 and "DOS" in visible[-1].get_title()
    np.testing.assert_allclose(p[0].dos[1].sum(), 3.0)  # modes per atom
    renderer = fig.canvas.get_renderer()
    lb = fig.legends[0].get_window_extent(renderer)
    assert not any(lb.overlaps(ax.get_window_extent(renderer)) for ax in visible)
