"""Benchmark (a): the CLOUD Cv split — Debye head, direct regression and two baselines without deep learning.

Protocol (../shared/data/README.md): train on CLOUD's 75 % train split (25 % validation, seed 0, used
for early stopping), report test MAE and MAE/MAD with MAD = mean |y_test − mean(y_train)|.

    CLOUDPHYS_DATA=../shared/data python benchmarks/bench_cloud_cv.py [--seeds 0 1 2] [--pretrain [--ensemble K]]

Rows: a single Debye temperature fitted to the training set; HistGradientBoostingRegressor on
composition statistics + space group + n_atoms predicting Cv/(3nR); configs/cloud-cv-debye.yaml;
configs/cloud-cv-direct.yaml; with ``--pretrain`` also the Debye head fine-tuned from an MLM-pretrained
encoder (configs/cloud-pretrain.yaml; the pretraining time is counted) and, with ``--ensemble K``, a K-member
seed ensemble of those (``train.ensemble``; seeds s..s+K-1 for each --seeds entry s). Wall times are for this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
R = 8.314462618


def mae_mad(pred: np.ndarray, y: np.ndarray, y_train_mean: float) -> tuple[float, float]:
    mae = float(np.mean(np.abs(pred - y)))
    return mae, mae / float(np.mean(np.abs(y - y_train_mean)))


def debye_baseline(train, test) -> tuple[float, float, float]:
    """One θ_D for every material, fitted (MAE) to the training targets on a log grid."""
    import cloudphys

    head = cloudphys.load_head("debye", observables=["cv"])
    grid = torch.logspace(0, np.log10(5000), 2000, dtype=torch.float64)

    def cv(theta: torch.Tensor, n: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            per_atom = head(latents={"theta_D": theta}, temperature=torch.full_like(theta, 300.0), n_atoms=1.0)["cv"]
        return per_atom.numpy()[:, None] * n[None, :]

    y = train.targets["cv"][:, 0]
    losses = np.mean(np.abs(cv(grid, train.n_atoms) - y[None, :]), axis=1)
    theta = grid[int(np.argmin(losses))]
    pred = cv(theta.reshape(1), test.n_atoms)[0]
    return (float(theta), *mae_mad(pred, test.targets["cv"][:, 0], float(y.mean())))


def gbt_features(ex) -> np.ndarray:
    from cloudphys.encoders.descriptors import composition_features
    from cloudphys.scope import parse

    # the baseline's features as published (layout 1; it reads n_atoms as a feature of its own anyway)
    comp = composition_features(ex.scope, ex.n_atoms, layout=1)
    spg = np.array([[parse(s).spacegroup] for s in ex.scope], dtype=np.float64)
    return np.hstack([comp, spg, ex.n_atoms[:, None]])


def gbt_baseline(train, test, seed: int) -> tuple[float, float]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    y = train.targets["cv"][:, 0] / (3 * R * train.n_atoms)
    model = HistGradientBoostingRegressor(random_state=seed, categorical_features=None)
    model.fit(gbt_features(train), y)
    pred = model.predict(gbt_features(test)) * 3 * R * test.n_atoms
    return mae_mad(pred, test.targets["cv"][:, 0], float(train.targets["cv"][:, 0].mean()))


def run_config(config: str, seed: int, out: Path, extra: list[str]) -> tuple[float, float, float, int]:
    from cloudphys.training import evaluate
    from cloudphys.training import train as fit  # one model or an ensemble, as the config asks

    t0 = time.perf_counter()
    res = fit(REPO / "configs" / config, out, overrides=[f"train.seed={seed}", "train.progress=false", *extra])
    seconds = time.perf_counter() - t0
    m = evaluate(out, "test")
    return m["mae"], m["mae_over_mad"], seconds, res.best_epoch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--pretrain", action="store_true", help="also fine-tune from an MLM-pretrained encoder")
    ap.add_argument("--ensemble", type=int, default=0,
                    help="with --pretrain: also a K-member seed ensemble (train.ensemble=K) fine-tuned from the pretrained encoder")
    ap.add_argument("--skip-models", action="store_true", help="baselines only")
    ap.add_argument("--json", help="write all numbers here")
    args = ap.parse_args()

    import cloudphys

    spec = cloudphys.get_registry().dataset("cloud-cv")
    train, test = spec.load(split="train"), spec.load(split="test")
    rows: list[dict] = []
    t0 = time.perf_counter()
    theta, mae, ratio = debye_baseline(train, test)
    rows.append({"model": f"one Debye θ fitted to train (θ = {theta:.0f} K)", "mae": mae, "mae_over_mad": ratio,
                 "seconds": time.perf_counter() - t0})
    res = []
    t0 = time.perf_counter()
    for s in args.seeds:
        res.append(gbt_baseline(train, test, s))
    rows.append({"model": "HistGradientBoosting, composition stats + space group + n_atoms → Cv/(3nR)",
                 "mae": float(np.mean([r[0] for r in res])), "mae_over_mad": float(np.mean([r[1] for r in res])),
                 "seconds": (time.perf_counter() - t0) / len(args.seeds)})
    if not args.skip_models:
        with tempfile.TemporaryDirectory() as tmp:
            runs = [("cloud-cv-debye.yaml", "Debye head (configs/cloud-cv-debye.yaml)", []),
                    ("cloud-cv-direct.yaml", "direct regression (configs/cloud-cv-direct.yaml)", [])]
            pre_seconds = 0.0
            if args.pretrain:
                from cloudphys.training.pretrain import pretrain

                t0 = time.perf_counter()
                pretrain(REPO / "configs" / "cloud-pretrain.yaml", Path(tmp) / "pretrained",
                         overrides=["pretrain.progress=false"])
                pre_seconds = time.perf_counter() - t0
                runs.append(("cloud-cv-debye.yaml", "Debye head, MLM-pretrained encoder (configs/cloud-pretrain.yaml)",
                             [f"encoder.pretrained={Path(tmp) / 'pretrained'}"]))
                if args.ensemble > 1:
                    runs.append(("cloud-cv-debye.yaml",
                                 f"Debye head, MLM-pretrained encoder, ensemble of {args.ensemble} (train.ensemble={args.ensemble})",
                                 [f"encoder.pretrained={Path(tmp) / 'pretrained'}", f"train.ensemble={args.ensemble}"]))
            for config, label, extra in runs:
                got = [run_config(config, s, Path(tmp) / f"{label[:6]}-{s}-{len(extra)}", extra) for s in args.seeds]
                seconds = float(np.mean([g[2] for g in got])) + (pre_seconds if extra else 0.0)
                rows.append({"model": label, "mae": float(np.mean([g[0] for g in got])),
                             "mae_over_mad": float(np.mean([g[1] for g in got])),
                             "mae_over_mad_per_seed": [round(g[1], 4) for g in got],
                             "best_epoch": [g[3] for g in got], "seconds": seconds})
                print(json.dumps(rows[-1]), file=sys.stderr)
    print(f"CLOUD Cv split: train {len(train)}, test {len(test)}; seeds {args.seeds} (mean over seeds)\n")
    print("| model | test MAE (J/(K·mol)) | test MAE/MAD | wall time (s, incl. pretraining) |")
    print("|---|---|---|---|")
    for r in rows:
        per = f" (seeds: {', '.join(f'{v:.3f}' for v in r['mae_over_mad_per_seed'])})" if "mae_over_mad_per_seed" in r else ""
        print(f"| {r['model']} | {r['mae']:.2f} | {r['mae_over_mad']:.3f}{per} | {r['seconds']:.0f} |")
    print("| published CLOUD-DEBYE (pretrained on 6.3 M crystals) | — | 0.057 | — |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
