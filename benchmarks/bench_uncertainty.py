"""Ensemble uncertainty on the test split: coverage of the nominal central interval and spread-error rank correlation.

For each ensemble (a run directory or a shipped model name), on the *test* split of the data it was
trained on: the fraction of test labels inside ``ŷ ± z·c·σ_m`` (members' std σ_m, the scale c stored
with the model -- fitted on the *validation* split by ``cloudphys models calibrate`` -- or fitted here
on val if the model has none), the same with c = 1 (uncalibrated), and Spearman's ρ between the
predicted spread and the absolute error (per atom, pooled over materials and temperatures).

    CLOUDPHYS_DATA=../shared/data python benchmarks/bench_uncertainty.py cloud-debye phonondb-dos

Prints a Markdown table (docs/benchmarks.md, *Uncertainty*).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def _resolve(name: str) -> Path:
    from cloudphys.models import list_models, model_spec

    if name in list_models(include_unavailable=True):
        return Path(model_spec(name).path)
    return Path(name)


def bench(name: str, level: float) -> list[dict]:
    from cloudphys.inference.uncertainty import (
        calibrate,
        coverage,
        predict_split,
        read_calibration,
        run_split,
        spearman,
        z_value,
    )

    path = _resolve(name)
    t0 = time.perf_counter()
    model, test = run_split(path, "test")
    cal = read_calibration(path)
    if cal is None or abs(float(cal.get("level", level)) - level) > 1e-12:
        _, val = run_split(path, "val")
        cal = calibrate(model, val, level=level)
    scale = float(cal["scale"])
    out = predict_split(model, test)
    rows = []
    n = out["n_atoms"][:, None]
    for obs, y in out["labels"].items():
        ext = model.head.observable(obs).extensive
        div = n if ext else 1.0
        p, sd = out["pred"][obs], out["std"][obs]
        err = np.abs(p - y) / div
        ok = np.isfinite(y)
        rows.append({
            "model": name, "data": (model.meta.get("config") or {}).get("data", {}).get("name", "?"),
            "members": len(model.encoder.members), "observable": obs, "materials": int(len(y)),
            "labels": int(ok.sum()), "scale": scale, "fitted_on": cal.get("fitted_on", "val"),
            "cov_raw": coverage(p, sd, y, 1.0, level), "cov_cal": coverage(p, sd, y, scale, level),
            "rho": spearman(sd / div, err), "mae": float(np.nanmean(err)),
            "mean_sd": float(np.nanmean((scale * sd / div)[ok])),
            "unit": model.head.observable(obs).unit + (" per mol-atom" if ext else ""),
            "seconds": time.perf_counter() - t0, "z": z_value(level),
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="ensemble run directories or shipped model names")
    ap.add_argument("--level", type=float, default=0.9, help="nominal coverage (default 0.9)")
    args = ap.parse_args()
    rows = [r for m in args.models for r in bench(m, args.level)]
    pct = int(round(args.level * 100))
    print(f"nominal {pct} % central interval ŷ ± {rows[0]['z']:.3f}·c·σ_m; test split; "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print()
    print("| model | data (test) | members | observable | materials × T labels | scale c (fitted on val) | "
          "coverage, c = 1 | **coverage, calibrated** (goal 85–95 %) | Spearman ρ(σ, \\|err\\|) | MAE per atom | "
          "mean σ per atom | unit |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['model']} | {r['data']} | {r['members']} | {r['observable']} | {r['labels']} | {r['scale']:.3f} | "
              f"{100 * r['cov_raw']:.1f} % | **{100 * r['cov_cal']:.1f} %** | {r['rho']:.3f} | {r['mae']:.4g} | "
              f"{r['mean_sd']:.4g} | {r['unit']} |")


if __name__ == "__main__":
    main()
