"""Data pipeline: phonondb builder agreement and speed, phonondb-thermo loading with a cold/warm cache.

    CLOUDPHYS_DATA=../shared/data python benchmarks/bench_data.py [--workers 1 2]

Prints two Markdown tables (pasted into docs/benchmarks.md, section "data"):

1. builder: the 32 raw archives of ``phonondb-raw-sample/`` rebuilt with phonopy, wall time per
   worker count, and the largest deviation from the same ids in ``materials.jsonl.gz`` per curve
   (absolute, and relative ``|a-b| / |b|`` over points with ``|b| > 1``, also after removing the part
   that phonopy's machine-dependent Γ acoustic-mode noise explains: ``gamma_mode_corrections``);
2. loader: ``phonondb-thermo`` train/val/test (stable materials, all 28 temperatures) with an empty
   SCOPE cache (structures converted, 1 worker) and again with the cache filled.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def bench_builder(root: Path, workers_list: list[int]) -> None:
    from cloudphys.data.phonondb_build import PHONONDB_GRID, build_rows, gamma_mode_corrections

    raw = root / "phonondb-raw-sample"
    ref = {}
    with gzip.open(root / "phonondb-thermo" / "materials.jsonl.gz", "rt") as fh:
        for line in fh:
            r = json.loads(line)
            ref[r["id"]] = r
    print("| workers | archives | wall time (s) | failed |")
    print("|---:|---:|---:|---:|")
    rows = []
    for w in workers_list:
        t0 = time.perf_counter()
        rows = list(build_rows([raw], workers=w))
        dt = time.perf_counter() - t0
        print(f"| {w} | {len(rows)} | {dt:.1f} | {sum('error' in r for r in rows)} |")
    print()
    built = [r for r in rows if "error" not in r]
    gamma = {r["id"]: gamma_mode_corrections(r, ref[r["id"]], PHONONDB_GRID, int(np.prod(r["mesh"]))) for r in built}
    counts = [m for m, _ in gamma.values()]
    print(f"Materials whose count of phonopy's near-zero Γ acoustic modes differs from the shared set's "
          f"(machine-dependent noise, see cloudphys.data.phonondb_build): {sum(m != 0 for m in counts)} of "
          f"{len(counts)} (m = {sorted(set(counts))}).\n")
    print("| curve | max abs deviation | max rel deviation (\\|ref\\| > 1) | Γ-mode part removed: max abs | max rel (\\|ref\\| > 1) |")
    print("|---|---:|---:|---:|---:|")
    for obs, unit in (("cv", "J/(K mol)"), ("s", "J/(K mol)"), ("u", "J/mol"), ("f", "J/mol")):
        dabs, drel, dcorr, dcabs = 0.0, 0.0, 0.0, 0.0
        for r in built:
            a, b = np.asarray(r[obs]), np.asarray(ref[r["id"]][obs])
            d = np.abs(a - b)
            dc = np.abs(a - gamma[r["id"]][1][obs] - b)
            dabs = max(dabs, float(d.max()))
            dcabs = max(dcabs, float(dc.max()))
            big = np.abs(b) > 1
            if big.any():
                drel = max(drel, float((d[big] / np.abs(b[big])).max()))
                dcorr = max(dcorr, float((dc[big] / np.abs(b[big])).max()))
        print(f"| {obs} | {dabs:.3g} {unit} | {drel:.3g} | {dcabs:.3g} {unit} | {dcorr:.3g} |")
    print()


def bench_loader() -> None:
    from cloudphys.data.phonondb import load_phonondb_thermo

    with tempfile.TemporaryDirectory() as cache:
        os.environ["CLOUDPHYS_CACHE"] = cache
        print("| split | materials | cold cache (s) | warm cache (s) |")
        print("|---|---:|---:|---:|")
        for split in ("train", "val", "test"):
            t0 = time.perf_counter()
            ex = load_phonondb_thermo(split)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            load_phonondb_thermo(split)
            warm = time.perf_counter() - t0
            print(f"| {split} | {len(ex)} | {cold:.1f} | {warm:.1f} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--skip-builder", action="store_true")
    args = ap.parse_args()
    from cloudphys.data import data_dir

    root = data_dir()
    print(f"data directory: {root}; CPU cores: {os.cpu_count()}\n")
    if not args.skip_builder:
        bench_builder(root, args.workers)
    bench_loader()


if __name__ == "__main__":
    main()
