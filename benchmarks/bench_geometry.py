"""Benchmark (issue 20 §3): do geometric inputs of a structure add to what the SCOPE string carries?

A SCOPE string has no lengths: no volume, no density, no bond lengths. Before these are threaded
through the encoder, data loaders, caches and prediction, this probe asks whether they carry
information about the thermodynamics that the composition features (the ones the shipped
``phonondb-dos`` encoder reads, ``encoder.feature_layout: 3``) do not. It fits one gradient-boosting
regressor (scikit-learn ``HistGradientBoostingRegressor``, fixed hyper-parameters, seed 0) per target
on the stable ``train`` materials of phonondb-thermo and reports the MAE per atom on ``val`` (the
split a decision is made on) and ``test``, with three feature sets:

* ``comp``: the composition features of layout 3 (``cloudphys.encoders.descriptors``);
* ``comp+geo``: those plus the geometric features below;
* ``geo``: the geometric features alone.

Geometric features (intensive, from the structure as given; 27 periodic images): log volume per atom
(Å³), mass density (u/Å³), mean / min / spread of each atom's nearest-neighbour distance (Å), mean
coordination (neighbours within 1.2× the nearest distance), log mean atomic mass, and two
Lindemann-style combinations (log V^(1/3) − ½ log M and log d_nn − ½ log M).

Targets (per atom): cv at 20, 50, 100 and 300 K, s at 300 K, u at 20 K (almost all zero-point
energy, i.e. the mean frequency).

    pip install scikit-learn       # or the `bench` extra
    CLOUDPHYS_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_geometry.py
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time

import numpy as np

_SHIFTS = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)], dtype=np.float64)
GEOMETRIC = ["log V/atom", "density", "d_nn mean", "d_nn min", "d_nn std", "coordination", "log mass",
             "log V^(1/3) - log M / 2", "log d_nn - log M / 2"]
TARGETS = [("cv", 20.0), ("cv", 50.0), ("cv", 100.0), ("cv", 300.0), ("s", 300.0), ("u", 20.0)]


def geometric_features(structure: dict) -> list[float]:
    """The features above from a pymatgen ``Structure.as_dict()`` (ordered sites)."""
    from pymatgen.core import Element

    lattice = np.asarray(structure["lattice"]["matrix"], dtype=np.float64)
    frac = np.asarray([s["abc"] for s in structure["sites"]], dtype=np.float64) % 1.0
    n = len(frac)
    cart = frac @ lattice
    images = _SHIFTS @ lattice
    d = np.linalg.norm(cart[:, None, None, :] - cart[None, :, None, :] - images[None, None, :, :], axis=-1)
    d[np.arange(n), np.arange(n), 13] = np.inf  # an atom and itself
    d = d.reshape(n, -1)
    nearest = d.min(1)
    coordination = (d < 1.2 * nearest[:, None]).sum(1)
    volume = abs(float(np.linalg.det(lattice))) / n
    mass = float(np.mean([Element(s["species"][0]["element"]).atomic_mass for s in structure["sites"]]))
    return [math_log(volume), mass / volume, float(nearest.mean()), float(nearest.min()), float(nearest.std()),
            float(coordination.mean()), math_log(mass), math_log(volume) / 3 - 0.5 * math_log(mass),
            math_log(float(nearest.mean())) - 0.5 * math_log(mass)]


def math_log(x: float) -> float:
    return float(np.log(x))


def _table(split: str, structures: dict[str, dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from cloudphys.data.phonondb import load_phonondb_thermo
    from cloudphys.encoders.descriptors import composition_features

    temps = sorted({t for _, t in TARGETS})
    ex = load_phonondb_thermo(split, observables=["cv", "s", "u"], temperatures=temps, stable=True)
    comp = composition_features(ex.scope, ex.n_atoms, layout=3)
    geo = np.asarray([geometric_features(structures[i]) for i in ex.ids], dtype=np.float64)
    y = np.stack([ex.targets[o][:, temps.index(t)] / ex.n_atoms for o, t in TARGETS], 1)
    return comp, geo, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=400, help="boosting iterations (default 400)")
    args = ap.parse_args()
    from sklearn.ensemble import HistGradientBoostingRegressor

    from cloudphys.data.base import data_dir

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
    sets = {"comp": lambda c, g: c, "comp+geo": lambda c, g: np.hstack([c, g]), "geo": lambda c, g: g}
    print("| target (per atom) | split | " + " | ".join(sets) + " | comp+geo vs comp |")
    print("|---|---|" + "---:|" * (len(sets) + 1))
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
            print(f"| {obs} at {temp:g} K | {split} | " + " | ".join(f"{m[n]:.3f}" for n in sets) + f" | {rel:+.1f} % |")
    print(f"\n(load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main()
