"""Label consistency of polytype families in phonondb-thermo, and the floor it puts under a test MAE (issue 20).

The split groups polymorphs by formula, and some formulas come as many polytypes: stackings of one
layer, with the same volume per atom and the same bonds (phonondb's 66 stable ZnS are all in ``test``,
its 113 CdI2 in ``train``). Their harmonic thermodynamics should agree to a few tenths of a per cent;
where phonondb's labels do not, no model that reads the structure can follow them.

For every formula with at least ``--min-members`` stable materials in a split, a **polytype family** is
the materials whose volume per atom and shortest interatomic distance are within ``--tol`` (relative)
of the formula's medians (pymatgen ``Structure`` of the stored primitive cell). For each family the
script prints the spread of the labels (s and cv at 300 K per atom; max − min) against the spread of
the structure, the labels' groups (s at 300 K split at the largest gap), and the **floor**: the least
MAE contribution to the split (per atom, summed over the family, divided by the number of stable
materials in the split) of any prediction that gives every member of the family the same curves --
per temperature, the family's median label minimises it. A model that reads geometry cannot do better
on such a family than this floor unless it learns something that is not in the structure.

``--features K`` also prints, per family, the K geometric features (``cloudphys.scope.geometry``,
standardised) that vary most across its members, with their values for the family's smallest and
largest cells: a feature that changes with the cell while the crystal's bonds do not is an input
through which a model can tell polytypes apart that phonopy (with consistent settings) would not.

    CLOUDPHYS_DATA=../shared/data python benchmarks/bench_polytypes.py [--split test] [--min-members 5] [--tol 0.01] [--features 5]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

T_RANGE = (20.0, 1000.0)
LOW_T = (20.0, 150.0)


def _rows(split: str) -> tuple[np.ndarray, list[dict[str, Any]], int]:
    from cloudphys.data.download import fetch
    from cloudphys.data.phonondb import PHONONDB_FILES
    from cloudphys.data.thermo_jsonl import iter_jsonl

    def path(name: str) -> Path:
        return fetch(PHONONDB_FILES[f"phonondb-thermo/{name}"], dataset="phonondb-thermo")

    grid = np.asarray(json.loads(path("meta.json").read_text())["temperatures_K"], dtype=np.float64)
    split_of = json.loads(path("split.json").read_text())
    rows = [r for _, r in iter_jsonl(path("materials.jsonl.gz")) if r.get("stable") and split_of.get(r["id"]) == split]
    return grid, rows, len(rows)


def families(rows: list[dict[str, Any]], min_members: int, tol: float) -> list[list[dict[str, Any]]]:
    """The polytype families (see the module docstring), largest first."""
    from pymatgen.core import Structure

    by_formula: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_formula[r["formula"]].append(r)
    out = []
    for members in by_formula.values():
        if len(members) < min_members:
            continue
        vol, dnn = [], []
        for r in members:
            st = Structure.from_dict(r["structure"])
            vol.append(st.volume / len(st))
            d = st.distance_matrix + np.eye(len(st)) * 1e9 if len(st) > 1 else np.array([[min(st.lattice.abc)]])
            dnn.append(float(d.min()))
        vol, dnn = np.asarray(vol), np.asarray(dnn)
        keep = (np.abs(vol / np.median(vol) - 1) <= tol) & (np.abs(dnn / np.median(dnn) - 1) <= tol)
        fam = [dict(r, _vol=v, _dnn=d) for r, v, d, k in zip(members, vol, dnn, keep) if k]
        if len(fam) >= min_members:
            out.append(fam)
    return sorted(out, key=len, reverse=True)


def feature_spread(fam: list[dict[str, Any]], k: int) -> str:
    """The ``k`` standardised geometric features with the largest range over a family's members, and
    their means over the members with the fewest and the most atoms in the cell (a third each)."""
    from pymatgen.core import Structure

    from cloudphys.scope.geometry import ALL_GEOMETRIC_FEATURES, geometric_features

    fam = sorted(fam, key=lambda r: r["n_atoms"])
    x = np.array([geometric_features(Structure.from_dict(r["structure"])) for r in fam])
    third = max(1, len(fam) // 3)
    small, large = x[:third].mean(0), x[-third:].mean(0)
    order = np.argsort(-(x.max(0) - x.min(0)), kind="stable")[:k]
    n_small = f"{fam[0]['n_atoms']}-{fam[third - 1]['n_atoms']}"
    n_large = f"{fam[-third]['n_atoms']}-{fam[-1]['n_atoms']}"
    cells = "; ".join(f"{ALL_GEOMETRIC_FEATURES[j]} {small[j]:+.2f} → {large[j]:+.2f}" for j in order)
    return (f"{fam[0]['formula']}: features that vary most (standardised; cells of {n_small} atoms → "
            f"{n_large} atoms): {cells}")


def floor(curves: np.ndarray) -> float:
    """Least sum over members of the mean absolute error of one shared curve: per temperature the
    median of the members' labels (curves ``[members, T]``, per atom)."""
    return float(np.abs(curves - np.median(curves, axis=0)).mean(axis=1).sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    ap.add_argument("--min-members", type=int, default=5)
    ap.add_argument("--tol", type=float, default=0.01, help="relative tolerance on volume per atom and shortest distance")
    ap.add_argument("--features", type=int, default=0, metavar="K",
                    help="also print the K geometric features that vary most within each family")
    args = ap.parse_args(argv)
    grid, rows, n_split = _rows(args.split)
    sel = (grid >= T_RANGE[0]) & (grid <= T_RANGE[1])
    low = (grid[sel] >= LOW_T[0]) & (grid[sel] <= LOW_T[1])
    j300 = int(np.argmin(np.abs(grid[sel] - 300.0)))
    fams = families(rows, args.min_members, args.tol)
    print(f"phonondb-thermo {args.split} split: {n_split} stable materials; polytype families of >= {args.min_members} "
          f"(volume per atom and shortest distance within {100 * args.tol:g} % of the formula's medians)\n")
    print("| formula | members | volume/atom spread | shortest-distance spread | s(300 K) labels min – max | "
          "groups (s at 300 K) | floor cv | floor cv 20–150 K | floor s | floor u |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    total = {"cv": 0.0, "cv_20_150": 0.0, "s": 0.0, "u": 0.0}
    for fam in fams:
        n = np.array([r["n_atoms"] for r in fam], dtype=np.float64)[:, None]
        c = {k: np.asarray([r[k] for r in fam], dtype=np.float64)[:, sel] / n for k in ("cv", "s", "u")}
        fl = {"cv": floor(c["cv"]), "cv_20_150": floor(c["cv"][:, low]), "s": floor(c["s"]), "u": floor(c["u"])}
        for k in total:
            total[k] += fl[k]
        s300 = np.sort(c["s"][:, j300])
        gap = int(np.argmax(np.diff(s300))) if len(s300) > 1 else 0
        groups = (f"{gap + 1} at {s300[:gap + 1].mean():.2f}, {len(s300) - gap - 1} at {s300[gap + 1:].mean():.2f}"
                  if len(s300) > 1 and np.diff(s300)[gap] > 0.1 else "one")
        vol = np.array([r["_vol"] for r in fam])
        dnn = np.array([r["_dnn"] for r in fam])
        print(f"| {fam[0]['formula']} | {len(fam)} | {100 * (vol.max() - vol.min()) / np.median(vol):.2f} % | "
              f"{100 * (dnn.max() - dnn.min()) / np.median(dnn):.2f} % | {s300[0]:.2f} – {s300[-1]:.2f} | {groups} | "
              f"{fl['cv'] / n_split:.4f} | {fl['cv_20_150'] / n_split:.4f} | {fl['s'] / n_split:.4f} | {fl['u'] / n_split:.2f} |")
    if args.features > 0:
        print()
        for fam in fams:
            print(feature_spread(fam, args.features))
    print(f"\nfloor over all families (MAE per atom on the {n_split} materials): cv {total['cv'] / n_split:.4f}, "
          f"cv 20–150 K {total['cv_20_150'] / n_split:.4f}, s {total['s'] / n_split:.4f}, u {total['u'] / n_split:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
