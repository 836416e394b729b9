"""Benchmark of the SCOPE converter (prints the markdown table of docs/benchmarks.md, scope section).

Structures: the 288 AFLOW prototypes shipped inside pymatgen and every structure of
``$CLOUDPHYS_DATA/phonondb-thermo/materials.jsonl.gz`` (9,089).

1. identity -- share of ``cloud``-dialect strings of :func:`cloudphys.scope.from_structure` identical
   to those of a faithful re-implementation of CLOUD's published converter
   (:func:`cloudphys.scope.reference.published_cloud_string`: pymatgen ``SpacegroupAnalyzer``), at the
   same symprec;
2. speed -- CPU time per structure of ``from_structure`` (and of ``from_structure(...).render("cloud")``)
   relative to a bare ``spglib.get_symmetry_dataset`` call on the same structures in the same process
   (cells prepared beforehand), the variants interleaved structure by structure, median over ``--reps``
   (the wall-clock ratio is printed too);
3. throughput -- ``convert_many`` over the phonondb rows with 2 worker processes relative to 1, next to the
   machine's ceiling (bare spglib on the same cells in 2 forked processes with no IPC, relative to 1).

Run::

    CLOUDPHYS_DATA=../shared/data python benchmarks/bench_scope.py [--limit N] [--reps 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import sys
import time
import warnings
from importlib import resources
from pathlib import Path


def _data_dir() -> Path:
    env = os.environ.get("CLOUDPHYS_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="use only the first N phonondb structures")
    ap.add_argument("--reps", type=int, default=2, help="timing repetitions (median)")
    ap.add_argument("--symprec", type=float, default=0.01)
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore")
    os.environ.setdefault("SPGLIB_WARNING", "OFF")
    import spglib
    from monty.serialization import loadfn
    from pymatgen.core import Structure

    import cloudphys
    from cloudphys import scope
    from cloudphys.scope.reference import published_cloud_string

    data = _data_dir()
    gen = json.loads((data / "cloud" / "generator.json").read_text())
    mult = json.loads((data / "cloud" / "wyckoff-position-multiplicities.json").read_text())
    table = scope.load_generator_table(gen)

    aflow_path = resources.files("pymatgen.analysis.prototypes") / "aflow_prototypes.json.gz"
    aflow = [e["snl"].structure for e in loadfn(str(aflow_path))]
    rows = []
    with gzip.open(data / "phonondb-thermo" / "materials.jsonl.gz", "rt") as fh:
        for k, line in enumerate(fh):
            if args.limit is not None and k >= args.limit:
                break
            row = json.loads(line)
            rows.append((row["id"], row["structure"]))
    dicts = [d for _, d in rows]
    sets = {"AFLOW prototypes": aflow, "phonondb-thermo": [Structure.from_dict(d) for d in dicts]}
    symprec = args.symprec

    # 1. identity -------------------------------------------------------------------------------
    ident_rows = []
    ref_time = 0.0
    n_ref = 0
    for name, structs in sets.items():
        same = 0
        diffs = []
        for s in structs:
            ours = scope.from_structure(s, symprec).render("cloud", table)
            t0 = time.perf_counter()
            ref = published_cloud_string(s, gen, mult, symprec=symprec)
            ref_time += time.perf_counter() - t0
            n_ref += 1
            if ours == ref:
                same += 1
            else:
                diffs.append((ours, ref))
        ident_rows.append((name, len(structs), same))
        for ours, ref in diffs[:3]:
            print(f"# differs: ours {ours!r} vs published {ref!r}", file=sys.stderr)

    # 2. speed ----------------------------------------------------------------------------------
    # CPU time of this thread (time.thread_time), measured structure by structure with the four
    # variants interleaved (order rotated), so that other processes on a shared machine affect all
    # variants alike; summed over all structures, median over repetitions.
    structs = sets["AFLOW prototypes"] + sets["phonondb-thermo"]
    cells = [(s.lattice.matrix, s.frac_coords, s.atomic_numbers) for s in structs]
    all_dicts = [s.as_dict() for s in sets["AFLOW prototypes"]] + dicts
    n = len(structs)
    clock = time.thread_time

    def bare(k: int) -> None:
        spglib.get_symmetry_dataset(cells[k], symprec=symprec, angle_tolerance=5)

    def record(k: int) -> None:
        scope.from_structure(structs[k], symprec)

    def string(k: int) -> None:
        scope.from_structure(structs[k], symprec).render("cloud", table)

    def from_dict(k: int) -> None:
        scope.from_structure(all_dicts[k], symprec).render("cloud", table)

    variants = [("bare", bare), ("record", record), ("string", string), ("dicts", from_dict)]
    for k in range(min(n, 50)):  # warm-up (imports, caches)
        for _, fn in variants:
            fn(k)
    totals: dict[str, list[float]] = {name: [] for name, _ in variants}
    wall: dict[str, list[float]] = {name: [] for name, _ in variants}
    for rep in range(args.reps):
        acc = dict.fromkeys(totals, 0.0)
        accw = dict.fromkeys(totals, 0.0)
        for k in range(n):
            shift = (k + rep) % len(variants)
            for name, fn in variants[shift:] + variants[:shift]:
                w0 = time.perf_counter()
                t0 = clock()
                fn(k)
                acc[name] += clock() - t0
                accw[name] += time.perf_counter() - w0
        for name in totals:
            totals[name].append(acc[name] / n)
            wall[name].append(accw[name] / n)
    per = {name: statistics.median(v) for name, v in totals.items()}
    per_wall = {name: statistics.median(v) for name, v in wall.items()}

    # 3. throughput -----------------------------------------------------------------------------
    thr = {}
    if not args.skip_throughput:
        for workers in (1, 2, 1, 2):
            t0 = time.perf_counter()
            res = scope.convert_many(rows, dialect="cloud", generator_table=table, symprec=symprec,
                                     workers=workers, progress=False)
            dt = time.perf_counter() - t0
            assert len(res) == len(rows) and all(r.error is None for r in res)
            thr.setdefault(workers, []).append(len(rows) / dt)

    # The machine's own ceiling: the same spglib work split over 2 forked processes with no
    # inter-process traffic at all (each takes every other cell), relative to 1 process.
    ceiling = []
    if not args.skip_throughput:
        ph_cells = cells[len(sets["AFLOW prototypes"]):]
        for _ in range(2):
            t0 = time.perf_counter()
            for c in ph_cells:
                spglib.get_symmetry_dataset(c, symprec=symprec, angle_tolerance=5)
            one_proc = time.perf_counter() - t0
            t0 = time.perf_counter()
            pids = []
            for part in range(2):
                pid = os.fork()
                if pid == 0:  # child: its half, then exit at once
                    for c in ph_cells[part::2]:
                        spglib.get_symmetry_dataset(c, symprec=symprec, angle_tolerance=5)
                    os._exit(0)
                pids.append(pid)
            for pid in pids:
                os.waitpid(pid, 0)
            ceiling.append(one_proc / (time.perf_counter() - t0))

    # report ------------------------------------------------------------------------------------
    cmd = "CLOUDPHYS_DATA=../shared/data python benchmarks/bench_scope.py" + (
        f" --limit {args.limit}" if args.limit else "") + (f" --reps {args.reps}" if args.reps != 2 else "")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Command: `{cmd}`  ")
    print(f"cloudphys {cloudphys.__version__}, spglib {spglib.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {load:.1f} at the end, symprec {symprec}.\n")
    print("| structures | n | `cloud` strings identical to the published converter |")
    print("|---|---:|---:|")
    for name, count, same in ident_rows:
        print(f"| {name} | {count} | {same}/{count} ({100 * same / count:.2f} %) |")
    print()
    print("| per structure (CPU time, interleaved, median of passes) | µs | relative to bare spglib | wall-clock ratio |")
    print("|---|---:|---:|---:|")
    labels = {
        "bare": "bare `spglib.get_symmetry_dataset` (cells prepared beforehand)",
        "record": "`from_structure(Structure)` → record",
        "string": "`from_structure(Structure).render('cloud')`",
        "dicts": "`from_structure(Structure.as_dict()).render('cloud')`",
    }
    for name, label in labels.items():
        print(f"| {label} | {per[name] * 1e6:.0f} | {per[name] / per['bare']:.3f}x | "
              f"{per_wall[name] / per_wall['bare']:.3f}x |")
    print(f"| published converter (pymatgen `SpacegroupAnalyzer`; wall clock, one pass during step 1) | "
          f"{ref_time / n_ref * 1e6:.0f} | | |")
    if thr:
        one, two = max(thr[1]), max(thr[2])
        print()
        print("| `convert_many` over the phonondb rows | structures/s | relative to 1 worker |")
        print("|---|---:|---:|")
        print(f"| 1 worker | {one:.0f} | 1.00x |")
        print(f"| 2 workers | {two:.0f} | {two / one:.2f}x |")
        if ceiling:
            print(f"| machine ceiling: bare spglib on the same cells in 2 forked processes, no IPC | | {max(ceiling):.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
