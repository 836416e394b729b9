"""Benchmarks (b) whole curves and (c) temperature transfer on phonondb-thermo (stable materials).

(b) configs/phonondb-curves-debye.yaml: Debye head trained on cv, s, u over 20–1000 K (train split).
(c) configs/phonondb-transfer-300K.yaml: the same model trained on cv at 300 K only.
Both are evaluated on the test split over 20–1000 K: MAE per atom of cv, s (J/(K·mol-atom)) and
u (J/mol-atom), per temperature and overall.

    CLOUDPHYS_DATA=../shared/data python benchmarks/bench_phonondb_curves.py [--epochs N] [--plot docs/img/phonondb_curves.png]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVAL = ["data.observables=[cv,s,u]", "data.temperatures=null", "data.temperature_range=[20,1000]"]
OBS = (("cv", "J/(K·mol-atom)"), ("s", "J/(K·mol-atom)"), ("u", "J/mol-atom"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=None, help="override train.epochs of both configs")
    ap.add_argument("--plot", help="PNG of MAE per atom against temperature")
    ap.add_argument("--json", help="write all metrics here")
    args = ap.parse_args()
    from cloudphys.training import evaluate
    from cloudphys.training import train as fit  # one model or an ensemble, as the config asks

    extra = [f"train.epochs={args.epochs}"] if args.epochs else []
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, config in (("curves", "phonondb-curves-debye.yaml"), ("transfer", "phonondb-transfer-300K.yaml")):
            t0 = time.perf_counter()
            res = fit(REPO / "configs" / config, Path(tmp) / key, overrides=["train.progress=false", *extra])
            seconds = time.perf_counter() - t0
            m = evaluate(Path(tmp) / key, "test", overrides=EVAL)
            results[key] = {"config": config, "seconds": seconds, "best_epoch": res.best_epoch, "metrics": m}
    cur, tra = results["curves"]["metrics"], results["transfer"]["metrics"]
    print(f"phonondb-thermo test split, stable materials: {cur['n']}; 20–1000 K ({len(cur['temperatures'])} grid points)\n")
    print("| training data | config | MAE cv (J/(K·mol-atom)) | MAE s (J/(K·mol-atom)) | MAE u (J/mol-atom) | train time (s) |")
    print("|---|---|---|---|---|---|")
    for key, label in (("curves", "cv, s, u curves 20–1000 K"), ("transfer", "cv at 300 K only")):
        r = results[key]
        o = r["metrics"]["observables"]
        print(f"| {label} | configs/{r['config']} | {o['cv']['mae_per_atom']:.3f} | {o['s']['mae_per_atom']:.3f} | "
              f"{o['u']['mae_per_atom']:.1f} | {r['seconds']:.0f} |")
    print("\nPer temperature (MAE per atom; b = trained on curves, c = trained on cv at 300 K):\n")
    print("| T (K) | cv b | cv c | s b | s c | u b | u c |")
    print("|---|---|---|---|---|---|---|")
    for T in cur["observables"]["cv"]["per_temperature"]:
        vals = []
        for o, _ in OBS:
            for m in (cur, tra):
                vals.append(m["observables"][o]["per_temperature"][T]["mae_per_atom"])
        print(f"| {T} | " + " | ".join(f"{v:.3f}" if i < 4 else f"{v:.1f}" for i, v in enumerate(vals)) + " |")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        for ax, (o, unit) in zip(axes, OBS):
            for m, label in ((cur, "trained on curves (b)"), (tra, "trained on cv at 300 K (c)")):
                pt = m["observables"][o]["per_temperature"]
                ax.plot([float(t) for t in pt], [pt[t]["mae_per_atom"] for t in pt], marker="o", ms=3, label=label)
            ax.set_xlabel("temperature (K)")
            ax.set_ylabel(f"MAE of {o} ({unit})")
            ax.set_title(f"{o}: test MAE per atom")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
