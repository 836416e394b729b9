"""Symmetry of relaxed (noisy) structures: SCOPE strings and Cv of rattled crystals (issue 20 §3).

Part 1 (rattle): the dynamically stable test materials of phonondb-thermo (``split.json`` ``test``,
``stable`` true; 629) are rattled by Gaussian displacements of standard deviation 0.005, 0.01, 0.02
and 0.05 Å per Cartesian component (ASE's ``Atoms.rattle(stdev)`` convention; numpy
``default_rng(seed)``, default seed 0; the lattice is kept). Each is converted at ``symprec="auto"``
(the default) and at the published 0.01 Å. Reported per amplitude and tolerance: the fraction whose
canonical SCOPE string equals the exact structure's string at 0.01 Å (the string the models were
trained on), the fraction read as P1, how many carry a ``symmetry_warning``, and the change of Cv
per atom at 50 K and 300 K predicted by the shipped ``phonondb-dos`` model (mean and max over the
629, J/(K·mol-atom), against its prediction for the exact structure).

Part 1b (scan): the same rattled structures (same seed, same draws) read by spglib alone at fixed
tolerances 0.01, 0.02, 0.05, 0.1 and 0.2 Å: the fraction that keeps the exact structure's space group
and operation count, and the fraction read as P1 (the data the default was chosen from).

Part 1c (geo): the geometric model ``phonondb-dos-geo`` (it reads the structure's lengths as well as its
string) on the same rattled structures: the change of its Cv per atom at 50 K and 300 K against its
prediction for the exact structure, at the default tolerance.

Part 2 (consistency): every phonondb-thermo structure (9,089) and the first ``--per-file``
structures of each ``structures/*.csv.gz`` are converted at ``"auto"`` and at 0.01 Å; the records
(space group, Wyckoff sites, composition, as read) are compared and the changes counted.

Run::

    CLOUDPHYS_DATA=../shared/data python benchmarks/bench_rattle.py [--part rattle|scan|geo|consistency|both] [--model M]
        [--seed 0] [--per-file 500] [--out rattle.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

SIGMAS = (0.005, 0.01, 0.02, 0.05)
TOLERANCES: tuple[Any, ...] = ("auto", 0.01)
TEMPERATURES = (50.0, 300.0)


def _data_dir() -> Path:
    env = os.environ.get("CLOUDPHYS_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def _phonondb_rows(data: Path) -> list[dict[str, Any]]:
    with gzip.open(data / "phonondb-thermo" / "materials.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _cell(structure: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    from cloudphys.scope import _grammar as G

    z = {el: k for k, el in enumerate(G.ELEMENTS, start=1)}
    lattice = np.asarray(structure["lattice"]["matrix"], dtype=np.float64)
    frac = np.asarray([s["abc"] for s in structure["sites"]], dtype=np.float64)
    numbers = [z[s["species"][0]["element"]] for s in structure["sites"]]
    return lattice, frac, numbers


def _test_cells(data: Path) -> list[tuple[np.ndarray, np.ndarray, list[int]]]:
    split = json.loads((data / "phonondb-thermo" / "split.json").read_text())
    return [_cell(r["structure"]) for r in _phonondb_rows(data) if split.get(r["id"]) == "test" and r["stable"]]


def _rattled(cells: list[Any], seed: int) -> dict[float, list[Any]]:
    """The rattled cells of every σ (one generator, σ by σ, cell by cell: the same draws in every part)."""
    rng = np.random.default_rng(seed)
    out = {}
    for sigma in SIGMAS:
        out[sigma] = []
        for lattice, frac, numbers in cells:
            disp = rng.normal(0.0, sigma, frac.shape)  # Å, per Cartesian component
            out[sigma].append((lattice, frac + disp @ np.linalg.inv(lattice), numbers))
    return out


SCAN_TOLERANCES = (0.01, 0.02, 0.05, 0.1, 0.2)


def scan(data: Path, seed: int) -> dict[str, Any]:
    import spglib

    cells = _test_cells(data)
    ref = [spglib.get_symmetry_dataset(c, symprec=0.01) for c in cells]
    rows = []
    for sigma, rattled in [(0.0, cells), *_rattled(cells, seed).items()]:
        row: dict[str, Any] = {"sigma_A": sigma}
        for t in SCAN_TOLERANCES:
            ds = [spglib.get_symmetry_dataset(c, symprec=t) for c in rattled]
            row[f"same_{t}"] = float(np.mean([d.number == r.number and len(d.rotations) == len(r.rotations)
                                              for d, r in zip(ds, ref)]))
            row[f"p1_{t}"] = float(np.mean([d.number == 1 for d in ds]))
        rows.append(row)
    return {"materials": len(cells), "seed": seed, "rows": rows}


def rattle(data: Path, seed: int) -> dict[str, Any]:
    from cloudphys import load_model
    from cloudphys.scope.structure import analyze

    cells = _test_cells(data)
    exact = [analyze(c, 0.01)[0].render() for c in cells]
    conv: dict[tuple[float, Any], list[tuple[str | None, int, bool]]] = {}
    seconds: dict[Any, float] = {t: 0.0 for t in TOLERANCES}
    for sigma, rattled in _rattled(cells, seed).items():
        for tol in TOLERANCES:
            out = []
            t0 = time.perf_counter()
            for cell in rattled:
                try:
                    rec, sym = analyze(cell, tol)
                    out.append((rec.render(), rec.spacegroup, sym.warning is not None))
                except Exception as exc:  # counted as failed, never dropped
                    out.append((None, 0, False))
                    print(f"conversion failed: {exc}", file=sys.stderr)
            seconds[tol] += time.perf_counter() - t0
            conv[(sigma, tol)] = out
    strings = sorted({s for s in exact} | {s for v in conv.values() for s, _, _ in v if s is not None})
    model = load_model("phonondb-dos")
    t0 = time.perf_counter()
    pred = model.predict(strings, list(TEMPERATURES), observables=["cv"])
    predict_s = time.perf_counter() - t0
    if pred.errors:
        raise SystemExit(f"prediction failed: {list(pred.errors.items())[:3]}")
    cv = {s: pred.observables["cv"][k] for k, s in enumerate(strings)}  # per atom (strings: one atom)
    table = []
    for sigma in SIGMAS:
        for tol in TOLERANCES:
            out = conv[(sigma, tol)]
            same = [s == e for (s, _, _), e in zip(out, exact)]
            diffs = np.array([np.abs(cv[s] - cv[e]) for (s, _, _), e in zip(out, exact) if s is not None])
            table.append({
                "sigma_A": sigma, "symprec": tol, "n": len(out), "failed": sum(s is None for s, _, _ in out),
                "unchanged": float(np.mean(same)), "p1": float(np.mean([g == 1 for _, g, _ in out])),
                "warned": int(sum(w for _, _, w in out)),
                **{f"cv{int(T)}_mean": float(diffs[:, j].mean()) for j, T in enumerate(TEMPERATURES)},
                **{f"cv{int(T)}_max": float(diffs[:, j].max()) for j, T in enumerate(TEMPERATURES)},
            })
    n_conv = len(cells) * len(SIGMAS)
    return {"materials": len(cells), "seed": seed, "rows": table, "distinct_strings": len(strings),
            "predict_seconds": predict_s,
            "ms_per_conversion": {str(t): 1e3 * s / n_conv for t, s in seconds.items()}}


def geo(data: Path, seed: int, model_name: str = "phonondb-dos-geo") -> dict[str, Any]:
    """Part 1c: the geometric model (it reads the structure's lengths, not only its string) on the same
    rattled structures: Cv per atom at 50 and 300 K against its prediction for the exact structure, at
    the default tolerance; a rattled structure whose prediction fails is counted, never dropped."""
    from pymatgen.core import Structure

    from cloudphys import load_model

    def structure(cell: Any) -> Structure:  # what a user gives (predict reads no bare spglib tuples)
        lattice, frac, numbers = cell
        return Structure(lattice, [int(z) for z in numbers], frac)

    cells = [structure(c) for c in _test_cells(data)]
    model = load_model(model_name)
    t0 = time.perf_counter()
    exact = model.predict(cells, list(TEMPERATURES), observables=["cv"], workers=1)
    if exact.errors:
        raise SystemExit(f"prediction failed: {list(exact.errors.items())[:3]}")
    n = np.asarray([it.n_atoms for it in exact.items], dtype=np.float64)[:, None]
    ref = exact.observables["cv"] / n
    rows = []
    for sigma, rattled in _rattled(_test_cells(data), seed).items():
        pred = model.predict([structure(c) for c in rattled], list(TEMPERATURES), observables=["cv"], workers=1)
        ok = np.array([it.error is None for it in pred.items])
        diff = np.abs(pred.observables["cv"] / n - ref)[ok]
        rows.append({"sigma_A": sigma, "n": len(rattled), "failed": int((~ok).sum()),
                     **{f"cv{int(T)}_mean": float(diff[:, j].mean()) for j, T in enumerate(TEMPERATURES)},
                     **{f"cv{int(T)}_max": float(diff[:, j].max()) for j, T in enumerate(TEMPERATURES)}})
    return {"materials": len(cells), "seed": seed, "model": model_name, "rows": rows,
            "seconds": time.perf_counter() - t0}


def consistency(data: Path, per_file: int) -> dict[str, Any]:
    from cloudphys.inputs import read_inputs
    from cloudphys.scope.structure import analyze

    sets: dict[str, list[tuple[str, Any]]] = {
        "phonondb-thermo": [(r["id"], r["structure"]) for r in _phonondb_rows(data)]}
    for path in sorted((data / "structures").glob("*.csv.gz")):
        items = read_inputs([str(path)])[:per_file]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sets[path.name] = [(it.id, it.structure) for it in items]
    result = {}
    for name, pairs in sets.items():
        changed, failed, warned, examples = 0, 0, 0, []
        t_pub = t_auto = 0.0
        for ident, structure in pairs:
            try:
                t0 = time.perf_counter()
                published = analyze(structure, 0.01)[0]
                t1 = time.perf_counter()
                auto, sym = analyze(structure, "auto")
                t_pub, t_auto = t_pub + t1 - t0, t_auto + time.perf_counter() - t1
            except Exception:
                failed += 1
                continue
            warned += sym.warning is not None
            if auto != published:
                changed += 1
                if len(examples) < 5:
                    examples.append([ident, published.render(canonical=False), auto.render(canonical=False),
                                     sym.symprec, round(sym.rms, 4)])
        result[name] = {"structures": len(pairs), "changed": changed, "failed": failed, "warned_auto": warned,
                        "seconds_0.01": t_pub, "seconds_auto": t_auto, "examples": examples}
        print(f"{name}: {changed} of {len(pairs)} change ({failed} failed, {warned} warned)", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("rattle", "scan", "geo", "consistency", "both"), default="both",
                    help="both: rattle and consistency")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="phonondb-dos-geo", help="--part geo: the geometric model (a name or a path)")
    ap.add_argument("--per-file", type=int, default=500, help="structures read from each structures/*.csv.gz")
    ap.add_argument("--out", default=None, help="also write the results as JSON")
    args = ap.parse_args(argv)
    os.environ.setdefault("SPGLIB_WARNING", "OFF")
    data = _data_dir()
    t0 = time.time()
    res: dict[str, Any] = {}
    if args.part in ("rattle", "both"):
        res["rattle"] = r = rattle(data, args.seed)
        print(f"\n{r['materials']} stable test materials of phonondb-thermo, seed {r['seed']}; Cv change per atom "
              "against the exact structure's prediction (phonondb-dos), J/(K·mol-atom)\n")
        print("| rattle σ (Å) | symprec | string unchanged | read as P1 | symmetry_warning | ΔCv 50 K mean / max "
              "| ΔCv 300 K mean / max |")
        print("|---:|---|---:|---:|---:|---:|---:|")
        for row in r["rows"]:
            print(f"| {row['sigma_A']} | {row['symprec']} | {row['unchanged']:.1%} | {row['p1']:.1%} | {row['warned']} "
                  f"| {row['cv50_mean']:.3f} / {row['cv50_max']:.3f} | {row['cv300_mean']:.3f} / {row['cv300_max']:.3f} |")
        print(f"\nconversion: {r['ms_per_conversion']} ms per rattled structure; prediction of "
              f"{r['distinct_strings']} distinct strings {r['predict_seconds']:.1f} s")
    if args.part == "scan":
        res["scan"] = sc = scan(data, args.seed)
        print(f"\n{sc['materials']} stable test materials, seed {sc['seed']}: same space group and operation count "
              "as the exact structure at 0.01 Å / read as P1, by fixed symprec\n")
        print("| rattle σ (Å) | " + " | ".join(f"{t} Å" for t in SCAN_TOLERANCES) + " |")
        print("|---:|" + "---:|" * len(SCAN_TOLERANCES))
        for row in sc["rows"]:
            print(f"| {row['sigma_A']} | " + " | ".join(f"{row[f'same_{t}']:.1%} / {row[f'p1_{t}']:.1%}"
                                                       for t in SCAN_TOLERANCES) + " |")
    if args.part == "geo":
        res["geo"] = g = geo(data, args.seed, args.model)
        print(f"\n{g['materials']} stable test materials, seed {g['seed']}: {g['model']} (reads the geometry) on the "
              "rattled structures, Cv change per atom against its prediction for the exact structure, "
              "J/(K·mol-atom), default symprec\n")
        print("| rattle σ (Å) | failed | ΔCv 50 K mean / max | ΔCv 300 K mean / max |")
        print("|---:|---:|---:|---:|")
        for row in g["rows"]:
            print(f"| {row['sigma_A']} | {row['failed']} | {row['cv50_mean']:.3f} / {row['cv50_max']:.3f} "
                  f"| {row['cv300_mean']:.3f} / {row['cv300_max']:.3f} |")
        print(f"\n{g['seconds']:.0f} s for the {len(g['rows']) + 1} predictions")
    if args.part in ("consistency", "both"):
        res["consistency"] = c = consistency(data, args.per_file)
        print("\n| structures | converted | auto ≠ 0.01 | symmetry_warning (auto) | s at 0.01 | s at auto |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, v in c.items():
            print(f"| {name} | {v['structures'] - v['failed']} | {v['changed']} | {v['warned_auto']} "
                  f"| {v['seconds_0.01']:.1f} | {v['seconds_auto']:.1f} |")
        for name, v in c.items():
            for ex in v["examples"]:
                print(f"  {name} {ex}")
    load = os.getloadavg()[0]
    print(f"\n{time.time() - t0:.0f} s on {os.cpu_count()} CPUs, load average {load:.1f} at the end")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
