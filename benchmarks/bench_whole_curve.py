"""Issue 12 §2: whole-curve accuracy on phonondb-thermo, one ablation row per lever.

Every row trains the phonon-DOS head (plugins/cloudphys-phonon-dos) on the cv, s and u curves of the
stable phonondb-thermo ``train`` materials over 20-1000 K (early stopping on the stable ``val``
materials) and evaluates it on the 629 stable ``test`` materials over the same 24 grid temperatures:
mean absolute error per atom, the protocol of docs/benchmarks.md *Physics heads*. Rows start from
configs/phonondb-dos-ensemble.yaml (trained as one model) and change one lever at a time; the
last row is configs/phonondb-dos-plus.yaml, the levers that helped together. Training time is
wall-clock on this machine (CPU), pretraining included where a row uses it.

    pip install ./plugins/cloudphys-phonon-dos
    CLOUDPHYS_DATA=../shared/data python benchmarks/bench_whole_curve.py            # every row
    CLOUDPHYS_DATA=../shared/data python benchmarks/bench_whole_curve.py --rows best
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
BASE = "phonondb-dos-ensemble.yaml"
ONE = ["train.ensemble=1"]

#: name -> (label, config, overrides, pretraining config or None)
FMLP = ["encoder.latent_mlp=256", "encoder.features_in_mlp=true"]
EXTRA_1THZ = ("train.extra_data=[{name: phonondb-thermo, split: train, observables: [cv, s, u], "
              "temperature_range: [20, 1000], min_freq_thz: -1.0}]")
ROWS: dict[str, tuple[str, str, list[str], str | None]] = {
    "base": ("baseline: configs/phonondb-dos-ensemble.yaml as one model (128 hidden, 2 layers, 30 epochs)",
             BASE, ONE, None),
    "latent-mlp": ("+ latent MLP (encoder.latent_mlp=256; features still linear)", BASE,
                   [*ONE, "encoder.latent_mlp=256"], None),
    "features-in-mlp": ("+ the latent MLP reads the composition features (encoder.features_in_mlp)", BASE,
                        [*ONE, *FMLP], None),
    "pretrained": ("features-in-mlp + MLM-pretrained encoder (configs/transfer-pretrain.yaml, CLOUD dialect)",
                   BASE, [*ONE, *FMLP, "data.dialect=cloud"], "transfer-pretrain.yaml"),
    "layout-3": ("features-in-mlp + elemental lattice-dynamics features (encoder.feature_layout=3)", BASE,
                 [*ONE, *FMLP, "encoder.feature_layout=3"], None),
    "epochs-60": ("features-in-mlp + 60 epochs", BASE, [*ONE, *FMLP, "train.epochs=60", "train.patience=12"], None),
    "epochs-100": ("layout-3 + 100 epochs", BASE,
                   [*ONE, *FMLP, "encoder.feature_layout=3", "train.epochs=100", "train.patience=15"], None),
    "min-freq": ("layout-3 + mildly unstable materials too (data.min_freq_thz=-0.5)", BASE,
                 [*ONE, *FMLP, "encoder.feature_layout=3", "data.min_freq_thz=-0.5"], None),
    "plus-150": ("layout-3 + mildly unstable train materials (train.extra_data) + 150 epochs (stop 15's final config)",
                 "phonondb-dos-plus.yaml", [*ONE, "train.epochs=150", "train.patience=30"], None),
    "layout-4": ("plus-150 + the record's symmetry descriptors (encoder.feature_layout=4)",
                 "phonondb-dos-plus.yaml", [*ONE, "train.epochs=150", "train.patience=30", "encoder.feature_layout=4"],
                 None),
    "layout-4-400": ("layout-4 trained 400 epochs", "phonondb-dos-plus.yaml", [*ONE, "encoder.feature_layout=4"], None),
    "dropout-0.2": ("plus-150 trained 400 epochs, dropout 0.2 instead of 0.1 (encoder.dropout=0.2)",
                    "phonondb-dos-plus.yaml", [*ONE, "encoder.dropout=0.2"], None),
    "lr-2x": ("plus-150 trained 400 epochs, twice the learning rates (train.lr=1e-3, train.latent_lr=4e-3)",
              "phonondb-dos-plus.yaml", [*ONE, "train.lr=1.0e-3", "train.latent_lr=4.0e-3"], None),
    "mlp-512": ("plus-150 trained 400 epochs, a wider latent MLP (encoder.latent_mlp=512)",
                "phonondb-dos-plus.yaml", [*ONE, "encoder.latent_mlp=512"], None),
    "mlp-512-ema": ("mlp-512 + a moving average of the weights (train.ema=0.999)",
                    "phonondb-dos-plus.yaml", [*ONE, "encoder.latent_mlp=512", "train.ema=0.999"], None),
    "mlp-512-freq-1": ("mlp-512 + the train materials down to -1 THz as extra data (train.extra_data min_freq_thz=-1)",
                       "phonondb-dos-plus.yaml", [*ONE, "encoder.latent_mlp=512", EXTRA_1THZ], None),
    "smooth-0.003": ("mlp-512 + a DOS smoothness prior of weight 0.003 (train.dos_smoothness=0.003)",
                     "phonondb-dos-plus.yaml", [*ONE, "encoder.latent_mlp=512", "train.dos_smoothness=0.003"], None),
    "smooth-0.01": ("mlp-512 + a DOS smoothness prior of weight 0.01 (train.dos_smoothness=0.01)",
                    "phonondb-dos-plus.yaml", [*ONE, "encoder.latent_mlp=512", "train.dos_smoothness=0.01"], None),
    "epochs-460": ("the final config (best) trained 460 epochs on both cores (train.epochs=460, "
                   "train.num_threads=2), alone on the machine",
                   "phonondb-dos-plus.yaml", [*ONE, "train.epochs=460", "train.num_threads=2"], None),
    "smooth-150-0.003": ("plus-150 + a DOS smoothness prior of weight 0.003 (train.dos_smoothness=0.003)",
                         "phonondb-dos-plus.yaml",
                         [*ONE, "train.epochs=150", "train.patience=30", "train.dos_smoothness=0.003"], None),
    "smooth-150-0.01": ("plus-150 + a DOS smoothness prior of weight 0.01 (train.dos_smoothness=0.01)",
                        "phonondb-dos-plus.yaml",
                        [*ONE, "train.epochs=150", "train.patience=30", "train.dos_smoothness=0.01"], None),
    "plus-smooth-0.01": ("plus-150 trained 400 epochs + a DOS smoothness prior of weight 0.01 (train.dos_smoothness=0.01)",
                         "phonondb-dos-plus.yaml", [*ONE, "train.dos_smoothness=0.01"], None),
    "plus-smooth-0.03": ("plus-150 trained 400 epochs + a DOS smoothness prior of weight 0.03 (train.dos_smoothness=0.03)",
                         "phonondb-dos-plus.yaml", [*ONE, "train.dos_smoothness=0.03"], None),
    "cv-2-150": ("plus-150 + cv weighted twice in the loss (train.loss_weights={cv: 2})", "phonondb-dos-plus.yaml",
                 [*ONE, "train.epochs=150", "train.patience=30", "train.loss_weights={cv: 2}"], None),
    "cv-3-150": ("plus-150 + cv weighted three times in the loss (train.loss_weights={cv: 3})", "phonondb-dos-plus.yaml",
                 [*ONE, "train.epochs=150", "train.patience=30", "train.loss_weights={cv: 3}"], None),
    "plus-cv-2": ("plus-150 trained 400 epochs, cv weighted twice in the loss (train.loss_weights={cv: 2})",
                  "phonondb-dos-plus.yaml", [*ONE, "train.loss_weights={cv: 2}"], None),
    "plus-cv-3": ("plus-150 trained 400 epochs, cv weighted three times in the loss (train.loss_weights={cv: 3})",
                  "phonondb-dos-plus.yaml", [*ONE, "train.loss_weights={cv: 3}"], None),
    "plus-cv-0.5": ("plus-150 trained 400 epochs, cv weighted half in the loss (train.loss_weights={cv: 0.5})",
                    "phonondb-dos-plus.yaml", [*ONE, "train.loss_weights={cv: 0.5}"], None),
    "dropout-0": ("plus-150 trained 400 epochs without dropout (encoder.dropout=0)",
                  "phonondb-dos-plus.yaml", [*ONE, "encoder.dropout=0"], None),
    "seed-1": ("the final config (best) with seed 1 (train.seed=1)", "phonondb-dos-plus.yaml", [*ONE, "train.seed=1"], None),
    "seed-2": ("the final config (best) with seed 2 (train.seed=2)", "phonondb-dos-plus.yaml", [*ONE, "train.seed=2"], None),
    "best": ("**configs/phonondb-dos-plus.yaml**: plus-150 trained 400 epochs as a 2-member seed ensemble, both "
             "members at once on the 2 cores (train.ensemble=2, train.parallel_members=2, one thread each)",
             "phonondb-dos-plus.yaml", [], None),
    "best-single": ("the final config as one model (train.ensemble=1; stop 16's final config)",
                    "phonondb-dos-plus.yaml", ONE, None),
}


def evaluate_row(run: Path) -> dict:
    from cloudphys.training import evaluate

    # always the 629 stable test materials (a row that trained with data.min_freq_thz too)
    m = evaluate(run, "test", overrides=["data.min_freq_thz=null", "data.stable=true"])
    out = {k: v["mae_per_atom"] for k, v in m["observables"].items()}
    out["per_temperature"] = {k: {t: r["mae_per_atom"] for t, r in v.get("per_temperature", {}).items()}
                              for k, v in m["observables"].items()}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--out", default=str(REPO / "runs" / "bench-whole-curve"))
    ap.add_argument("--reuse", action="store_true", help="evaluate runs already in --out instead of training")
    ap.add_argument("--json", help="write all numbers here")
    args = ap.parse_args()

    from cloudphys.training import train
    from cloudphys.training.pretrain import pretrain

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.rows:
        label, config, overrides, pre = ROWS[name]
        run = out / name
        stamp = out / f"{name}.seconds"
        if not (args.reuse and stamp.is_file()):
            t0 = time.perf_counter()
            extra = []
            if pre is not None:
                pdir = out / f"{name}-pretrained"
                pretrain(CONFIGS / pre, pdir, overwrite=True, overrides=["pretrain.progress=false"])
                extra = [f"encoder.pretrained={pdir}"]
            train(CONFIGS / config, run, overwrite=True, overrides=[*overrides, *extra, "train.progress=false"])
            stamp.write_text(json.dumps(time.perf_counter() - t0))
        got = {"row": name, "label": label, "seconds": json.loads(stamp.read_text()), **evaluate_row(run)}
        if (run / "ensemble.json").is_file():  # each member alone too (the seed-to-seed spread)
            members = json.loads((run / "ensemble.json").read_text())["members"]
            got["members"] = {m: {k: v for k, v in evaluate_row(run / m).items() if k != "per_temperature"}
                              for m in members}
        results.append(got)
        print(json.dumps({k: v for k, v in got.items() if k != "per_temperature"}), file=sys.stderr)

    print(f"phonondb-thermo, 629 stable test materials, 20-1000 K (24 temperatures); load average "
          f"{os.getloadavg()[0]:.1f} at the end\n")
    print("| row | cv MAE (J/(K·mol-atom)) | s MAE (J/(K·mol-atom)) | u MAE (J/mol-atom) | training time (s) |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['label']} | {r['cv']:.3f} | {r['s']:.3f} | {r['u']:.1f} | {r['seconds']:.0f} |")
    print("| goal | 0.25 | 0.7 | 120 | 1800 |")
    for r in results:
        for m, e in r.get("members", {}).items():
            print(f"\n{r['row']}, {m} alone: cv {e['cv']:.3f}, s {e['s']:.3f}, u {e['u']:.1f}", end="")
    print()
    last = results[-1]
    temps = list(last["per_temperature"]["cv"])
    print(f"\nPer temperature, {last['label']} (MAE per atom):\n")
    print("| T (K) | cv | s | u |")
    print("|---|---:|---:|---:|")
    for t in temps:
        print(f"| {t} | {last['per_temperature']['cv'][t]:.3f} | {last['per_temperature']['s'][t]:.3f} | "
              f"{last['per_temperature']['u'][t]:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
