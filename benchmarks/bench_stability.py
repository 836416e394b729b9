"""Dynamical stability on phonondb-thermo (issue 23): the stability head against baselines, and
whether training it jointly with the phonon-DOS head helps or hurts the thermodynamic curves.

    python benchmarks/bench_stability.py train RUNS [--epochs 20] [--seed 0] [--only joint,dos,stability]
    python benchmarks/bench_stability.py report RUNS [--json out.json]
    python benchmarks/bench_stability.py model MODEL_DIR_OR_NAME [--json out.json]

``train`` trains, with the same encoder, seed and epochs (configs/phonondb-dos-stability.yaml,
one member; its ``heads:`` list split for the separate runs):

* ``RUNS/joint``: phonon-DOS head (cv, s, u; stable materials) + stability head (every material),
  one encoder (``heads:``);
* ``RUNS/dos``: the phonon-DOS head alone (the same stable materials; the unstable ones are in the
  split but carry no curve labels, so the model sees exactly the same curve labels);
* ``RUNS/stability``: the stability head alone (every material).

``report`` evaluates on phonondb-thermo's ``test`` split:

* stability (all test materials, label ``stable: false`` = unstable): ROC-AUC, Brier score,
  accuracy, and the false-alarm rate (stable materials called unstable) at the recommended
  threshold -- the one that maximises accuracy on the ``val`` split (the probabilities are Platt-
  calibrated on ``val`` by the head, so it is near 0.5) -- for the joint and the separate
  stability head, the majority class (the training prevalence for every material) and a
  composition-only gradient-boosting classifier (scikit-learn ``HistGradientBoostingClassifier``,
  default settings, seed 0, on element-fraction vectors of the reduced formulas, trained on the
  ``train`` split; ``pip install scikit-learn`` or the ``bench`` extra);
* curves (stable test materials, 20–1000 K): MAE per atom of cv, s (J/(K·mol-atom)) and u
  (J/mol-atom) of the joint and the separate DOS model.

``model`` evaluates the stability metrics of one model (e.g. the shipped ``phonondb-stability``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "phonondb-dos-stability.yaml"


def _data(split: str) -> Any:
    from cloudphys.data.phonondb import load_phonondb_thermo

    return load_phonondb_thermo(split, stability=True, observables=["cv", "s", "u"], temperature_range=[20, 1000])


# -- metrics ---------------------------------------------------------------------------------------
def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (rank statistic, ties counted half)."""
    from scipy.stats import rankdata

    r = rankdata(p)
    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def classify(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    call = p >= threshold
    stable = y == 0
    return {
        "accuracy": float((call == (y == 1)).mean()),
        "false_alarm_rate": float(call[stable].mean()),  # stable materials called unstable
        "miss_rate": float((~call[~stable]).mean()),  # unstable materials called stable
    }


def best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold (on a 0.01 grid) with the highest accuracy on (validation) labels."""
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    acc = [float(((p >= t) == (y == 1)).mean()) for t in grid]
    return float(grid[int(np.argmax(acc))])


def stability_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    return {"n": int(len(y)), "unstable": int(y.sum()), "roc_auc": roc_auc(y, p) if np.ptp(p) > 0 else 0.5,
            "brier": float(np.mean((p - y) ** 2)), "threshold": threshold, **classify(y, p, threshold)}


# -- models -------------------------------------------------------------------------------------------
def _core(model: str | Path) -> Any:
    """A run/model directory, or the name of a shipped model (its checksums verified on load)."""
    from cloudphys.modeling import load_core

    if Path(model).exists():
        return load_core(model)
    import cloudphys

    return cloudphys.load_model(str(model)).core


def p_unstable(model_dir: str | Path, ex: Any) -> np.ndarray:
    from cloudphys.modeling.core import predict_encoded
    from cloudphys.modeling.encoding import encode

    model = _core(model_dir)
    enc = encode(ex, model, ["p_unstable"])
    preds, _ = predict_encoded(model, enc, observables=["p_unstable"])
    return preds["p_unstable"][:, 0]


def curve_mae(model_dir: str | Path, ex: Any) -> dict[str, float]:
    """MAE per atom of cv, s, u over the labelled (stable) materials and temperatures of ``ex``."""
    from cloudphys.modeling.core import predict_encoded
    from cloudphys.modeling.encoding import encode

    model = _core(model_dir)
    obs = [o for o in ("cv", "s", "u") if o in model.head.selected]
    enc = encode(ex, model, obs)
    preds, _ = predict_encoded(model, enc, observables=obs)
    out = {}
    for o in obs:
        err = (preds[o] - enc.targets[o]) / enc.n_atoms[:, None]
        out[o] = float(np.nanmean(np.abs(err)))
    out["n_materials"] = int(np.isfinite(enc.targets[obs[0]][:, 0]).sum())
    return out


def composition_features(formulas: list[str], elements: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    from pymatgen.core import Composition

    comps = [Composition(f).fractional_composition.get_el_amt_dict() for f in formulas]
    if elements is None:
        elements = sorted({e for c in comps for e in c})
    index = {e: i for i, e in enumerate(elements)}
    x = np.zeros((len(comps), len(elements)))
    for r, c in enumerate(comps):
        for e, v in c.items():
            if e in index:
                x[r, index[e]] = v
    return x, elements


def formulas_of(ids: list[str]) -> list[str]:
    import gzip

    from cloudphys.data.base import data_dir

    want = set(ids)
    found: dict[str, str] = {}
    with gzip.open(data_dir() / "phonondb-thermo" / "materials.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row["id"] in want:
                found[row["id"]] = row["formula"]
    return [found[i] for i in ids]


def gbm_baseline(train: Any, val: Any, test: Any) -> dict[str, Any]:
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError:
        return {"skipped": "scikit-learn is not installed (pip install scikit-learn, or the 'bench' extra)"}
    xtr, elements = composition_features(formulas_of(train.ids))
    xva, _ = composition_features(formulas_of(val.ids), elements)
    xte, _ = composition_features(formulas_of(test.ids), elements)
    ytr = train.targets["p_unstable"][:, 0]
    clf = HistGradientBoostingClassifier(random_state=0).fit(xtr, ytr)
    pva, pte = clf.predict_proba(xva)[:, 1], clf.predict_proba(xte)[:, 1]
    t = best_threshold(val.targets["p_unstable"][:, 0], pva)
    return stability_metrics(test.targets["p_unstable"][:, 0], pte, t)


# -- commands -------------------------------------------------------------------------------------------
def configs(epochs: int, seed: int) -> dict[str, dict[str, Any]]:
    from cloudphys.config.reading import read_config_file

    base = read_config_file(CONFIG)
    base["train"].update(epochs=epochs, seed=seed, ensemble=1, progress="false")
    dos, stab = base["heads"]
    out = {"joint": copy.deepcopy(base)}
    for name, head in (("dos", dos), ("stability", stab)):
        cfg = copy.deepcopy(base)
        del cfg["heads"]
        cfg["head"] = {k: v for k, v in head.items() if k != "weight"}
        out[name] = cfg
    return out


def cmd_train(args: argparse.Namespace) -> None:
    from cloudphys.training import fit

    runs = Path(args.runs)
    which = args.only.split(",") if args.only else ["joint", "dos", "stability"]
    for name, cfg in configs(args.epochs, args.seed).items():
        if name not in which:
            continue
        t0 = time.time()
        res = fit(cfg, runs / name, overwrite=True)
        print(f"{name}: best epoch {res.best_epoch}/{res.epochs_run}, val loss {res.best_val_loss:.4f}, "
              f"{time.time() - t0:.0f} s (load {os.getloadavg()[0]:.1f})", flush=True)


def cmd_report(args: argparse.Namespace) -> None:
    runs = Path(args.runs)
    train, val, test = _data("train"), _data("val"), _data("test")
    yv, yt = val.targets["p_unstable"][:, 0], test.targets["p_unstable"][:, 0]
    out: dict[str, Any] = {"test_materials": len(test), "test_unstable": int(yt.sum()), "stability": {}, "curves": {}}
    prior = float(train.targets["p_unstable"][:, 0].mean())
    out["stability"]["majority"] = stability_metrics(yt, np.full(len(yt), prior), 0.5)
    out["stability"]["composition_gbm"] = gbm_baseline(train, val, test)
    for name in ("joint", "stability"):
        if (runs / name / "model").exists():
            t = best_threshold(yv, p_unstable(runs / name, val))
            out["stability"][name] = stability_metrics(yt, p_unstable(runs / name, test), t)
    for name in ("joint", "dos"):
        if (runs / name / "model").exists():
            out["curves"][name] = curve_mae(runs / name, test)
    out["load_average"] = os.getloadavg()[0]
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


def cmd_model(args: argparse.Namespace) -> None:
    path = args.model
    val, test = _data("val"), _data("test")
    t = best_threshold(val.targets["p_unstable"][:, 0], p_unstable(path, val))
    out = {"model": str(args.model),
           "stability": stability_metrics(test.targets["p_unstable"][:, 0], p_unstable(path, test), t),
           "load_average": os.getloadavg()[0]}
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("runs")
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--only", default="")
    r = sub.add_parser("report")
    r.add_argument("runs")
    r.add_argument("--json")
    m = sub.add_parser("model")
    m.add_argument("model")
    m.add_argument("--json")
    args = ap.parse_args(argv)
    {"train": cmd_train, "report": cmd_report, "model": cmd_model}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
