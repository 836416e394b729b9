"""The direct reader of plain P1 CIFs (``cloudphys.inputs.formats._plain_p1_structure``) builds exactly
the ``Structure`` pymatgen's ``CifParser`` builds (lattice, site order, coordinates bit for bit, labels),
so every SCOPE string is unchanged; anything unusual goes to pymatgen."""

from __future__ import annotations

import csv
import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cloudphys.inputs.formats as formats
from cloudphys.inputs.limits import Limits


def _both(text: str) -> tuple[Any, Any]:
    """(the structure read with the direct reader allowed, the structure pymatgen reads)."""
    out = []
    for fast in (True, False):
        formats.FAST_CIF = fast
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out.append(formats.parse_cif_block(text, Limits()))
        except Exception as exc:  # the same error either way
            out.append(f"{type(exc).__name__}: {exc}")
        finally:
            formats.FAST_CIF = True
    return out[0], out[1]


def _fast_taken(text: str) -> bool:
    from pymatgen.io.cif import CifFile

    blocks = list(CifFile.from_str(text).data.values())
    return len(blocks) == 1 and formats._plain_p1_structure(blocks[0].data) is not None


def _assert_same(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    if isinstance(a, str):
        assert a == b
        return
    assert np.array_equal(a.lattice.matrix, b.lattice.matrix)
    assert [s.species for s in a] == [s.species for s in b]
    assert np.array_equal(a.frac_coords, b.frac_coords)
    assert a.labels == b.labels and a.site_properties == b.site_properties


def _converter_input(text: str) -> tuple[Any, Any]:
    """(what the converter reads from the CIF: a cell for a plain P1 block, else the structure; the
    cell ``structure_cell`` builds from the structure pymatgen reads) -- errors as text."""
    from cloudphys.scope.structure import structure_cell

    out = []
    for load in (lambda d: d.load_for_conversion(), lambda d: structure_cell(d.load_structure())):
        try:
            out.append(load(formats.DeferredStructure("cif", text, Limits())))
        except Exception as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    return out[0], out[1]


def _assert_same_cell(text: str) -> bool:
    """The converter's input from the direct reader is the cell of pymatgen's structure, bit for bit;
    returns whether the direct reader gave a cell."""
    got, want = _converter_input(text)
    if type(got).__name__ != "_Cell":  # load_structure()'s structure or error, as before (_assert_same)
        return False
    assert type(want).__name__ == "_Cell" and len(got) == len(want)
    for a, b in ((got.lattice, want.lattice), (got.positions, want.positions)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    assert got.types == want.types and got.magmoms == want.magmoms
    assert list(got.amounts.items()) == list(want.amounts.items())
    assert [type(v) for v in got.amounts.values()] == [type(v) for v in want.amounts.values()]
    assert got.type_species == want.type_species
    return True


def _data_cifs(root: Path, per_file: int) -> list[str]:
    from pymatgen.core import Structure
    from pymatgen.io.cif import CifWriter

    out = []
    with gzip.open(root / "phonondb-thermo" / "materials.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line, _ in zip(fh, range(per_file)):
            out.append(str(CifWriter(Structure.from_dict(json.loads(line)["structure"]))))
    csv.field_size_limit(1 << 30)
    for path in sorted((root / "structures").glob("*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            for row, _ in zip(csv.DictReader(fh), range(per_file)):
                out.append(row["cif"])
    return out


def test_the_shared_data_cifs_read_identically(data_root: Path) -> None:
    """A sample here; ``benchmarks/bench_predict.py --check-cif`` runs every CIF of the shared data."""
    cifs = _data_cifs(data_root, 25)
    assert len(cifs) >= 100
    taken = 0
    cells = 0
    for text in cifs:
        taken += _fast_taken(text)
        _assert_same(*_both(text))
        cells += _assert_same_cell(text)
    assert taken >= 0.9 * len(cifs)  # the common case is the direct path
    assert cells == taken  # and the converter reads its cell without a Structure


def _cif(cell: str = "4 4 4 90 90 90", ops: str = "'x, y, z'", sites: str = " Na1 Na 0 0 0 1\n Cl1 Cl 0.5 0.5 0.5 1\n",
         extra_site_tags: str = "", extra: str = "") -> str:
    a, b, c, al, be, ga = cell.split()
    return (f"data_t\n_cell_length_a {a}\n_cell_length_b {b}\n_cell_length_c {c}\n_cell_angle_alpha {al}\n"
            f"_cell_angle_beta {be}\n_cell_angle_gamma {ga}\n{extra}loop_\n _symmetry_equiv_pos_as_xyz\n {ops}\n"
            "loop_\n _atom_site_label\n _atom_site_type_symbol\n _atom_site_fract_x\n _atom_site_fract_y\n"
            f" _atom_site_fract_z\n _atom_site_occupancy\n{extra_site_tags}{sites}")


@pytest.mark.parametrize("text", [
    _cif(ops="'x, y, z'\n '-x, -y, -z'"),  # symmetry operations to apply
    _cif(sites=" Na1 Na 0 0 0 0.5\n K1 K 0 0 0 0.5\n Cl1 Cl 0.5 0.5 0.5 1\n"),  # a disordered site
    _cif(sites=" Na1 Na 0.0(1) 0 0 1\n Cl1 Cl 0.5 0.5 0.5 1\n"),  # an uncertainty
    _cif(cell="4.0(2) 4 4 90 90 90"),
    _cif(sites=" Na1 Na+ 0 0 0 1\n Cl1 Cl- 0.5 0.5 0.5 1\n"),  # charged type symbols
    _cif(sites=" Na1 Na 0 0 0 1\n Na2 Na 0.00001 0 1 1\n Cl1 Cl 0.5 0.5 0.5 1\n"),  # a duplicate site
    _cif(sites=" Ne1 Ne 0 0 0 1\n Cl1 Cl 0.5 0.5 0.5 1\n"),  # no electronegativity
    _cif(extra="loop_\n _atom_type_symbol\n _atom_type_oxidation_number\n Na 1\n Cl -1\n"),  # oxidation states
    _cif(extra_site_tags=" _atom_site_U_iso_or_equiv\n",
         sites=" Na1 Na 0 0 0 1 0.01\n Cl1 Cl 0.5 0.5 0.5 1 0.01\n"),  # more site data
    _cif(cell="4 4 0.001 90 90 90"),  # a thin cell: pymatgen's refusal
])
def test_anything_unusual_goes_to_pymatgen(text: str) -> None:
    assert not _fast_taken(text)
    _assert_same(*_both(text))
    assert not _assert_same_cell(text)


def test_a_plain_cif_takes_the_direct_path() -> None:
    text = _cif(sites=" Cl1 Cl 0.5 0.5 0.66670 1\n Na1 Na -0.25 1.0 0.33333 1\n Na2 Na 0.25 0.5 0 1\n")
    assert _fast_taken(text)
    fast, ref = _both(text)
    _assert_same(fast, ref)
    assert [s.species_string for s in fast] == ["Na", "Na", "Cl"]  # pymatgen's order (electronegativity)
    assert fast.frac_coords[2, 2] == 2 / 3 and fast.frac_coords[0, 0] == 0.75  # its 2/3 rounding and its wrap
    assert _assert_same_cell(text)


def test_the_cell_path_leaves_what_it_cannot_say_to_the_structure() -> None:
    from cloudphys.scope.structure import cell_from_symbols

    lattice, coords = np.eye(3) * 4.0, np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    cell = cell_from_symbols(lattice, coords, ["Na", "Cl"])
    assert cell is not None and len(cell) == 2 and cell.amounts == {"Na": 1, "Cl": 1}
    assert cell_from_symbols(lattice, coords, ["Na", "D"]) is None  # not an element of the SCOPE grammar
    assert cell_from_symbols(lattice, coords, ["X", "Cl"]) is None  # the dummy species
    assert cell_from_symbols(lattice, coords[:0], []) is None


_ELEMENTS = ["H", "Li", "C", "N", "O", "F", "Na", "Mg", "Al", "Si", "S", "Cl", "K", "Ti", "Fe", "Cu", "Zn", "Ga",
             "Se", "Sr", "Ag", "Sn", "Te", "Ba", "La", "W", "Pt", "Pb", "Bi", "U"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_random_structures_written_by_pymatgen_read_identically(n: int, seed: int) -> None:
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    rng = np.random.default_rng(seed)
    lengths = rng.uniform(2.5, 12.0, 3)
    angles = rng.uniform(60.0, 120.0, 3)
    try:
        lattice = Lattice.from_parameters(*lengths, *angles)
        if lattice.volume < 1.0:
            return
    except ValueError:
        return
    coords = rng.uniform(-1.0, 2.0, (n, 3))
    coords[rng.random((n, 3)) < 0.2] = rng.choice([0.0, 0.5, 1 / 3, 2 / 3, 0.25])
    species = list(rng.choice(_ELEMENTS, n))
    s = Structure(lattice, species, coords)
    _assert_same(*_both(str(CifWriter(s))))
    _assert_same_cell(str(CifWriter(s)))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.5, 30.0), min_size=3, max_size=3), st.lists(st.floats(20.0, 160.0), min_size=3, max_size=3),
       st.lists(st.floats(-8.0, 8.0), min_size=9, max_size=9))
def test_axis_plane_spacings_are_pymatgens_d_hkl_bit_for_bit(lengths: list[float], angles: list[float],
                                                            matrix: list[float]) -> None:
    """The thin-cell check reads pymatgen's ``d_hkl`` of (100), (010), (001) without its lattices:
    the same bits, for lattices from parameters (what the reader builds) and for any matrix."""
    from pymatgen.core import Lattice

    lattices = [Lattice(np.reshape(matrix, (3, 3)))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lattices.append(Lattice.from_parameters(*lengths, *angles))
    for lat in lattices:
        if not (abs(np.linalg.det(lat.matrix)) > 1e-6 and np.isfinite(lat.matrix).all()):
            continue
        want = [lat.d_hkl(h) for h in ((1, 0, 0), (0, 1, 0), (0, 0, 1))]
        got = formats._axis_plane_spacings(lat.matrix)
        assert [float(x).hex() for x in got] == [float(x).hex() for x in want]
