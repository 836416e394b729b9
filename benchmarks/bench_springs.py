"""Benchmark (issue 20, a lever tried and not kept): does a spring-network proxy of the phonon spectrum add
to the geometric inputs of layout 2?

The 20-50 K error of the phonon-DOS models lives in the acoustic branches, and layout 2's bond features
(``cloudphys.scope.geometry.BOND_FEATURES``) describe single bonds, not how they connect. This probe
builds, for each structure (its primitive cell), a Born-von-Karman spring network: every neighbour within
1.2x an atom's nearest distance a spring of stiffness d^-3 (Badger-like), every one within 1.6x a spring
a tenth of that, each spring resisting stretch (k) and, with 0.3 k, sideways motion (so a connected
network has no floppy modes); the masses of the sites. From its dynamical matrix it reads 11 numbers
(all logs, so the unknown overall stiffness scale is a constant offset): on a shifted 2x2x2 q-mesh
(no Gamma) the log mean, mean log, log rms, 10/25/90 % quantiles of the frequencies, the fraction of
floppy modes and log <w^-2>; from the three lowest branches at |q| = 0.02 1/A along 10 directions (a
Fibonacci sphere) the Debye average of the sound velocities, the minimum velocity and the Debye
temperature estimate log v_D + log(n/V)/3.

It then fits the gradient-boosting probe of ``bench_geometry.py`` (same targets, hyper-parameters and
splits) with the composition features of layout 3 + every geometric feature of layout 2 ("comp+geo2")
and with the spring features added ("+springs"), and prints the MAE per atom on val and test.

    CLOUDPHYS_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_springs.py

(~5 min for the spring features of the 5,324 stable materials at ~70 ms each, then ~3 min of fits.)
"""

from __future__ import annotations

import gzip
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

NAMES = ("log_mean_w", "mean_log_w", "log_rms_w", "log_q10", "log_q25", "log_q90", "floppy_fraction",
         "log_inv_w2", "log_v_debye", "log_v_min", "log_theta_estimate")
KT = 0.3  # sideways / stretch stiffness of a spring
_k = np.arange(10) + 0.5
_phi, _th = np.arccos(1 - 2 * _k / 10), np.pi * (1 + 5**0.5) * _k
DIRECTIONS = np.stack([np.cos(_th) * np.sin(_phi), np.sin(_th) * np.sin(_phi), np.cos(_phi)], 1)


