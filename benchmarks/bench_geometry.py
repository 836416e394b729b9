"""Benchmark (issue 20 §3): do geometric inputs of a structure add to what the SCOPE string carries?

A SCOPE string has no lengths: no volume, no density, no bond lengths. Before these are threaded
through the encoder, data loaders, caches and prediction, this probe asks whether they carry
information about the thermodynamics that the composition features (the ones the shipped
``phonondb-dos`` encoder reads, ``encoder.feature_layout: 3``) do not. It fits one gradient-boosting
regressor (scikit-learn ``HistGradientBoostingRegressor``, fixed hyper-parameters, seed 0) per target
on the stable ``train`` materials of phonondb-thermo and reports the MAE per atom on ``val`` (the
split a decision is made on) and ``test``, with three feature sets:

* ``comp``: the composition features of layout 3 (``cloudphys.encoders.descriptors``);
* ``comp+geo``: those plus the nine geometric features of layout 1 below;
* ``comp+geo2``: those plus every feature of layout 2 (the nine and the 26 bond and site features:
  ``cloudphys.scope.geometry.BOND_FEATURES``);
* ``comp+geo3``: those plus the 11 spring-network features of layout 3
  (``cloudphys.scope.geometry.SPRING_FEATURES``);
* ``geo``: the nine geometric features alone.

Geometric features (``cloudphys.scope.geometry.raw_geometric_features``: intensive, the same for
any cell of the crystal, every periodic image within reach; unstandardised here): log volume per atom
(Å³), mass density (u/Å³), mean / min / spread of each atom's nearest-neighbour distance (Å), mean
coordination (neighbours within 1.2× the nearest distance), log mean atomic mass, and two
Lindemann-style combinations (log V^(1/3) − ½ log M and log d_nn − ½ log M).

Targets (per atom): cv at 20, 50, 100 and 300 K, s at 300 K, u at 20 K (almost all zero-point
energy, i.e. the mean frequency).

    pip install scikit-learn       # or the `bench` extra
    CLOUDPHYS_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_geometry.py

``--constants`` prints the mean and standard deviation of each feature over the stable ``train``
materials instead: the fixed constants ``GEOMETRY_MEAN`` / ``GEOMETRY_STD`` of
``cloudphys/scope/geometry.py`` (what a model with ``encoder.geometric_features`` reads).

``--speed N`` times ``raw_geometric_features`` instead: the first ``N`` structures of
``materials.jsonl.gz`` (parsed into pymatgen ``Structure`` objects first, not timed), ms per
structure (median of ``--rounds`` passes); with ``--save FILE.npy`` the rows are kept, so that two
versions of the code can be compared value for value (``--compare OTHER.npy``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time

import numpy as np

GEOMETRIC = ["log V/atom", "density", "d_nn mean", "d_nn min", "d_nn std", "coordination", "log mass",
             "log V^(1/3) - log M / 2", "log d_nn - log M / 2"]
TARGETS = [("cv", 20.0), ("cv", 50.0), ("cv", 100.0), ("cv", 300.0), ("s", 300.0), ("u", 20.0)]


def _table(split: str, structures: dict[str, dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from cloudphys.data.phonondb import load_phonondb_thermo
    from cloudphys.encoders.descriptors import composition_features
    from cloudphys.scope.geometry import raw_geometric_features

    temps = sorted({t for _, t in TARGETS})
    ex = load_phonondb_thermo(split, observables=["cv", "s", "u"], temperatures=temps, stable=True)
    comp = composition_features(ex.scope, ex.n_atoms, layout=3)
    geo = np.asarray([raw_geometric_features(structures[i]) for i in ex.ids], dtype=np.float64)  # layout 3: all 46
    y = np.stack([ex.targets[o][:, temps.index(t)] / ex.n_atoms for o, t in TARGETS], 1)
    return comp, geo, y


def constants() -> None:
    """Mean and std of the raw features over the stable train materials (GEOMETRY_MEAN / GEOMETRY_STD)."""
    from cloudphys.data.base import data_dir
    from cloudphys.data.phonondb import load_phonondb_thermo
    from cloudphys.data.thermo_jsonl import iter_jsonl
    from cloudphys.scope.geometry import raw_geometric_features

    ids = set(load_phonondb_thermo("train", observables=["cv"], stable=True).ids)
    rows = [r for _, r in iter_jsonl(data_dir() / "phonondb-thermo" / "materials.jsonl.gz") if str(r.get("id")) in ids]
    x = np.asarray([raw_geometric_features(r["structure"]) for r in rows], dtype=np.float64)
    print(f"{len(x)} stable train materials")
    print("GEOMETRY_MEAN = np.array([" + ", ".join(f"{v:.6f}" for v in x.mean(0)) + "])")
    print("GEOMETRY_STD = np.array([" + ", ".join(f"{v:.6f}" for v in x.std(0)) + "])")


def speed(n: int, rounds: int, save: str | None, compare: str | None) -> None:
    """ms per structure of raw_geometric_features on the first n phonondb-thermo structures."""
    from pymatgen.core import Structure

    from cloudphys.data.base import data_dir
    from cloudphys.scope.geometry import raw_geometric_features

    structures = []
    with gzip.open(data_dir() / "phonondb-thermo" / "materials.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            if len(structures) >= n:
                break
            structures.append(Structure.from_dict(json.loads(line)["structure"]))
    sizes = np.array([len(s) for s in structures])
    for s in structures[:5]:  # warm: imports, element tables
        raw_geometric_features(s)
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        rows = np.array([raw_geometric_features(s) for s in structures])
        times.append(time.perf_counter() - t)
    ms = 1000.0 * float(np.median(times)) / len(structures)
    print(f"raw_geometric_features: {len(structures)} phonondb-thermo structures (atoms per cell median "
          f"{np.median(sizes):g}, max {sizes.max()}): {ms:.2f} ms/structure (median of {rounds}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    if save:
        np.save(save, rows)
    if compare:
        other = np.load(compare)
        if other.shape != rows.shape:
            raise SystemExit(f"{compare} holds {other.shape} rows, this run {rows.shape}: use the same --speed N")
        print(f"largest difference from {compare}: {float(np.abs(rows - other).max()):.3g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=400, help="boosting iterations (default 400)")
    ap.add_argument("--constants", action="store_true",
                    help="print the standardisation constants (stable train materials) and stop")
    ap.add_argument("--speed", type=int, metavar="N", help="time raw_geometric_features on N structures and stop")
    ap.add_argument("--rounds", type=int, default=3, help="passes of --speed (default 3)")
    ap.add_argument("--save", help="--speed: keep the rows in this .npy file")
    ap.add_argument("--compare", help="--speed: largest difference from the rows of this .npy file")
    args = ap.parse_args()
    from cloudphys.data.base import data_dir

    if args.speed:
        return speed(args.speed, args.rounds, args.save, args.compare)

    if args.constants:
        return constants()
    from sklearn.ensemble import HistGradientBoostingRegressor

    t0 = time.perf_counter()
    structures: dict[str, dict] = {}
    with gzip.open(data_dir() / "phonondb-thermo" / "materials.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            structures[str(row["id"])] = row["structure"]
    tables = {s: _table(s, structures) for s in ("train", "val", "test")}
    print(f"features: {time.perf_counter() - t0:.0f} s; materials train/val/test "
          f"{', '.join(str(len(tables[s][2])) for s in tables)}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    sets = {"comp": lambda c, g: c, "comp+geo": lambda c, g: np.hstack([c, g[:, :9]]),
            "comp+geo2": lambda c, g: np.hstack([c, g[:, :35]]), "comp+geo3": lambda c, g: np.hstack([c, g]),
            "geo": lambda c, g: g[:, :9]}
    print("| target (per atom) | split | " + " | ".join(sets) + " | comp+geo vs comp | comp+geo2 vs comp+geo | comp+geo3 vs comp+geo2 |")
    print("|---|---|" + "---:|" * (len(sets) + 3))
    for k, (obs, temp) in enumerate(TARGETS):
        c_tr, g_tr, y_tr = tables["train"]
        maes: dict[str, dict[str, float]] = {"val": {}, "test": {}}
        for name, pick in sets.items():
            model = HistGradientBoostingRegressor(max_iter=args.iterations, learning_rate=0.05, random_state=0)
            model.fit(pick(c_tr, g_tr), y_tr[:, k])
            for split in ("val", "test"):
                c, g, y = tables[split]
                maes[split][name] = float(np.mean(np.abs(model.predict(pick(c, g)) - y[:, k])))
        for split in ("val", "test"):
            m = maes[split]
            rel = 100.0 * (m["comp+geo"] / m["comp"] - 1.0)
            rel2 = 100.0 * (m["comp+geo2"] / m["comp+geo"] - 1.0)
            rel3 = 100.0 * (m["comp+geo3"] / m["comp+geo2"] - 1.0)
            print(f"| {obs} at {temp:g} K | {split} | " + " | ".join(f"{m[n]:.3f}" for n in sets)
                  + f" | {rel:+.1f} % | {rel2:+.1f} % | {rel3:+.1f} % |")
    print(f"\n(load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main()
