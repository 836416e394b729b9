"""Per-item cost of the input path (cloudphys.inputs) at its limits.

Prints, for synthetic CIFs, the time to read and convert (or refuse) one item: the largest inputs
the default limits let through to pymatgen (sites x listed symmetry operations just under
2 x max_atoms, every generated position distinct) and one listing 20,000 operations (refused before
parsing); and the reading cost per row of phonondb-thermo's materials.jsonl.gz (JSON decoding plus
the plain-data structure check). Run: ``CLOUDPHYS_DATA=../shared/data .venv/bin/python
benchmarks/bench_inputs.py`` (report ``uptime`` with the numbers).
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path


def _cif(n_ops: int, n_sites: int) -> str:
    ops = "\n".join(f"  'x+{k / n_ops:.6f}, y, z'" for k in range(n_ops))
    sites = "\n".join(f"  Na{i} Na {(i * 0.618) % 1:.5f} {(i * 0.414) % 1:.5f} {(i * 0.271) % 1:.5f} 1"
                      for i in range(n_sites))
    return ("data_x\n_cell_length_a 50\n_cell_length_b 50\n_cell_length_c 50\n_cell_angle_alpha 90\n"
            "_cell_angle_beta 90\n_cell_angle_gamma 90\nloop_\n _symmetry_equiv_pos_as_xyz\n" + ops +
            "\nloop_\n _atom_site_label\n _atom_site_type_symbol\n _atom_site_fract_x\n _atom_site_fract_y\n"
            " _atom_site_fract_z\n _atom_site_occupancy\n" + sites + "\n")


def main() -> None:
    from cloudphys.inputs import read_inputs, to_records

    warnings.simplefilter("ignore")
    root = Path(tempfile.mkdtemp())
    print("| CIF (listed operations x sites) | seconds | outcome |\n|---|---|---|")
    for n_ops, n_sites in [(192, 2), (192, 26), (192, 52), (96, 104), (1000, 10), (20_000, 2)]:
        path = root / f"c{n_ops}_{n_sites}.cif"
        path.write_text(_cif(n_ops, n_sites))
        t = time.perf_counter()
        item = to_records(read_inputs([path]), dialect="default", cache=False)[0]
        dt = time.perf_counter() - t
        outcome = item.scope if item.error is None else item.error.split(": ", 1)[1][:70]
        print(f"| {n_ops} x {n_sites} | {dt:.2f} | {outcome} |")
    data = Path(os.environ.get("CLOUDPHYS_DATA", "../shared/data")) / "phonondb-thermo" / "materials.jsonl.gz"
    if data.is_file():
        t = time.perf_counter()
        items = read_inputs([data])
        dt = time.perf_counter() - t
        print(f"\nread_inputs({data.name}): {len(items)} rows in {dt:.2f} s = {1e6 * dt / len(items):.0f} us/row")


if __name__ == "__main__":
    main()
