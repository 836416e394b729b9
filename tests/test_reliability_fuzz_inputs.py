"""Reliability guarantee 2 (inputs): fuzzing structure files and SCOPE tables through cloudphys.inputs.

Seeded random damage -- truncation, byte flips, huge numbers, NaN, duplicated blocks, wrong atom
counts, binary junk, damaged gzip -- applied to CIF, POSCAR, pymatgen JSON and extxyz files, plus
CSV tables of mutated SCOPE strings with random ``n_atoms``. For every generated input:

* 0 tracebacks: ``read_inputs`` and ``to_records`` never raise; every item ends with a SCOPE
  string or an error that names it (its file, ``FILE:LINE`` or ``FILE@K``);
* 0 lost rows: each file gives at least one item, in order, and a table exactly one per row;
* 0 hangs: each input takes less than the per-item budget (``BUDGET_S``);
* 0 imports from data: a real canary module named by ``@module`` in the JSON is never imported.

``FUZZ_INPUTS`` inputs: 2,000 by default (CI, well under a minute), 20,000 in the ``slow`` run
(``CLOUDPHYS_FUZZ_INPUTS=N`` overrides). See docs/reliability.md.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloudphys.inputs import Limits, read_inputs, to_records

FUZZ_INPUTS = int(os.environ.get("CLOUDPHYS_FUZZ_INPUTS") or 2_000)
BUDGET_S = 10.0  # per input, on the shared 2-core machine; the limits below keep it far lower
LIMITS = Limits(max_atoms=500, max_bytes=200_000, max_symops=400)
CANARY = "cloudphys_fuzz_canary"

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _bases() -> dict[str, str]:
    from pymatgen.core import Lattice, Structure

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])
    tio2 = Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.59, 2.96), ["Ti", "O"],
                                     [[0, 0, 0], [0.305, 0.305, 0]])
    d = nacl.as_dict()
    d["sites"][0]["properties"] = {"x": {"@module": CANARY, "@class": "Evil"}}
    xyz = []
    for s in (nacl, si):
        lat = " ".join(f"{v:.6f}" for v in s.lattice.matrix.ravel())
        atoms = "".join(f"{site.specie} {site.coords[0]:.6f} {site.coords[1]:.6f} {site.coords[2]:.6f}\n" for site in s)
        xyz.append(f"{len(s)}\nLattice=\"{lat}\" Properties=species:S:1:pos:R:3 pbc=\"T T T\"\n{atoms}")
    return {
        "nacl.cif": nacl.to(fmt="cif"),
        "two.cif": si.to(fmt="cif") + "\n" + tio2.to(fmt="cif").replace("data_", "data_b_"),
        "POSCAR": tio2.to(fmt="poscar"),
        "nacl.json": json.dumps(d),
        "frames.extxyz": "".join(xyz),
    }


_NUMBERS = ["nan", "NaN", "inf", "-inf", "1e308", "1e30", "-1e30", "0", "-1", "99999999999", "1e-300", "1e400"]


def _damage(rng: random.Random, text: str) -> bytes:
    data = text.encode()
    how = rng.choice(["truncate", "flip", "number", "number", "duplicate", "count", "junk", "empty", "lines", "nest",
                      "keep"])
    if how == "truncate":
        data = data[: rng.randrange(len(data) + 1)]
    elif how == "flip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        data = bytes(b)
    elif how == "number":
        toks = text.split(" ")
        idx = [k for k, t in enumerate(toks) if t.strip().replace(".", "", 1).replace("-", "", 1).isdigit()]
        for k in rng.sample(idx, min(len(idx), rng.randint(1, 4))):
            toks[k] = rng.choice(_NUMBERS) + ("\n" if toks[k].endswith("\n") else "")
        data = " ".join(toks).encode()
    elif how == "duplicate":
        a = rng.randrange(len(data))
        b = min(len(data), a + rng.randint(1, 400))
        data = data[:b] + data[a:b] * rng.randint(1, 30) + data[b:]
    elif how == "count":
        lines = text.splitlines(keepends=True)
        k = rng.randrange(len(lines))
        lines[k] = str(rng.choice([0, -3, 7, 10**6, 10**12])) + "\n"
        data = "".join(lines).encode()
    elif how == "junk":
        a = rng.randrange(len(data) + 1)
        data = data[:a] + os.urandom(rng.randint(1, 300)) + data[a:]
    elif how == "empty":
        data = b""
    elif how == "nest":  # deep nesting: a recursion bomb for JSON readers
        a = rng.randrange(len(data) + 1)
        depth = rng.choice([100, 5_000, 100_000])
        data = data[:a] + (b"[" * depth if rng.random() < 0.5 else b'{"a":' * depth) + data[a:]
    elif how == "lines":
        lines = text.splitlines(keepends=True)
        rng.shuffle(lines)
        data = "".join(lines[: rng.randint(1, len(lines))]).encode()
    return data


def _gzip_damage(rng: random.Random, data: bytes) -> bytes:
    packed = gzip.compress(data, compresslevel=1)
    how = rng.choice(["keep", "truncate", "flip"])
    if how == "truncate":
        return packed[: rng.randrange(len(packed) + 1)]
    if how == "flip":
        b = bytearray(packed)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    return packed


def _scope_rows(rng: random.Random, n: int) -> list[tuple[str, str]]:
    good = ["-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5", "-F 4 2 3 | 8a | Si 1.0", "P 1 | 1a | Cu 1.0",
            "1 6 a O D D a D O D b O O O c O O O d O O O e O O O 0 | 4a 4b | Na 0.5 Cl 0.5"]
    rows = []
    for _ in range(n):
        s = rng.choice(good)
        toks = s.split(" ")
        for _ in range(rng.choice([0, 0, 1, 2])):
            k = rng.randrange(len(toks))
            toks[k] = rng.choice(["|", "4z", "Zz", "0.55", "nan", "", "9999a", toks[rng.randrange(len(toks))], "\x00"])
        n_atoms = rng.choice(["2", "8", "1", "0", "-4", "nan", "1e30", "abc", "", "4.5", "inf"])
        rows.append((" ".join(toks), n_atoms))
    return rows


def _write_inputs(root: Path, n: int, seed: int) -> list[tuple[Path, int | None]]:
    """``n`` generated inputs: ``(file, rows)`` with ``rows`` set for a table (exact item count)."""
    rng = random.Random(seed)
    bases = _bases()
    out: list[tuple[Path, int | None]] = []
    made = 0
    k = 0
    while made < n:
        k += 1
        if rng.random() < 0.1:  # a table of SCOPE strings: one item per row
            rows = _scope_rows(rng, min(20, n - made))
            path = root / f"{k:05d}_strings.csv"
            import csv

            with open(path, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["id", "scope", "n_atoms"])
                w.writerows([[f"r{j}", s, na] for j, (s, na) in enumerate(rows)])
            out.append((path, len(rows)))
            made += len(rows)
            continue
        name = rng.choice(list(bases))
        data = _damage(rng, bases[name])
        if rng.random() < 0.2:
            name += ".gz"
            data = _gzip_damage(rng, data)
        path = root / f"{k:05d}_{name}"
        path.write_bytes(data)
        out.append((path, None))
        made += 1
    return out


def _run(root: Path, n: int, seed: int, canary: Path) -> dict[str, Any]:
    inputs = _write_inputs(root, n, seed)
    stats = {"inputs": 0, "items": 0, "ok": 0, "failed": 0, "worst_s": 0.0}
    for path, rows in inputs:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            items = read_inputs([path], limits=LIMITS)  # never raises (0 tracebacks)
            to_records(items, dialect="default", cache=False, limits=LIMITS)
        took = time.perf_counter() - start
        stats["worst_s"] = max(stats["worst_s"], took)
        assert took < BUDGET_S * max(1, len(items)), (path, took)
        assert items, path  # 0 lost rows: a file gives at least one item ...
        if rows is not None:
            assert len(items) == rows and [it.id for it in items] == [f"r{j}" for j in range(rows)], path
        for it in items:
            assert it.name.startswith(str(path)), (path, it.name)  # ... each named after it, in order
            if it.error is None:
                assert it.scope and it.record is not None, (path, it)
                stats["ok"] += 1
            else:
                assert it.error.startswith(it.name) and "Traceback" not in it.error, (path, it.error)
                stats["failed"] += 1
        stats["inputs"] += 1 if rows is None else rows
        stats["items"] += len(items)
    assert not canary.exists() and CANARY not in sys.modules  # 0 imports from data
    return stats


@pytest.fixture()
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    marker = tmp_path / "CANARY_RAN"
    (lib / f"{CANARY}.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('imported')\n"
                                      "class Evil:\n    @classmethod\n    def from_dict(cls, d):\n        return 1\n")
    monkeypatch.syspath_prepend(str(lib))
    sys.modules.pop(CANARY, None)
    return marker


def _check(tmp_path: Path, canary: Path, n: int, seed: int, report: Callable[[str], None]) -> None:
    root = tmp_path / "fuzz"
    root.mkdir()
    stats = _run(root, n, seed, canary)
    assert stats["inputs"] >= n
    assert stats["ok"] > 0 and stats["failed"] > 0  # the generator makes both kinds
    report(f"fuzzed {stats['inputs']} inputs -> {stats['items']} items ({stats['ok']} converted, "
           f"{stats['failed']} error rows); slowest input {stats['worst_s']:.2f} s")


def test_fuzzed_structure_files_and_tables_never_crash_hang_lose_or_import(tmp_path: Path, canary: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    _check(tmp_path, canary, FUZZ_INPUTS, seed=0, report=lambda m: print(m))


@pytest.mark.slow
@pytest.mark.soak
def test_fuzzed_inputs_slow_run(tmp_path: Path, canary: Path) -> None:
    _check(tmp_path, canary, int(os.environ.get("CLOUDPHYS_FUZZ_INPUTS_SLOW") or 20_000), seed=1,
           report=lambda m: print(m))


def test_the_default_run_fuzzes_at_least_2000_inputs() -> None:
    if not os.environ.get("CLOUDPHYS_FUZZ_INPUTS"):
        assert FUZZ_INPUTS >= 2_000
