"""No silent reinterpretation of inputs (issue 22 §4): element symbols, content-keyed caches, a
plugin head's outputs checked against the contract at run time.

* a CIF type symbol / site label, POSCAR species or structure-dict element that is not one of the
  118 elements (or the documented dummy ``X``) is an error row naming it -- never read as another
  element (``Va`` → V, ``Uuo`` → U, ``Wat`` → O, ``OH2`` → a dropped site, ``D``/``T`` → H);
* the SCOPE cache and the generator-table cache are keyed by the bytes of the file: a file replaced
  under the same path, size and modification time (``cp -p``) is converted again; a damaged cache
  entry is converted again, never fatal;
* a head whose outputs break the contract (shape, missing observable, NaN, cv < 0, s < 0,
  f ≠ u − T·s, an exception) gives error rows naming the head and the item; the other items keep
  their predictions.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudphys.errors import StructureError
from cloudphys.inputs import convert_inputs
from cloudphys.inputs.elements import cif_symbol_element, element_symbols

_CIF = """data_x
_cell_length_a 5.64
_cell_length_b 5.64
_cell_length_c 5.64
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F m -3 m'
_symmetry_Int_Tables_number 225
loop_
_symmetry_equiv_pos_as_xyz
x,y,z
loop_
_atom_site_label
{type_header}_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
{label1} {type1}0 0 0
Cl1 {type2}0.5 0.5 0.5
"""


def _cif(path: Path, symbol: str, *, label: bool = False) -> Path:
    if label:
        text = _CIF.format(type_header="", label1=symbol, type1="", type2="")
    else:
        text = _CIF.format(type_header="_atom_site_type_symbol\n", label1="A1", type1=symbol + " ", type2="Cl ")
    path.write_text(text)
    return path


def _convert(*paths: Path, **kw):
    return convert_inputs([str(p) for p in paths], cache=False, **kw)


# -- element symbols ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("symbol", "reason"), [
    ("Va", "not a chemical element"), ("Uuo", "not a chemical element"), ("Wat", "not a chemical element"),
    ("OH2", "not a chemical element"), ("Hw", "not a chemical element"), ("Xx", "not a chemical element"),
    ("D", "deuterium, an isotope"), ("T", "tritium, an isotope"), ("NO3", "pymatgen read"),
])
def test_cif_type_symbols_that_are_not_elements_are_error_rows(tmp_path: Path, symbol: str, reason: str) -> None:
    # the samples: Va, Uuo, Wat became V, U, O; D/T became H; OH2 dropped the site
    good = _cif(tmp_path / "good.cif", "Na")
    bad = _cif(tmp_path / "bad.cif", symbol)
    items = _convert(bad, good)
    assert items[0].error is not None and reason in items[0].error and items[0].scope is None
    if reason != "pymatgen read":
        assert repr(symbol) in items[0].error
    assert items[1].error is None and items[1].scope.endswith("Na 0.5 Cl 0.5")


@pytest.mark.parametrize(("symbol", "element"), [("Na", "Na"), ("NA", "Na"), ("Na+", "Na"), ("Na1+", "Na"),
                                                  ("Fe2+", "Fe"), ("O2-", "O"), ("X", "X")])
def test_plain_and_charged_type_symbols_read_as_their_element(tmp_path: Path, symbol: str, element: str) -> None:
    items = _convert(_cif(tmp_path / "a.cif", symbol))
    assert items[0].error is None, items[0].error
    assert f"{element} 0.5" in items[0].scope


@pytest.mark.parametrize(("label", "ok"), [("Na1", True), ("Na", True), ("NA1a", True), ("Va1", False),
                                            ("Ow1", False), ("D1", False)])
def test_site_labels_without_type_symbols_must_start_with_an_element(tmp_path: Path, label: str, ok: bool) -> None:
    items = _convert(_cif(tmp_path / "a.cif", label, label=True))
    assert (items[0].error is None) == ok, items[0].error
    if not ok:
        assert repr(label) in items[0].error


@pytest.mark.parametrize("species", ["D", "T", "Va", "Xx"])
def test_poscar_and_structure_dict_species_are_never_reinterpreted(tmp_path: Path, species: str) -> None:
    poscar = tmp_path / f"POSCAR_{species}"
    poscar.write_text(f"x\n1.0\n3 0 0\n0 3 0\n0 0 3\n{species}\n1\ndirect\n0 0 0\n")
    doc = {"lattice": {"matrix": [[3, 0, 0], [0, 3, 0], [0, 0, 3]]},
           "sites": [{"species": [{"element": species, "occu": 1}], "abc": [0, 0, 0]}]}
    js = tmp_path / f"{species}.json"
    js.write_text(json.dumps(doc))
    items = _convert(poscar, js)
    for it in items:
        assert it.error is not None and repr(species) in it.error, (it.name, it.error)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="ascii", categories=("L", "N", "P", "S")), min_size=1, max_size=6))
def test_a_cif_symbol_is_its_element_or_refused(symbol: str) -> None:
    """Property: whatever a CIF type symbol is, it reads as the element its leading letters spell
    (any case) or it is refused -- never as an element it does not spell."""
    try:
        element = cif_symbol_element(symbol)
    except StructureError as exc:
        assert repr(symbol.strip()) in str(exc)
        return
    if element is None:
        assert symbol.strip() in ("?", ".")
        return
    letters = "".join(c for c in symbol.strip()[: len(element) + 1] if c.isalpha())
    assert element in element_symbols() | {"X"}
    assert letters.lower() == element.lower()


# -- caches keyed by content ---------------------------------------------------------------------------------

def _diamond(el: str) -> dict:
    return {"lattice": {"matrix": [[0, 2.7, 2.7], [2.7, 0, 2.7], [2.7, 2.7, 0]]},
            "sites": [{"species": [{"element": el, "occu": 1}], "abc": [0, 0, 0]},
                      {"species": [{"element": el, "occu": 1}], "abc": [0.25, 0.25, 0.25]}]}


def _structures(path: Path, el: str) -> Path:
    """A JSON list of two structures (a file of several items)."""
    path.write_text(json.dumps([_diamond(el), _diamond(el)]))
    return path


def test_cache_is_keyed_by_content_not_path_size_or_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the sample: after `cp -p` a Ge file was predicted as the Si that was there before
    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    si, ge = _structures(tmp_path / "si.json", "Si"), _structures(tmp_path / "ge.json", "Ge")
    st_si = si.stat()
    os.utime(ge, ns=(st_si.st_atime_ns, st_si.st_mtime_ns))
    target = tmp_path / "input.json"
    shutil.copy2(si, target)
    first = convert_inputs([str(target)])
    assert [it.error for it in first] == [None, None] and all("Si 1.0" in it.scope for it in first)
    assert list((tmp_path / "cache" / "scope").glob("*.json"))  # the cache was used
    shutil.copy2(ge, target)  # same path, same size, same mtime (cp -p)
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (st_si.st_size, st_si.st_mtime_ns)
    second = convert_inputs([str(target)])
    assert [it.error for it in second] == [None, None] and all("Ge 1.0" in it.scope for it in second)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_types", "bad_scope", "bad_n_atoms", "not_object"])
def test_a_damaged_cache_entry_is_recomputed_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       damage: str) -> None:
    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    src = _structures(tmp_path / "in.json", "Si")
    expected = convert_inputs([str(src)])[0].scope
    (file,) = (tmp_path / "cache" / "scope").glob("*.json")
    blob = json.loads(file.read_text())
    if damage == "truncate":
        file.write_text(file.read_text()[: 40])
    elif damage == "garbage":
        file.write_bytes(b"\x00\xff" * 50)
    elif damage == "wrong_types":
        blob["scope"] = {k: 42 for k in blob["scope"]}
        file.write_text(json.dumps(blob))
    elif damage == "bad_scope":
        blob["scope"] = {k: "not | a | scope string" for k in blob["scope"]}
        file.write_text(json.dumps(blob))
    elif damage == "bad_n_atoms":
        blob["n_atoms"] = {k: float("nan") for k in blob["n_atoms"]}
        file.write_text(json.dumps(blob))
    else:
        file.write_text("[1, 2, 3]")
    again = convert_inputs([str(src)])[0]
    assert again.error is None and again.scope == expected and again.n_atoms == 2
    if damage in ("bad_scope", "wrong_types", "truncate", "garbage", "not_object"):
        assert json.loads(file.read_text())["scope"]  # rewritten whole


def test_generator_table_cache_is_keyed_by_content(tmp_path: Path) -> None:
    from cloudphys.scope import load_generator_table

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"1": "000", "2": "100"}))
    b.write_text(json.dumps({"1": "000", "2": "000"}))  # same size
    st_a = a.stat()
    os.utime(b, ns=(st_a.st_atime_ns, st_a.st_mtime_ns))
    path = tmp_path / "generator.json"
    shutil.copy2(a, path)
    first = load_generator_table(path)
    shutil.copy2(b, path)
    assert path.stat().st_mtime_ns == st_a.st_mtime_ns
    assert load_generator_table(path)[2] != first[2]


# -- a plugin head's outputs, checked at run time ------------------------------------------------------------

GOOD = "-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5"


def _bad():
    """The item the broken heads break on: a 4-atom cell (the others are SCOPE strings, read as 1 atom)."""
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice.cubic(3.61), ["Cu"] * 4, [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])


def _head_class(mode: str):
    from cloudphys.physics.debye import DebyeHead

    class BrokenHead(DebyeHead):
        name = f"reltest-{mode}"

        def compute(self, latents, temperature, n_atoms, observables):
            out = super().compute(latents, temperature, n_atoms, observables)
            hit = (n_atoms == 4).expand_as(temperature)
            if mode == "raises" and bool(hit.any()):
                raise RuntimeError("the plugin's own bug")
            if mode == "negative_cv":
                out["cv"] = torch.where(hit, -out["cv"] - 1.0, out["cv"])
            elif mode == "negative_s":
                out["s"] = torch.where(hit, -out["s"] - 1.0, out["s"])
            elif mode == "f_not_u_minus_ts":
                out["f"] = torch.where(hit, out["f"] * 1.05 + 100.0, out["f"])
            elif mode == "nan":
                out["u"] = torch.where(hit, torch.full_like(out["u"], float("nan")), out["u"])
            elif mode == "wrong_shape":
                out["cv"] = out["cv"][..., :1]
            elif mode == "missing":
                out.pop("s")
            elif mode == "not_tensor":
                out["cv"] = out["cv"].tolist()
            return out

    return BrokenHead


def _model_with(head):
    from cloudphys.config import load_config
    from cloudphys.models.api import Model
    from cloudphys.training import ScopePhysicsModel, build_model
    from tests._training_helpers import TINY

    torch.manual_seed(0)
    base = build_model(load_config({**TINY, "head": {"name": "debye"}}))
    return Model(ScopePhysicsModel(base.encoder, head, base.tokenizer, base.meta), name="broken")


@pytest.mark.parametrize(("mode", "whole_batch", "match"), [
    ("raises", False, "raised RuntimeError: the plugin's own bug"),
    ("negative_cv", False, "cv = .* < 0"),
    ("negative_s", False, "s = .* < 0"),
    ("f_not_u_minus_ts", False, "f = u - T\\*s is violated"),
    ("nan", False, "u is nan"),
    ("wrong_shape", True, "'cv' of shape"),
    ("missing", True, "returned no 's'"),
    ("not_tensor", True, "not a floating tensor"),
])
def test_a_head_breaking_its_contract_is_an_error_row_naming_head_and_item(mode: str, whole_batch: bool,
                                                                          match: str) -> None:
    import re

    model = _model_with(_head_class(mode)())
    T = np.array([0.0, 50.0, 300.0, 1000.0])
    pred = model.predict([GOOD, _bad(), GOOD], T)
    errors = pred.errors
    name = f"reltest-{mode}"
    failed = [k for k, e in errors.items() if e]
    assert failed, "a broken head went unnoticed"
    for err in errors.values():
        assert name in err and re.search(match, err), err
    if not whole_batch:  # only the item the head breaks on is lost
        assert len(failed) == 1 and "Cu" in failed[0] and len(pred.ok) == 2  # only the Cu cell
        assert len(pred.ok) == 2
        for s in pred.ok:
            assert np.isfinite(s.values("cv", "atom")).all()


def test_a_correct_head_passes_the_run_time_check_at_extreme_temperatures() -> None:
    from cloudphys.physics.debye import DebyeHead

    model = _model_with(DebyeHead())
    T = np.array([0.0, 1e-3, 1.0, 10.0, 300.0, 3000.0, 1e5, 1e9])
    pred = model.predict([GOOD, _bad(), "F 4d 2 3 -1d | 8a | Si 1.0"], T)
    assert not pred.errors, pred.errors


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(theta=st.floats(1.0, 5000.0), n=st.integers(1, 200),
       T=st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=6),
       kick=st.sampled_from(["none", "cv", "s", "f"]), size=st.floats(0.02, 10.0))
def test_output_check_accepts_the_debye_head_and_catches_each_violation(theta: float, n: int, T: list[float],
                                                                        kick: str, size: float) -> None:
    """Property: the built-in Debye head's outputs always pass (float32, any θ, n, T); a violation of
    cv >= 0, s >= 0 or f = u − T·s larger than the tolerance is always caught, on that item only."""
    from cloudphys.physics.contract import R_GAS, head_output_problems
    from cloudphys.physics.debye import DebyeHead

    head = DebyeHead()
    temp = torch.tensor([T, T], dtype=torch.float32)
    n_atoms = torch.tensor([float(n), float(n)])
    out = head({"theta_D": torch.tensor([theta, theta])}, temp, n_atoms)
    whole, items = head_output_problems(head, out, temp, n_atoms, ["u", "cv", "s", "f"])
    assert whole is None and items == [None, None], items
    if kick == "none":
        return
    scale = 3 * n * R_GAS
    bad = {k: v.clone() for k, v in out.items()}
    if kick in ("cv", "s"):
        bad[kick][1] = -size * scale
    else:
        bad["f"][1] = bad["f"][1] + size * (scale * temp[1] + bad["u"][1].abs() + temp[1] * bad["s"][1].abs())
    whole, items = head_output_problems(head, bad, temp, n_atoms, ["u", "cv", "s", "f"])
    assert whole is None and items[0] is None and items[1] is not None
