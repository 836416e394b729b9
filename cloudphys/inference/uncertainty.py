"""Ensemble spreads and their calibration.

An ensemble's point prediction is the head evaluated on the members' mean latents (see
:mod:`cloudphys.inference.ensemble`); its spread is the standard deviation over the members of
each member's own prediction (every observable and latent), ``σ_m``. The reported standard
deviation is ``σ = c·σ_m`` with one scale factor ``c`` per model, fitted on the validation split so
that the central interval ``ŷ ± z·σ`` (z = 1.645 for 90 %) holds the nominal fraction of the
validation labels, pooled over observables, materials and temperatures:

    c = quantile_level(|y − ŷ| / σ_m) / z.

``c`` is stored with the model in ``uncertainty.json`` (:func:`write_calibration`); a model without
one reports ``c = 1`` and says it is uncalibrated. :func:`coverage` and :func:`spearman` measure the
result on another split (``benchmarks/bench_uncertainty.py`` does it on the test split).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..errors import CheckpointError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = [
    "CALIBRATION_FILE", "DEFAULT_LEVEL", "z_value", "member_models", "member_std", "fit_scale", "coverage",
    "spearman", "read_calibration", "write_calibration", "calibrate", "predict_split", "run_split", "calibrate_run",
]

CALIBRATION_FILE = "uncertainty.json"
DEFAULT_LEVEL = 0.9
#: Floor of σ_m (relative to |ŷ| + 1) so that identical members do not divide by zero.
_TINY = 1e-12


def z_value(level: float) -> float:
    """Half-width in standard deviations of the central ``level`` interval of a normal distribution."""
    from statistics import NormalDist

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def member_models(model: Any) -> list[Any] | None:
    """One :class:`~cloudphys.training.model.ScopePhysicsModel` per member of an ensemble (sharing
    the head and tokenizer), or ``None`` for a single model."""
    members = getattr(model.encoder, "members", None)
    if members is None:
        return None
    cls = type(model)
    return [cls(m, model.head, model.tokenizer, model.meta).eval() for m in members]


def member_std(values: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``{name: std over members}`` (ddof = 1) of per-member arrays of the same shapes."""
    if len(values) < 2:
        raise ValueError("a spread needs at least two members")
    return {k: np.std(np.stack([v[k] for v in values]), axis=0, ddof=1) for k in values[0]}


def _normalised(pred: np.ndarray, sd: np.ndarray, label: np.ndarray) -> np.ndarray:
    sd = np.maximum(sd, _TINY * (np.abs(pred) + 1.0))
    r = np.abs(label - pred) / sd
    return r[np.isfinite(r)]


def fit_scale(preds: Mapping[str, np.ndarray], sds: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray],
              level: float = DEFAULT_LEVEL) -> tuple[float, int]:
    """The one factor ``c`` that puts ``level`` of the labels inside ``ŷ ± z·c·σ_m``; and how many labels."""
    r = np.concatenate([_normalised(preds[k], sds[k], labels[k]) for k in labels if k in preds] or [np.zeros(0)])
    if r.size == 0:
        raise DataError("no finite labels to calibrate the ensemble spread on")
    return float(np.quantile(r, level) / z_value(level)), int(r.size)


def coverage(pred: np.ndarray, sd: np.ndarray, label: np.ndarray, scale: float = 1.0,
             level: float = DEFAULT_LEVEL) -> float:
    """Fraction of finite ``label`` values inside ``pred ± z(level)·scale·sd``."""
    r = _normalised(pred, sd, label)
    return float(np.mean(r <= z_value(level) * scale)) if r.size else math.nan


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equally shaped arrays (finite pairs; ties get mean ranks)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 3:
        return math.nan

    def ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="mergesort")
        r = np.empty(x.size)
        r[order] = np.arange(x.size, dtype=np.float64)
        _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
        sums = np.bincount(inv, weights=r)
        return sums[inv] / counts[inv]

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else math.nan


def read_calibration(path: str | Path) -> dict[str, Any] | None:
    """The calibration stored in model directory ``path`` (``None`` if there is none)."""
    f = Path(path) / CALIBRATION_FILE
    if not f.is_file():
        return None
    try:
        cal = json.loads(f.read_text(encoding="utf-8"))
        scale = float(cal["scale"])
        level = float(cal.get("level", DEFAULT_LEVEL))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{f} is unreadable or corrupt: {exc}") from exc
    if not (math.isfinite(scale) and scale > 0 and 0 < level < 1):
        raise CheckpointError(f"{f}: scale must be a positive number and level in (0, 1), got {scale!r}, {level!r}")
    return {**cal, "scale": scale, "level": level}


