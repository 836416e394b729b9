"""Issue 12 §3: transfer from phonondb-thermo to CLOUD's Cv split, beside the CLOUD-data-only protocol.

Three steps, each one cloudphys command (the configs say which), all on the CPU:

1. MLM pretraining (configs/transfer-pretrain.yaml): CLOUD's 10k strings + CLOUD Cv train/val +
   the phonondb-thermo train/val structures in CLOUD's dialect, minus every crystal of CLOUD's
   Cv test split;
2. the Debye model trained on phonondb-thermo's Cv at 300 K (configs/transfer-phonondb-cv.yaml;
   the stable train materials, validated on the stable val materials), minus the same crystals;
3. CLOUD-DEBYE's fine-tuning from it as an 8-member ensemble (configs/transfer-cloud-cv-ensemble.yaml).

The leakage rule (any phonondb material whose canonical SCOPE string equals one of CLOUD's Cv test
split is excluded from every training step) is applied by ``pretrain.exclude`` and ``train.exclude``;
the counts are printed. Rows: each step's model on CLOUD's test split (MAE, MAE/MAD with MAD = mean
|y_test − mean(y_train)| over CLOUD's train split), member 0 alone, and with ``--baseline`` the
CLOUD-data-only protocol (configs/cloud-pretrain.yaml + configs/cloud-cv-debye-ensemble.yaml) in the
same process. ``--curves`` adds a step-2 variant trained on the Cv curves 20-1000 K.

    CLOUDPHYS_DATA=../shared/data python benchmarks/bench_transfer.py --baseline   # ~35 min
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def cloud_metrics(run: Path, test, y_train_mean: float) -> dict[str, float]:
    """MAE (J/(K·mol) per cell), MAE/MAD and MAE per atom of ``run`` on CLOUD's Cv test split."""
    from cloudphys.modeling.core import load_core as load_model
    from cloudphys.training.evaluation import evaluate_model

    m = evaluate_model(load_model(run), test, device="cpu")["observables"]["cv"]
    mad = float(np.mean(np.abs(test.targets["cv"].reshape(-1) - y_train_mean)))
    return {"mae": m["mae"], "mae_over_mad": m["mae"] / mad, "mae_per_atom": m["mae_per_atom"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "runs" / "bench-transfer"), help="run directories go here")
    ap.add_argument("--baseline", action="store_true", help="also the CLOUD-data-only protocol, same process")
    ap.add_argument("--curves", action="store_true", help="also step 2 on the Cv curves 20-1000 K")
    ap.add_argument("--plus", action="store_true",
                    help="also both steps with encoder.features_in_mlp and feature_layout 3 (issue 12 §2's levers)")
    ap.add_argument("--joint", action="store_true",
                    help="also step 3 on CLOUD + phonondb together (needs the --plus step 2 in --out)")
    ap.add_argument("--plus-lr", type=float, nargs="*", default=[],
                    help="with --plus: also step 3 at these learning rates (the configs: 2e-4)")
    ap.add_argument("--step2-members", type=int, default=0,
                    help="also step 2 (plus encoder) as a K-member seed ensemble, step 3 member k from its member k mod K")
    ap.add_argument("--dos", action="store_true",
                    help="also the phonon-DOS transfer: step 2 on phonondb's cv/s/u curves with the phonon-DOS head "
                         "(configs/transfer-phonondb-dos.yaml, no MLM step), step 3 with the same head "
                         "(configs/transfer-dos-cloud-cv-ensemble.yaml); needs plugins/cloudphys-phonon-dos")
    ap.add_argument("--dos-only", action="store_true", help="only the --dos rows (and --baseline): no MLM/Debye rows")
    ap.add_argument("--dos-variants", action="store_true",
                    help="with --dos: also both steps with feature layout 3 (step 3 at 80 and at 60 epochs) and "
                         "step 3 with other seeds")
    ap.add_argument("--members", type=int, default=8, help="ensemble size of step 3 (and the baseline)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--reuse", action="store_true", help="keep finished runs in --out (resume a killed benchmark)")
    ap.add_argument("--json", help="write all numbers here")
    args = ap.parse_args()

    import torch

    import cloudphys
    from cloudphys.training import train
    from cloudphys.training.pretrain import pretrain

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reg = cloudphys.get_registry()
    spec = reg.dataset("cloud-cv")
    cloud_train, test = spec.load(split="train"), spec.load(split="test")
    y_mean = float(np.mean(cloud_train.targets["cv"]))
    common = ["train.progress=false", "train.num_threads=1"]
    rows: list[dict] = []
    seconds: dict[str, float] = {}

    def step(name: str, fn, *a, **kw) -> Path:
        run = out / name
        done = run / ("pretrain.json" if fn is pretrain else "config.yaml")
        if args.reuse and done.is_file() and ((run / "model").is_dir() or (run / "ensemble.json").is_file()):
            seconds[name] = json.loads((out / f"{name}.seconds").read_text())
            print(f"[{name}] reused ({seconds[name]:.0f} s when it ran)", file=sys.stderr)
            return run
        t0 = time.perf_counter()
        fn(*a, run, overwrite=True, **kw)
        seconds[name] = time.perf_counter() - t0
        (out / f"{name}.seconds").write_text(json.dumps(seconds[name]))
        print(f"[{name}] {seconds[name]:.0f} s", file=sys.stderr)
        return run

    def row(label: str, run: Path, parts: list[str], member: str | None = None) -> None:
        m = cloud_metrics(run / member if member else run, test, y_mean)
        rows.append({"model": label, **m, "seconds": sum(seconds[p] for p in parts), "steps": parts})
        print(json.dumps(rows[-1]), file=sys.stderr)

    t_start = time.perf_counter()
    pre_info: dict = {}
    meta1: dict = {}
    meta_dos: dict = {}
    if not args.dos_only:
        pre = step("pretrained-transfer", pretrain, CONFIGS / "transfer-pretrain.yaml",
                   overrides=["pretrain.progress=false", "pretrain.num_threads=1"])
        pre_info = json.loads((pre / "pretrain.json").read_text())
        stage1_over = [*common, f"encoder.pretrained={pre}"]
        s1 = step("transfer-phonondb-cv", train, CONFIGS / "transfer-phonondb-cv.yaml", overrides=stage1_over)
        meta1 = json.loads((s1 / "model" / "cloudphys.json").read_text())
        row("step 2 alone: phonondb Cv(300 K) model, no CLOUD labels", s1, ["pretrained-transfer", "transfer-phonondb-cv"])
        s3 = step("transfer-cloud-cv-ensemble", train, CONFIGS / "transfer-cloud-cv-ensemble.yaml",
                  overrides=[*common, f"train.init_from={s1}", f"train.ensemble={args.members}"])
        parts = ["pretrained-transfer", "transfer-phonondb-cv", "transfer-cloud-cv-ensemble"]
        row("step 3, member 0 alone (one model fine-tuned from step 2)", s3, parts, member="member-0")
        row(f"**phonondb → CLOUD: step 3, {args.members}-member ensemble**", s3, parts)
        plus = ["encoder.latent_mlp=256", "encoder.features_in_mlp=true", "encoder.feature_layout=3"]
        if args.plus:  # the encoder levers of issue 12 §2 on both steps (the architectures must match)
            s1p = step("transfer-phonondb-cv-plus", train, CONFIGS / "transfer-phonondb-cv.yaml",
                       overrides=[*stage1_over, *plus])
            row("step 2 alone, features in the latent MLP + layout 3", s1p, ["pretrained-transfer", "transfer-phonondb-cv-plus"])
            s3p = step("transfer-plus-cloud-cv-ensemble", train, CONFIGS / "transfer-cloud-cv-ensemble.yaml",
                       overrides=[*common, *plus, f"train.init_from={s1p}", f"train.ensemble={args.members}"])
            parts_p = ["pretrained-transfer", "transfer-phonondb-cv-plus", "transfer-plus-cloud-cv-ensemble"]
            row("step 3 from it, member 0 alone", s3p, parts_p, member="member-0")
            row(f"**step 3 from it, {args.members}-member ensemble**", s3p, parts_p)
        for lr in args.plus_lr if args.plus else []:  # step 3 (plus) at other learning rates (latent layer 4x)
            s3l = step(f"transfer-plus-lr{lr:g}-cloud-cv-ensemble", train, CONFIGS / "transfer-cloud-cv-ensemble.yaml",
                       overrides=[*common, *plus, f"train.init_from={out / 'transfer-phonondb-cv-plus'}",
                                  f"train.ensemble={args.members}", f"train.lr={lr:g}", f"train.latent_lr={4 * lr:g}"])
            row(f"step 3 from step 2 plus at lr {lr:g} ({args.members} members)", s3l,
                ["pretrained-transfer", "transfer-phonondb-cv-plus", f"transfer-plus-lr{lr:g}-cloud-cv-ensemble"])
        if args.step2_members > 1:  # step 2 (plus) as a seed ensemble; step-3 member k starts from its member k mod K
            k = args.step2_members
            s1e = step(f"transfer-phonondb-cv-plus-x{k}", train, CONFIGS / "transfer-phonondb-cv.yaml",
                       overrides=[*stage1_over, *plus, f"train.ensemble={k}"])
            s3e = step(f"transfer-plus-x{k}-cloud-cv-ensemble", train, CONFIGS / "transfer-cloud-cv-ensemble.yaml",
                       overrides=[*common, *plus, f"train.init_from={s1e}", f"train.ensemble={args.members}"])
            row(f"step 2 plus as {k} seeds, step 3 member k from its member k mod {k} ({args.members} members)", s3e,
                ["pretrained-transfer", f"transfer-phonondb-cv-plus-x{k}", f"transfer-plus-x{k}-cloud-cv-ensemble"])
        if args.curves:  # step 2 on the Cv curves 20-1000 K (with --plus: the plus encoder)
            enc = plus if args.plus else []
            tag = "-plus" if args.plus else ""
            s1c = step(f"transfer-phonondb-cv-curves{tag}", train, CONFIGS / "transfer-phonondb-cv.yaml",
                       overrides=[*stage1_over, *enc, "data.temperatures=null", "data.temperature_range=[20, 1000]"])
            s3c = step(f"transfer-curves{tag}-cloud-cv-ensemble", train, CONFIGS / "transfer-cloud-cv-ensemble.yaml",
                       overrides=[*common, *enc, f"train.init_from={s1c}", f"train.ensemble={args.members}"])
            row(f"step 2 on Cv curves 20-1000 K{', plus encoder' if args.plus else ''}, then step 3 "
                f"({args.members} members)", s3c,
                ["pretrained-transfer", f"transfer-phonondb-cv-curves{tag}", f"transfer-curves{tag}-cloud-cv-ensemble"])
        if args.joint:  # step 3 on CLOUD's Cv and phonondb's Cv(300 K) together (train.extra_data), from step 2 plus
            s1p = out / "transfer-phonondb-cv-plus"
            joint = [*common, *plus, f"train.init_from={s1p}", f"train.ensemble={args.members}", "train.epochs=20",
                     "train.extra_data=[{name: phonondb-thermo, split: train, dialect: cloud, observables: [cv], "
                     "temperatures: [300], stable: true}]", "train.exclude=[{name: cloud-cv, split: test}]"]
            s3j = step("transfer-joint-cloud-cv-ensemble", train, CONFIGS / "transfer-cloud-cv-ensemble.yaml",
                       overrides=joint)
            row(f"step 3 from step 2 plus on CLOUD + phonondb Cv(300 K) together (train.extra_data, 20 epochs, "
                f"{args.members} members)", s3j, ["pretrained-transfer", "transfer-phonondb-cv-plus",
                                                  "transfer-joint-cloud-cv-ensemble"])
    if args.dos or args.dos_only:  # step 2 on whole curves with the phonon-DOS head, step 3 with that head
        s2d = step("transfer-phonondb-dos", train, CONFIGS / "transfer-phonondb-dos.yaml", overrides=common)
        meta_dos = json.loads((s2d / "model" / "cloudphys.json").read_text())
        row("phonon-DOS step 2 alone: phonondb cv/s/u curves 20-1000 K, no CLOUD labels, no MLM step", s2d,
            ["transfer-phonondb-dos"])
        s3d = step("transfer-dos-cloud-cv-ensemble", train, CONFIGS / "transfer-dos-cloud-cv-ensemble.yaml",
                   overrides=[*common, f"train.init_from={s2d}", f"train.ensemble={args.members}"])
        parts_d = ["transfer-phonondb-dos", "transfer-dos-cloud-cv-ensemble"]
        row("phonon-DOS step 3, member 0 alone", s3d, parts_d, member="member-0")
        row(f"**phonon-DOS transfer: step 3 (configs/transfer-dos-cloud-cv-ensemble.yaml), {args.members}-member "
            "ensemble**", s3d, parts_d)
        if args.dos_variants:  # feature layout 3 in both steps (step 3 at 80 and 60 epochs); step 3 at other seeds
            l3 = ["encoder.feature_layout=3"]
            s2l = step("transfer-phonondb-dos-l3", train, CONFIGS / "transfer-phonondb-dos.yaml", overrides=[*common, *l3])
            row("phonon-DOS step 2 alone, feature layout 3", s2l, ["transfer-phonondb-dos-l3"])
            s3l = step("transfer-dos-l3-cloud-cv-ensemble", train, CONFIGS / "transfer-dos-cloud-cv-ensemble.yaml",
                       overrides=[*common, *l3, f"train.init_from={s2l}", f"train.ensemble={args.members}"])
            row(f"phonon-DOS steps 2 and 3 with feature layout 3, {args.members} members", s3l,
                ["transfer-phonondb-dos-l3", "transfer-dos-l3-cloud-cv-ensemble"])
            s3e = step("transfer-dos-l3-e60-cloud-cv-ensemble", train, CONFIGS / "transfer-dos-cloud-cv-ensemble.yaml",
                       overrides=[*common, *l3, f"train.init_from={s2l}", f"train.ensemble={args.members}",
                                  "train.epochs=60", "train.patience=15"])
            row(f"layout 3, step 3 at 60 epochs (patience 15), {args.members} members", s3e,
                ["transfer-phonondb-dos-l3", "transfer-dos-l3-e60-cloud-cv-ensemble"])
            s3s = step("transfer-dos-seed100-cloud-cv-ensemble", train, CONFIGS / "transfer-dos-cloud-cv-ensemble.yaml",
                       overrides=[*common, f"train.init_from={s2d}", f"train.ensemble={args.members}", "train.seed=100"])
            row(f"the phonon-DOS transfer with step-3 seeds 100-{99 + args.members} instead of 0-{args.members - 1}",
                s3s, ["transfer-phonondb-dos", "transfer-dos-seed100-cloud-cv-ensemble"])
    if args.baseline:
        base_pre = step("pretrained-cloud", pretrain, CONFIGS / "cloud-pretrain.yaml",
                        overrides=["pretrain.progress=false", "pretrain.num_threads=1"])
        base = step("cloud-cv-debye-ensemble", train, CONFIGS / "cloud-cv-debye-ensemble.yaml",
                    overrides=[*common, f"encoder.pretrained={base_pre}", f"train.ensemble={args.members}"])
        row(f"CLOUD data only: configs/cloud-pretrain.yaml + cloud-cv-debye-ensemble.yaml ({args.members} members)",
            base, ["pretrained-cloud", "cloud-cv-debye-ensemble"])
    total = time.perf_counter() - t_start

    corpus = pre_info.get("corpus", pre_info) if pre_info else {}
    print(f"CLOUD Cv: train {len(cloud_train)}, test {len(test)}; training with one torch thread (the configs' "
          f"train.num_threads=1); "
          f"load average {os.getloadavg()[0]:.1f} at the end; {total / 60:.1f} min for this invocation"
          f"{' (finished steps reused, their training times are from when they ran)' if args.reuse else ''}\n")
    print("Leakage rule (canonical SCOPE strings equal to one of CLOUD's Cv test split):")
    if corpus:
        print(f"- step 1 corpus: {corpus.get('excluded_strings')} test crystals excluded; per source "
              + "; ".join(f"{s['source'].get('name', s['source'].get('path'))}:{s['source'].get('split', '')} "
                          f"{s['strings']} → {s['kept']}" for s in corpus.get("sources", [])))
    ex = meta1.get("excluded", {})
    if meta1:
        print(f"- step 2: {ex.get('train')} phonondb train and {ex.get('val')} val materials excluded "
              f"({ex.get('strings')} test crystals)")
    if meta_dos:
        exd = meta_dos.get("excluded", {})
        print(f"- phonon-DOS step 2: {exd.get('train')} phonondb train materials (stable and mildly unstable) and "
              f"{exd.get('val')} val materials excluded ({exd.get('strings')} test crystals)")
    print()
    print("| model | CLOUD Cv test MAE (J/(K·mol)) | MAE per atom | **MAE/MAD** | training time (s, steps included) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['mae']:.3f} | {r['mae_per_atom']:.3f} | {r['mae_over_mad']:.4f} | "
              f"{r['seconds']:.0f} |")
    print("| published CLOUD-DEBYE (pretrained on 6.3 M crystals) | — | — | 0.057 | — |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "seconds": seconds, "corpus": corpus,
                                               "excluded": ex, "excluded_dos": meta_dos.get("excluded")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