def spring_features(structure, mesh: int = 2, second: float = 0.1) -> np.ndarray:
    """The 11 :data:`NAMES` of a pymatgen ``Structure`` (its primitive cell's spring network)."""
    st = structure.get_primitive_structure()
    lat, n = st.lattice.matrix, len(st)
    masses = np.array([sum(sp.atomic_mass * occ for sp, occ in site.species.items()) for site in st], float)
    ci, ni, img, dist = st.get_neighbor_list(r=8.0)
    nearest = np.full(n, np.inf)
    np.minimum.at(nearest, ci, dist)
    first = dist <= 1.2 * nearest[ci] + 1e-9
    keep = first | (dist <= 1.6 * nearest[ci] + 1e-9)
    ci, ni, img, dist, first = ci[keep], ni[keep], img[keep], dist[keep], first[keep]
    vec = st.cart_coords[ni] + img @ lat - st.cart_coords[ci]
    e = vec / dist[:, None]
    k = np.where(first, 1.0, second) * dist**-3.0
    # each directed bond gives half of the spring (its reverse the other half): a symmetric network
    phi = 0.5 * k[:, None, None] * ((1 - KT) * e[:, :, None] * e[:, None, :] + KT * np.eye(3))
    w = np.repeat(1.0 / np.sqrt(masses), 3)

    def eig(q: np.ndarray) -> np.ndarray:
        d = np.zeros((n, 3, n, 3), complex)
        ph = np.exp(1j * (vec @ q))
        for i_, j_, p_ in ((ci, ni, ph), (ni, ci, ph.conj())):
            np.add.at(d, (i_, slice(None), i_, slice(None)), phi)
            np.add.at(d, (i_, slice(None), j_, slice(None)), -phi * p_[:, None, None])
        d = d.reshape(3 * n, 3 * n) * w[:, None] * w[None, :]
        return np.linalg.eigvalsh(0.5 * (d + d.conj().T))

    rec = st.lattice.reciprocal_lattice.matrix
    g = (np.arange(mesh) + 0.5) / mesh - 0.5
    qs = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3) @ rec
    om = np.sqrt(np.clip(np.concatenate([eig(q) for q in qs]), 0, None))
    scale = math.sqrt(float(np.mean(om**2)))
    floppy = float(np.mean(om < 1e-3 * scale))
    om = np.maximum(om, 1e-3 * scale)
    v = np.concatenate([np.sqrt(np.clip(eig(0.02 * d)[:3], 0, None)) / 0.02 for d in DIRECTIONS])
    v = np.maximum(v, 1e-3 * scale)
    vd = float(np.mean(v**-3.0)) ** (-1.0 / 3.0)
    return np.array([math.log(om.mean()), float(np.log(om).mean()), math.log(scale), *np.log(np.quantile(om, [0.1, 0.25, 0.9])),
                     floppy, math.log(float(np.mean(om**-2.0))), math.log(vd), math.log(float(v.min())),
                     math.log(vd) + math.log(n / st.volume) / 3.0])


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script bench_geometry.py
    import bench_geometry as bg
    from pymatgen.core import Structure
    from sklearn.ensemble import HistGradientBoostingRegressor

    from cloudphys.data.base import data_dir

    structures: dict[str, dict] = {}
    with gzip.open(data_dir() / "phonondb-thermo" / "materials.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            structures[str(row["id"])] = row["structure"]
    t0 = time.perf_counter()
    tables = {s: bg._table(s, structures) for s in ("train", "val", "test")}
    from cloudphys.data.phonondb import load_phonondb_thermo

    springs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in tables:
            ids = load_phonondb_thermo(s, observables=["cv"], temperatures=[20.0], stable=True).ids
            springs[s] = np.asarray([spring_features(Structure.from_dict(structures[i])) for i in ids])
    n = sum(len(v) for v in springs.values())
    print(f"features: {time.perf_counter() - t0:.0f} s for {n} materials; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    sets = {"comp+geo2": lambda s: np.hstack(tables[s][:2]), "+springs": lambda s: np.hstack([*tables[s][:2], springs[s]])}
    print("| target (per atom) | split | comp+geo2 | +springs | change |")
    print("|---|---|---:|---:|---:|")
    for k, (obs, temp) in enumerate(bg.TARGETS):
        maes: dict[str, dict[str, float]] = {"val": {}, "test": {}}
        for name, pick in sets.items():
            model = HistGradientBoostingRegressor(max_iter=400, learning_rate=0.05, random_state=0)
            model.fit(pick("train"), tables["train"][2][:, k])
            for s in maes:
                maes[s][name] = float(np.mean(np.abs(model.predict(pick(s)) - tables[s][2][:, k])))
        for s, m in maes.items():
            print(f"| {obs} at {temp:g} K | {s} | {m['comp+geo2']:.3f} | {m['+springs']:.3f} | "
                  f"{100 * (m['+springs'] / m['comp+geo2'] - 1):+.1f} % |")
    print("\ncorrelation of each spring feature with the targets (train):")
    for j, name in enumerate(NAMES):
        r = [float(np.corrcoef(springs["train"][:, j], tables["train"][2][:, k])[0, 1]) for k in range(len(bg.TARGETS))]
        print(f"  {name}: " + ", ".join(f"{o}@{t:g} {v:+.2f}" for (o, t), v in zip(bg.TARGETS, r)))
    print(f"\n(load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main()