def check_calibration_target(path: str | Path) -> None:
    """Refuse to write a calibration into a packaged model (``model.json`` + ``SHA256SUMS``): it would
    fail its checksum verification forever. Calibrate the run, then package it again."""
    p = Path(path)
    if (p / "model.json").is_file() and (p / "SHA256SUMS").is_file():
        raise CheckpointError(f"{p} is a packaged model (SHA256SUMS); writing {CALIBRATION_FILE} into it would make it "
                              "fail verification; calibrate the run it was packaged from and package it again "
                              "(`cloudphys models package RUN --out ... --overwrite`), or use --dry-run")


def write_calibration(path: str | Path, calibration: Mapping[str, Any]) -> Path:
    """Write ``uncertainty.json`` into model directory ``path`` (atomically; never into a packaged model)."""
    from ..outputs import write_text

    check_calibration_target(path)
    return write_text(Path(path) / CALIBRATION_FILE, json.dumps(dict(calibration), indent=2) + "\n")


def predict_split(model: Any, examples: Any, *, batch_size: int = 256, device: str = "cpu") -> dict[str, Any]:
    """Point predictions, members' std and labels of an ensemble on labelled ``examples``.

    :returns: ``{"pred": {obs: [N, nT]}, "std": {...}, "labels": {...}, "latents": ..., "latent_std": ...,
        "n_atoms": [N], "temperatures": [nT]}``, every observable per mole of cells (the data's basis).
    """
    from ..modeling.core import predict_encoded
    from ..modeling.encoding import encode

    members = member_models(model)
    if not members:
        raise DataError("spreads need an ensemble (train.ensemble >= 2)")
    observables = [o for o in model.head.selected if o in examples.targets] or list(model.head.selected)
    enc = encode(examples, model, observables)
    pred, lat = predict_encoded(model, enc, batch_size=batch_size, device=device, observables=observables)
    per = [predict_encoded(m, enc, batch_size=batch_size, device=device, observables=observables) for m in members]
    return {"pred": pred, "std": member_std([p for p, _ in per]), "labels": dict(enc.targets), "latents": lat,
            "latent_std": member_std([q for _, q in per]), "n_atoms": enc.n_atoms, "temperatures": enc.temperatures}


def calibrate(model: Any, examples: Any, *, level: float = DEFAULT_LEVEL, split: str = "val",
              batch_size: int = 256, device: str = "cpu") -> dict[str, Any]:
    """Fit the scale factor of an ensemble on labelled ``examples`` (its validation split).

    :returns: ``{"scale", "level", "fitted_on", "n_labels", "observables", "coverage_before",
        "members"}`` -- what :func:`write_calibration` stores.
    """
    out = predict_split(model, examples, batch_size=batch_size, device=device)
    scale, n = fit_scale(out["pred"], out["std"], out["labels"], level)
    before = {k: coverage(out["pred"][k], out["std"][k], v, 1.0, level) for k, v in out["labels"].items()}
    return {"scale": scale, "level": level, "fitted_on": split, "n_labels": n, "observables": sorted(out["labels"]),
            "coverage_uncalibrated": before, "members": len(model.encoder.members)}


def run_split(run_dir: str | Path, split: str, *, registry: PluginRegistry | None = None,
              overrides: Sequence[str] = ()) -> tuple[Any, Any]:
    """``(model, examples)``: an ensemble run and ``split`` of the data set it was trained on."""
    from ..config import load_config
    from ..modeling.core import load_core
    from ..modeling.encoding import load_split

    model = load_core(run_dir, registry=registry).float()
    cfg = model.meta.get("config")
    if not cfg:
        raise CheckpointError(f"{run_dir}: the model carries no run config; cannot tell which data to calibrate on")
    config = load_config(cfg, overrides=list(overrides), registry=registry)
    examples = load_split(config, split, registry)
    if not len(examples):
        raise DataError(f"split {split!r} of {run_dir}'s data set is empty: nothing to calibrate on")
    return model, examples


def calibrate_run(run_dir: str | Path, *, split: str = "val", level: float = DEFAULT_LEVEL,
                  registry: PluginRegistry | None = None,
                  overrides: Sequence[str] = (), write: bool = True) -> dict[str, Any]:
    """Fit the scale factor of the ensemble in ``run_dir`` on ``split`` and (``write``) store it there."""
    if write:
        check_calibration_target(run_dir)  # before any work
    model, examples = run_split(run_dir, split, registry=registry, overrides=overrides)
    cal = calibrate(model, examples, level=level, split=split)
    if write:
        write_calibration(run_dir, cal)
    return cal
