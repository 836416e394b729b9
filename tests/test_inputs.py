"""cloudphys.inputs: one item never sinks the batch or runs forever (issue 13, classes 2 and 4).

Each bad item ends as an error row naming its file[:line] and the reason (the limit, with the flag
that raises it); the items around it are read and converted as if it were not there.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudphys.cli import main
from cloudphys.inputs import Limits, read_inputs, to_records
from cloudphys.scope import ConversionResult, convert_many

NACL = "-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5"


def _nacl() -> Any:
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _cif() -> str:
    return _nacl().to(fmt="cif")


def _ok(items: list[Any]) -> list[bool]:
    return [it.error is None for it in items]


@pytest.mark.parametrize("bad", ["-4", "0", "1e30", "nan", "inf", "lots", "1e400"])
def test_an_absurd_n_atoms_is_an_error_row_for_that_row_only(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(f"id,scope,n_atoms\na,{NACL},2\nb,{NACL},{bad}\nc,{NACL},8\n")
    items = to_records(read_inputs([path]), dialect="default")
    assert [it.id for it in items] == ["a", "b", "c"] and _ok(items) == [True, False, True]
    assert items[1].error.startswith(f"{path}:3: bad n_atoms") and [items[0].n_atoms, items[2].n_atoms] == [2, 8]


def test_n_atoms_above_the_limit_names_the_limit_and_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"id": "x", "scope": NACL, "n_atoms": 6000}) + "\n"
                    + json.dumps({"id": "y", "scope": NACL, "n_atoms": 6000}) + "\n")
    items = read_inputs([path])
    assert "max_atoms" in items[0].error and "--max-atoms" in items[0].error
    assert _ok(read_inputs([path], limits=Limits(max_atoms=10_000))) == [True, True]


def test_a_csv_field_over_the_csv_modules_limit_is_read_and_later_rows_too(tmp_path: Path) -> None:
    big = _cif() + "#" + "x" * 300_000 + "\n"  # a CIF comment: > 131072, the csv module's default field limit
    path = tmp_path / "big.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "cif"])
        w.writerows([["a", _cif()], ["big", big], ["c", _cif()]])
    before = csv.field_size_limit()
    items = to_records(read_inputs([path]), dialect="default")
    assert csv.field_size_limit() == before  # never changed for the rest of the process
    assert [(it.id, it.scope) for it in items] == [("a", NACL), ("big", NACL), ("c", NACL)]


def test_a_row_over_the_per_item_budget_is_skipped_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "cif"])
        w.writerows([["a", _cif()], ["big", "\n".join(["x" * 1000] * 200)], ["c", _cif()]])
    items = to_records(read_inputs([path], limits=Limits(max_bytes=50_000)), dialect="default")
    assert len(items) == 3 and _ok(items) == [True, False, True] and items[2].id == "c"
    assert "larger than 50,000 characters" in items[1].error and "--max-item-bytes" in items[1].error


def test_a_malformed_csv_row_does_not_end_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(f"id,scope,n_atoms\na,{NACL},2\nb,{NACL}\0,2\nc,{NACL},2\n".encode())
    items = to_records(read_inputs([path]), dialect="default")
    assert [it.id for it in items] == ["a", "b", "c"] and _ok(items) == [True, False, True]
    assert items[1].error.startswith(f"{path}:3: not a SCOPE string")


def _many_ops_cif(n_ops: int) -> str:
    ops = "\n".join(f"  'x+{k / n_ops:.6f}, y, z'" for k in range(n_ops))
    return ("data_x\n_cell_length_a 50\n_cell_length_b 50\n_cell_length_c 50\n_cell_angle_alpha 90\n"
            "_cell_angle_beta 90\n_cell_angle_gamma 90\nloop_\n _symmetry_equiv_pos_as_xyz\n" + ops +
            "\nloop_\n _atom_site_label\n _atom_site_type_symbol\n _atom_site_fract_x\n _atom_site_fract_y\n"
            " _atom_site_fract_z\n Na1 Na 0.1 0.2 0.3\n Cl1 Cl 0.6 0.7 0.8\n")


def test_a_small_cif_with_thousands_of_symmetry_operations_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "ops.cif"
    path.write_text(_many_ops_cif(20_000))
    start = time.perf_counter()
    out = tmp_path / "out.csv"
    assert main(["scope", str(path), str(tmp_path / "missing.cif"), "-o", str(out), "--no-progress"]) == 0
    assert time.perf_counter() - start < 20
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and "symmetry operations is 20,000 but the limit is 1,000" in rows[0]["error"]
    assert "--max-symops" in rows[0]["error"]


def test_sites_times_operations_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "ops.cif"
    path.write_text(_many_ops_cif(900))
    items = to_records(read_inputs([path], limits=Limits(max_atoms=100)), dialect="default")
    assert "sites x symmetry operations" in items[0].error


def test_too_many_atoms_are_refused_before_parsing(tmp_path: Path) -> None:
    poscar = tmp_path / "POSCAR"
    poscar.write_text("big\n1.0\n10 0 0\n0 10 0\n0 0 10\nNa\n100000000\ndirect\n0 0 0\n")
    big = _nacl().as_dict()
    big["sites"] = big["sites"] * 800
    items = to_records(read_inputs([poscar, big]), dialect="default")
    assert all("max_atoms" in it.error for it in items), [it.error for it in items]


def _bomb(path: Path, size: int, *, lines: bool) -> None:
    with gzip.open(path, "wb", compresslevel=1) as fh:
        if lines:
            fh.write((json.dumps({"id": "a", "scope": NACL}) + "\n").encode())
            fh.write(b'{"id": "bomb", "scope": "')
        chunk = b" " * (1 << 20)
        for _ in range(size >> 20):
            fh.write(chunk)
        if lines:
            fh.write(b'"}\n' + (json.dumps({"id": "c", "scope": NACL}) + "\n").encode())


def test_a_small_compressed_line_that_expands_to_gigabytes_costs_only_the_budget(tmp_path: Path) -> None:
    jsonl, cif = tmp_path / "bomb.jsonl.gz", tmp_path / "bomb.cif.gz"
    _bomb(jsonl, 256 << 20, lines=True)
    _bomb(cif, 256 << 20, lines=False)
    assert jsonl.stat().st_size < 2 << 20  # small on disk
    tracemalloc.start()
    try:
        items = read_inputs([jsonl, cif], limits=Limits(max_bytes=1 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak  # never the 256 MiB the data expands to
    assert [it.id for it in items] == ["a", f"{jsonl}:2", "c", str(cif)] and _ok(items) == [True, False, True, False]
    assert "max_bytes" in items[1].error and "max_bytes" in items[3].error


class _Sleeper:
    """A deferred structure that never finishes loading (stands in for a parser that hangs)."""

    def load_structure(self) -> Any:
        time.sleep(60)


def test_an_item_over_the_time_limit_is_stopped_and_the_batch_goes_on() -> None:
    start = time.perf_counter()
    res = convert_many([("a", _nacl()), ("slow", _Sleeper()), ("c", _nacl())], timeout=2, progress=False)
    assert time.perf_counter() - start < 30
    assert [r.id for r in res] == ["a", "slow", "c"]
    assert res[0].scope == res[2].scope == NACL and res[1].timed_out and "--item-timeout" in res[1].error
    assert isinstance(res[1], ConversionResult)


# -- class 2: what pymatgen would drop silently ---------------------------------------------------

def _cif_with_occupancy(occ: str) -> str:
    return ("data_occ\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n_cell_angle_alpha 90\n"
            "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n"
            " _symmetry_equiv_pos_as_xyz\n 'x, y, z'\nloop_\n _atom_site_label\n _atom_site_type_symbol\n"
            " _atom_site_fract_x\n _atom_site_fract_y\n _atom_site_fract_z\n _atom_site_occupancy\n"
            f" Na1 Na 0 0 0 1\n Cl1 Cl 0.5 0.5 0.5 {occ}\n")


@pytest.mark.parametrize("occ", ["-0.5", "-1", "0", "nan", "x"])
def test_an_invalid_occupancy_is_an_error_not_a_dropped_site(tmp_path: Path, occ: str) -> None:
    path = tmp_path / "occ.cif"
    path.write_text(_cif_with_occupancy(occ))
    items = to_records(read_inputs([path]), dialect="default")
    assert items[0].error and "site Cl1: invalid occupancy" in items[0].error and str(path) in items[0].error


def test_a_structure_dict_with_an_invalid_occupancy_is_an_error() -> None:
    d = _nacl().as_dict()
    d["sites"][3]["species"][0]["occu"] = -0.5
    items = read_inputs([d])
    assert "site 3: invalid occupancy -0.5" in items[0].error


def test_every_block_of_a_multi_block_cif_is_an_item(tmp_path: Path) -> None:
    from pymatgen.core import Lattice, Structure

    si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]]).to(fmt="cif")
    path = tmp_path / "two.cif"
    path.write_text(_cif() + "\n" + si.replace("data_", "data_second_") + "\ndata_broken\n_cell_length_a 1\n")
    items = to_records(read_inputs([path]), dialect="default")
    assert len(items) == 3 and all(it.name.startswith(f"{path}:") for it in items)
    assert items[0].scope == NACL and items[1].scope.endswith("| Si 1.0") and items[2].error
    lines = path.read_text().splitlines()
    assert all(lines[int(it.name.rsplit(":", 1)[1]) - 1].startswith("data_") for it in items)


def test_ase_formats_give_one_item_per_frame(tmp_path: Path) -> None:
    from ase.build import bulk
    from ase.io import write

    a, b = bulk("NaCl", "rocksalt", a=5.64), bulk("Si", "diamond", a=5.43)
    write(str(tmp_path / "f.extxyz"), [a, b])
    write(str(tmp_path / "f.traj"), [a, b, a])
    write(str(tmp_path / "one.json"), a, format="json")
    items = to_records(read_inputs([tmp_path / "f.extxyz", tmp_path / "f.traj", tmp_path / "one.json", a]),
                       dialect="default")
    assert [it.name.rsplit("/", 1)[-1] for it in items] == ["f.extxyz:1", "f.extxyz:5", "f.traj@0", "f.traj@1",
                                                            "f.traj@2", "one.json", "NaCl"]  # an object: its formula
    assert _ok(items) == [True] * 7 and items[0].scope == NACL and items[1].scope.endswith("| Si 1.0")
    assert [it.n_atoms for it in items[:2]] == [2, 2]


def test_folders_are_read_everywhere_cloudphys_scope_reads_them(tmp_path: Path) -> None:
    from cloudphys.data.sources import read_source

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.cif").write_text(_cif())
    (folder / "b.json").write_text(json.dumps(_nacl().as_dict()))
    got = read_source(str(folder))
    assert got.strings == [NACL, NACL] and not got.failures


def test_deeply_nested_json_is_an_error_row_not_a_recursion_error(tmp_path: Path) -> None:
    deep = "[" * 100_000
    (tmp_path / "deep.json").write_text(deep)
    (tmp_path / "deep.jsonl").write_text('{"id": "a", "structure": ' + deep + "\n"
                                         + json.dumps({"id": "b", "scope": NACL}) + "\n")
    with open(tmp_path / "deep.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["id", "structure"], ["c", deep], ["d", json.dumps(_nacl().as_dict())]])
    items = to_records(read_inputs([tmp_path / "deep.json", tmp_path / "deep.jsonl", tmp_path / "deep.csv"]),
                       dialect="default")
    assert [it.id for it in items] == [str(tmp_path / "deep.json"), f"{tmp_path / 'deep.jsonl'}:1", "b", "c", "d"]
    assert _ok(items) == [False, False, True, False, True] and "not valid JSON" in items[0].error


# -- properties: every CSV row is one item, whatever it holds -------------------------------------

_cell_text = st.text(alphabet=st.sampled_from(list('ab ,"|\n\r\t;x0.5-') + ["\x00", "é", "\u2028"]), max_size=60)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(st.tuples(_cell_text, _cell_text), min_size=1, max_size=12),
       budget=st.sampled_from([40, 200, 10_000]))
def test_every_csv_row_is_one_item_in_order(tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str]],
                                            budget: int) -> None:
    """Quotes, separators, newlines and NULs inside fields, rows over the byte budget: each row of a
    CSV written by ``csv.writer`` is exactly one item, in order; an oversized row is an error item
    naming its line and the limit, and the rows after it keep their ids."""
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "scope", "n_atoms"])
        w.writerows([[f"r{k}", s, n] for k, (s, n) in enumerate(rows)])
    items = read_inputs([path], limits=Limits(max_bytes=budget))
    assert len(items) == len(rows)
    for k, (it, (s, _)) in enumerate(zip(items, rows)):
        if it.id != f"r{k}":
            assert it.error and "max_bytes" in it.error and it.name.startswith(f"{path}:"), (k, it)
            continue
        if it.error is None:
            assert it.scope == s.strip()
        else:
            assert it.error.startswith(it.name)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                 st.integers(-10**40, 10**40).map(str)))
def test_n_atoms_is_accepted_exactly_when_it_is_a_positive_finite_number_within_the_limit(text: str) -> None:
    from cloudphys.inputs import check_n_atoms

    try:
        value = float(text)
    except ValueError:
        value = None
    ok = value is not None and math.isfinite(value) and 0 < value <= Limits().max_atoms
    try:
        assert check_n_atoms(text) == value and ok
    except (TypeError, ValueError) as exc:
        assert not ok and "n_atoms" in str(exc)


def test_the_cache_serves_a_file_named_by_another_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"id": f"m{k}", "structure": _nacl().as_dict()}) + "\n" for k in range(3)))
    first = to_records(read_inputs([path]), dialect="default")
    calls: list[int] = []
    import cloudphys.inputs.convert as conv

    real = conv.convert_many
    monkeypatch.setattr(conv, "convert_many", lambda jobs, **kw: calls.append(len(jobs)) or real(jobs, **kw))
    monkeypatch.chdir(tmp_path)
    again = to_records(read_inputs(["rows.jsonl"]), dialect="default")  # relative this time
    assert calls == [] and [it.scope for it in again] == [it.scope for it in first] == [NACL] * 3
    assert [it.n_atoms for it in again] == [8.0] * 3


def test_single_structure_files_are_cached_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder of one-structure CIFs converts once: a re-run reads every string from the cache (keyed by
    the file's content: an edited file converts again)."""
    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cifs"
    folder.mkdir()
    for k in range(3):
        (folder / f"m{k}.cif").write_text(_cif())
    first = to_records(read_inputs([folder]), dialect="default")
    assert [it.scope for it in first] == [NACL] * 3 and [it.n_atoms for it in first] == [8.0] * 3
    calls: list[int] = []
    import cloudphys.inputs.convert as conv

    real = conv.convert_many
    monkeypatch.setattr(conv, "convert_many", lambda jobs, **kw: calls.append(len(jobs)) or real(jobs, **kw))
    again = to_records(read_inputs([folder]), dialect="default")
    assert calls == [] and [it.scope for it in again] == [NACL] * 3 and [it.n_atoms for it in again] == [8.0] * 3
    assert [it.id for it in again] == [it.id for it in first]
    (folder / "m1.cif").write_text(_cif() + "\n")  # new content: converted again, the others still cached
    third = to_records(read_inputs([folder]), dialect="default")
    assert calls == [1] and [it.scope for it in third] == [NACL] * 3


