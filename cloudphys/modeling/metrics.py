"""Evaluation metrics of predictions against labels (validation in training, ``cloudphys evaluate``).

Errors of extensive observables are also reported per atom (divided by ``n_atoms``); MAD is taken
against the training split's mean per temperature (``target_stats`` of the model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["metrics_from_predictions", "per_atom"]


def per_atom(values: np.ndarray, n_atoms: np.ndarray, extensive: bool) -> np.ndarray:
    """``values`` [N, nT] per atom: divided by ``n_atoms`` [N] if ``extensive``."""
    return values / n_atoms[:, None] if extensive else values


def _mae(err: np.ndarray) -> float | None:
    v = np.abs(err[np.isfinite(err)])
    return float(v.mean()) if v.size else None


def metrics_from_predictions(
    enc: Any, preds: Mapping[str, np.ndarray], head: Any, stats: Mapping[str, Any] | None,
    units: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """MAE (data units and per atom), RMSE, MAD against the training mean, MAE/MAD, per temperature."""
    out: dict[str, Any] = {"n": len(enc), "temperatures": enc.temperatures.tolist(), "observables": {}}
    ratios = []
    for name, y in enc.targets.items():
        if name not in preds:
            continue
        p = preds[name]
        ext = head.observable(name).extensive
        err = p - y
        err_pa = per_atom(err, enc.n_atoms, ext)
        entry: dict[str, Any] = {
            "unit": (units or {}).get(name) or head.observable(name).unit,
            "per_atom_unit": f"{head.observable(name).unit} per mol-atom" if ext else head.observable(name).unit,
            "mae": _mae(err),
            "mae_per_atom": _mae(err_pa),
            "rmse": float(np.sqrt(np.nanmean(err**2))) if np.isfinite(err).any() else None,
            "count": int(np.isfinite(err).sum()),
        }
        info = (stats or {}).get("observables", {}).get(name)
        mad_den = None
        if info is not None and len(info["mean"]) == y.shape[1] and all(m is not None for m in info["mean"]):
            mean_train = np.asarray(info["mean"], dtype=np.float64)
            mad = _mae(y - mean_train[None, :])
            if mad:
                entry["mad"] = mad
                entry["mae_over_mad"] = entry["mae"] / mad
                ratios.append(entry["mae_over_mad"])
                mad_den = mean_train
        if y.shape[1] > 1:
            per_t = {}
            for j, T in enumerate(enc.temperatures):
                row = {"mae": _mae(err[:, j]), "mae_per_atom": _mae(err_pa[:, j])}
                if mad_den is not None:
                    mad_j = _mae(y[:, j] - mad_den[j])
                    row["mae_over_mad"] = (row["mae"] / mad_j) if (mad_j and row["mae"] is not None) else None
                per_t[f"{T:g}"] = row
            entry["per_temperature"] = per_t
        out["observables"][name] = entry
    if len(out["observables"]) == 1:
        only = next(iter(out["observables"].values()))
        out["mae"] = only["mae"]
        out["mae_per_atom"] = only["mae_per_atom"]
    if ratios:
        out["mae_over_mad"] = float(np.mean(ratios))
    return out
