"""Issue 20: how many equal bins a phonon-DOS head needs -- measured on phonondb-thermo's own DOS labels.

For the 629 stable ``test`` materials, phonopy's 128-bin DOS (equal bins on (0, dos_fmax_thz], the
modes at or below 0 THz folded in) is summed into K = 16, 32, 64, 128 bins and the thermodynamics
are computed from it three ways: every bin's modes at its centre (what the ``phonon-dos`` head
does), spread uniformly over the bin (a histogram, 4-point Gauss-Legendre per bin), and the same
with an ω² (Debye-like) first bin. The MAE per atom against phonopy's curves (cv over 20-1000 K and
20-150 K, s, u over 20-1000 K; u signed too) is the floor a head of that resolution cannot beat
even with a perfect DOS; it also checks the u reference (zero-point energy included on both sides).

    CLOUDPHYS_DATA=../shared/data python benchmarks/bench_dos_resolution.py
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

R = 8.314462618
K_PER_THZ = 47.99243073366221


def _osc(theta: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cv, u (with zero-point energy), s of one mode per mole at mode temperatures ``theta`` [M] and ``T`` [nT]."""
    x = theta[:, None] / np.maximum(T, 1e-9)[None, :]
    with np.errstate(all="ignore"):
        cv = np.where(T > 0, R * x**2 * np.exp(-x) / np.expm1(-x) ** 2, 0.0)
        u = R * (theta[:, None] / 2 + np.where(T > 0, theta[:, None] / np.expm1(x), 0.0))
        s = np.where(T > 0, R * (x / np.expm1(x) - np.log(-np.expm1(-x))), 0.0)
    return np.nan_to_num(cv), np.nan_to_num(u), np.nan_to_num(s)


def thermo(mass: np.ndarray, fmax: float, T: np.ndarray, mode: str) -> list[np.ndarray]:
    K = len(mass)
    h = fmax / K
    lo = np.arange(K) * h
    if mode == "centre":
        cv, u, s = _osc((lo + h / 2) * K_PER_THZ, T)
        return [(mass[:, None] * a).sum(0) for a in (cv, u, s)]
    x, w = np.polynomial.legendre.leggauss(4)
    x, w = (x + 1) / 2, w / 2
    weights = np.tile(w, (K, 1))
    if mode == "debye1":  # the first bin's modes spread as 3ω²/ω₁³
        weights[0] = 3 * x**2 * w
    cv, u, s = _osc(((lo[:, None] + h * x[None, :]) * K_PER_THZ).ravel(), T)
    ww = (mass[:, None] * weights).ravel()
    return [(ww[:, None] * a).sum(0) for a in (cv, u, s)]


def main() -> int:
    from cloudphys.data.base import data_dir

    root = data_dir() / "phonondb-thermo"
    T = np.asarray(json.loads((root / "meta.json").read_text())["temperatures_K"], dtype=float)
    split = json.loads((root / "split.json").read_text())
    rows = []
    with gzip.open(root / "materials.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if r.get("stable") and split.get(r["id"]) == "test" and r.get("dos"):
                rows.append(r)
    sel, low = T >= 20, (T >= 20) & (T <= 150)
    fm = np.array([r["dos_fmax_thz"] for r in rows])
    print(f"{len(rows)} stable test materials; highest frequency (THz) percentiles 0/5/50/95/100: "
          + " / ".join(f"{v:.1f}" for v in np.percentile(fm, [0, 5, 50, 95, 100])))
    print("| bins | modes in a bin | cv 20-1000 K | cv 20-150 K | s | u | u signed |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for K in (16, 32, 64, 128):
        for mode in ("centre", "hist", "debye1"):
            e = []
            for r in rows:
                d = np.asarray(r["dos"], dtype=float)
                n = r["n_atoms"]
                d = d * (3 * n / d.sum())
                m = d.reshape(K, -1).sum(1)
                cv, u, s = thermo(m, r["dos_fmax_thz"], T, mode)
                c, uu, ss = (np.asarray(r[k]) for k in ("cv", "u", "s"))
                e.append([np.abs(cv - c)[sel].mean() / n, np.abs(cv - c)[low].mean() / n,
                          np.abs(s - ss)[sel].mean() / n, np.abs(u - uu)[sel].mean() / n, (u - uu)[sel].mean() / n])
            a = np.mean(e, 0)
            what = {"centre": "at its centre (the head)", "hist": "uniform over the bin",
                    "debye1": "uniform, first bin ∝ ω²"}[mode]
            print(f"| {K} | {what} | {a[0]:.4f} | {a[1]:.4f} | {a[2]:.4f} | {a[3]:.2f} | {a[4]:+.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