def test_given_default_strings_become_canonical_cloud_strings_stay_as_written() -> None:
    cloud = "1 6 a O D D a D O D b O O O c O O O d O O O e O O O 0 | 4a 4b | Na 0.5 Cl 0.5"
    reordered = "-F 4 2 3 | 4b 4a | Cl 0.5 Na 0.5"  # the same crystal written another way
    items = to_records(read_inputs([reordered, cloud]), dialect="default")
    assert items[0].scope == NACL and items[1].scope == cloud and items[0].record == items[1].record


def test_scope_command_with_an_item_timeout_converts_in_workers(tmp_path: Path) -> None:
    (tmp_path / "a.cif").write_text(_cif())
    (tmp_path / "b.cif").write_text(_many_ops_cif(5000))
    out = tmp_path / "out.csv"
    assert main(["scope", str(tmp_path / "a.cif"), str(tmp_path / "b.cif"), "--item-timeout", "60", "--workers", "2",
                 "-o", str(out), "--no-progress"]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["scope"] for r in rows] == ["'" + NACL, ""] and "max_symops" in rows[1]["error"]
    assert main(["scope", str(tmp_path / "a.cif"), "--item-timeout", "-1"]) == 1  # a one-line error, no traceback


def test_deep_json_cannot_crash_the_process_even_with_a_raised_recursion_limit(tmp_path: Path) -> None:
    """json's C decoder recurses per level; with ``sys.setrecursionlimit`` raised (any library may do
    it) 100,000 ``[`` overflow the C stack -- a segmentation fault. Depth is checked first."""
    import subprocess
    import sys

    deep = "[" * 100_000
    (tmp_path / "deep.json").write_text(deep)
    (tmp_path / "deep.jsonl").write_text('{"id": "a", "structure": ' + deep + "\n")
    with open(tmp_path / "deep.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["id", "structure"], ["c", deep]])
    (tmp_path / "rows.jsonl").write_text(deep + "\n")
    code = (
        "import sys; sys.setrecursionlimit(10**6)\n"
        "from cloudphys.inputs import read_inputs\n"
        "from cloudphys.data.thermo_jsonl import load_thermo_jsonl\n"
        "from cloudphys.errors import DataError\n"
        f"items = read_inputs([{str(tmp_path / 'deep.json')!r}, {str(tmp_path / 'deep.jsonl')!r}, "
        f"{str(tmp_path / 'deep.csv')!r}])\n"
        "assert len(items) == 3 and all('nested more than' in it.error for it in items), [it.error for it in items]\n"
        "try:\n"
        f"    load_thermo_jsonl('all', path={str(tmp_path / 'rows.jsonl')!r})\n"
        "except DataError as exc:\n"
        "    assert 'nested more than' in str(exc), exc\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", (res.returncode, res.stderr[-2000:])


_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                            max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_loads_json_is_json_loads_for_documents_within_the_depth(value: Any) -> None:
    from cloudphys.inputs import loads_json

    text = json.dumps(value)
    assert loads_json(text) == json.loads(text)
