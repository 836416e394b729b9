"""Benchmark (issue 24 §3): MLM validation loss and CLOUD Cv test MAE/MAD against corpus and encoder size.

Real strings only, never a test string of a downstream task:

* ``build``: one token corpus in CLOUD's dialect (``build_token_corpus``, the code behind
  ``cloudphys data build-corpus ... --dialect cloud --out DIR``) from CLOUD's 10k pretraining strings,
  CLOUD Cv train+val, phonondb-thermo train+val (all materials) and the structures of
  ``../shared/data/structures/*.csv.gz`` (converted with 2 workers), excluding every crystal of
  CLOUD Cv's test split and of phonondb-thermo's test split (canonical strings compared).
* a fixed validation set: the corpus strings whose crystal hash lies in the lowest 2 % (never trained on);
  the rest is the training pool, permuted once (seed 0); a corpus of size N is its first N strings
  (nested subsets, ``TokenCorpus.subset``); ``all`` is the whole pool.
* ``run``: for each (N, hidden) point: MLM pretraining (``pretrain.corpus``; 2 layers, 4 heads,
  batch 64, lr 1e-3, max(150, one epoch) steps -- the compute grows with N only past ~10k strings),
  the MLM loss on the fixed validation set (fixed masks), then CLOUD-DEBYE fine-tuned from it
  (configs/cloud-cv-debye.yaml, ``--ft-epochs`` epochs, patience 5, one seed) and its CLOUD Cv test
  MAE and MAE/MAD (MAD = mean |y_test - mean(y_train)|). ``N = 0`` is the fine-tune without pretraining.
* ``report``: the table, a power-law fit ``L(N) = a * N**(-b)`` (least squares in log-log) of the
  MLM loss and of MAE/MAD at hidden 128, and the plot ``docs/img/scaling.png``.

Rows go to ``benchmarks/results/scaling.jsonl`` (a point already there is skipped: a killed run resumes).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_scaling.py build --work /tmp/scaling
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_scaling.py run --work /tmp/scaling \
        --points 0:128 1000:128 3000:128 10000:128 30000:128 all:128 0:64 10000:64 0:256 10000:256
    python benchmarks/bench_scaling.py report
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "scaling.jsonl"
VAL_FRACTION = 0.02


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def build(work: Path, workers: int) -> None:
    from cloudphys.data.base import data_dir
    from cloudphys.data.shards import build_token_corpus

    structures = sorted(str(p) for p in (data_dir() / "structures").glob("*.csv.gz"))
    inputs = ["cloud-pretrain", "cloud-cv:train_and_val", "phonondb-thermo:train", "phonondb-thermo:val", *structures]
    t0 = time.perf_counter()
    rep = build_token_corpus(inputs, work / "corpus", exclude=["cloud-cv:test", "phonondb-thermo:test"],
                             dialect="cloud", workers=workers, shard_size=10_000, progress=sys.stderr.isatty())
    print(rep.summary())
    print(json.dumps({"build_seconds": time.perf_counter() - t0, "load": _load()}))


def _split(work: Path) -> tuple[object, np.ndarray, np.ndarray]:
    from cloudphys.data.shards import TokenCorpus
    from cloudphys.training.stream import corpus_split

    c = TokenCorpus(work / "corpus")
    train, val, _ = corpus_split(c, VAL_FRACTION)
    pool = np.random.default_rng(0).permutation(train)
    return c, pool, val


def _mlm_val_loss(run: Path, val_corpus, hidden: int) -> float:
    import torch

    from cloudphys.encoders.pretrained import load_masked_lm
    from cloudphys.modeling.model import load_tokenizer
    from cloudphys.training.stream import mlm_val_loss

    tok = load_tokenizer(256)
    model = load_masked_lm(run / "model", what="pretrained model", remedy="rerun the point")
    special = torch.tensor(sorted(set(tok.all_special_ids)), dtype=torch.long)
    pc = SimpleNamespace(mlm_probability=0.15, seed=0, precision="fp32")
    return mlm_val_loss(model, val_corpus, np.arange(len(val_corpus)), tok, special, pc, torch.device("cpu"))


def _finetune(run: Path, pretrained: Path | None, hidden: int, epochs: int) -> dict:
    import cloudphys
    from cloudphys.modeling.core import load_core
    from cloudphys.training import train
    from cloudphys.training.evaluation import evaluate_model

    over = ["train.progress=false", "train.num_threads=1", "train.device=cpu", f"train.epochs={epochs}",
            "train.patience=5"]
    over += [f"encoder.pretrained={pretrained}"] if pretrained else [f"encoder.hidden_size={hidden}"]
    t0 = time.perf_counter()
    train(REPO / "configs" / "cloud-cv-debye.yaml", run, overrides=over, overwrite=True)
    sec = time.perf_counter() - t0
    spec = cloudphys.get_registry().dataset("cloud-cv")
    tr, test = spec.load(split="train"), spec.load(split="test")
    m = evaluate_model(load_core(run), test, device="cpu")["observables"]["cv"]
    mad = float(np.mean(np.abs(test.targets["cv"].reshape(-1) - float(np.mean(tr.targets["cv"])))))
    return {"cv_test_mae": m["mae"], "cv_test_mae_over_mad": m["mae"] / mad, "finetune_seconds": sec}


def run_point(work: Path, n_label: str, hidden: int, ft_epochs: int) -> dict:
    from cloudphys.training.pretrain import pretrain

    c, pool, val = _split(work)
    val_corpus = c.subset(val, work / "val")
    n = len(pool) if n_label == "all" else int(n_label)
    row: dict = {"n_label": n_label, "n": n, "hidden": hidden, "val_strings": len(val), "pool": len(pool)}
    pretrained = None
    if n > 0:
        sub = c.subset(pool[:n], work / f"sub-{n_label}")
        steps = max(150, -(-n // 64))
        cfg = {"encoder": {"name": "scope-bert", "hidden_size": hidden, "num_layers": 2, "num_heads": 4,
                           "element_init": True},
               "head": {"name": "debye"},
               "pretrain": {"corpus": str(sub.path), "epochs": 10_000, "max_steps": steps, "batch_size": 64,
                            "lr": 1e-3, "val_fraction": 0.0, "device": "cpu", "progress": "false",
                            "num_threads": 1, "seed": 0}}
        pretrained = work / f"pre-{n_label}-{hidden}"
        res = pretrain(cfg, pretrained, overwrite=True)
        row.update(pretrain_steps=res["steps"], pretrain_seconds=res["seconds"],
                   epochs_seen=res["steps"] * 64 / n, tokens_per_s=res["tokens_seen"] / res["step_seconds"],
                   mlm_val_loss=_mlm_val_loss(pretrained, val_corpus, hidden))
    row.update(_finetune(work / f"ft-{n_label}-{hidden}", pretrained, hidden, ft_epochs))
    return row


def _rows() -> list[dict]:
    return [json.loads(x) for x in RESULTS.read_text().splitlines() if x.strip()] if RESULTS.is_file() else []


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``y = a * x**(-b)``: (a, b) by least squares on logs."""
    slope, icpt = np.polyfit(np.log(x), np.log(y), 1)
    return float(np.exp(icpt)), float(-slope)


def report(plot: bool = True) -> None:
    rows = _rows()
    print("| corpus N | hidden | pretrain steps (epochs) | MLM val loss | Cv test MAE J/(K·mol) | MAE/MAD | "
          "seconds (pretrain + fine-tune) | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["hidden"], r["n"])):
        pre = f"{r['pretrain_steps']} ({r['epochs_seen']:.1f})" if "pretrain_steps" in r else "none"
        mlm = f"{r['mlm_val_loss']:.3f}" if "mlm_val_loss" in r else ""
        sec = r.get("pretrain_seconds", 0) + r["finetune_seconds"]
        print(f"| {r['n']:,} | {r['hidden']} | {pre} | {mlm} | {r['cv_test_mae']:.2f} | "
              f"{r['cv_test_mae_over_mad']:.3f} | {sec:.0f} | {r['load']} |")
    pts = sorted((r for r in rows if r["hidden"] == 128 and r["n"] > 0), key=lambda r: r["n"])
    fits = {}
    if len(pts) >= 3:
        n = np.array([r["n"] for r in pts], float)
        for key in ("mlm_val_loss", "cv_test_mae_over_mad"):
            a, b = _fit(n, np.array([r[key] for r in pts], float))
            fits[key] = (a, b)
            print(f"\nfit at hidden 128: {key} = {a:.3g} * N^({-b:+.3g})  (N = {int(n[0])}..{int(n[-1])})")
    if not plot or not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for hidden, mark in ((64, "s"), (128, "o"), (256, "^")):
        sel = sorted((r for r in rows if r["hidden"] == hidden and r["n"] > 0), key=lambda r: r["n"])
        if sel:
            ax[0].plot([r["n"] for r in sel], [r["mlm_val_loss"] for r in sel], mark + "-", label=f"hidden {hidden}")
            ax[1].plot([r["n"] for r in sel], [r["cv_test_mae_over_mad"] for r in sel], mark + "-",
                       label=f"hidden {hidden}")
        base = [r for r in rows if r["hidden"] == hidden and r["n"] == 0]
        if base:
            ax[1].axhline(base[0]["cv_test_mae_over_mad"], ls=":", color="grey")
            ax[1].annotate(f"no pretraining, hidden {hidden}", (pts[0]["n"] if pts else 1000,
                                                                 base[0]["cv_test_mae_over_mad"]), fontsize=7)
    for i, key in enumerate(("mlm_val_loss", "cv_test_mae_over_mad")):
        if key in fits and pts:
            a, b = fits[key]
            xs = np.geomspace(pts[0]["n"], pts[-1]["n"], 50)
            ax[i].plot(xs, a * xs ** (-b), "k--", lw=0.8, label=f"fit {a:.3g}·N^({-b:+.3f})")
        ax[i].set_xscale("log")
        ax[i].set_xlabel("pretraining corpus size N (distinct real crystals)")
        ax[i].legend(fontsize=7)
    ax[0].set_ylabel("MLM validation loss (fixed held-out set)")
    ax[1].set_ylabel("CLOUD Cv test MAE/MAD (one fine-tune)")
    fig.tight_layout()
    out = REPO / "docs" / "img" / "scaling.png"
    from cloudphys.outputs import atomic_path

    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110)
    print(f"\nplot: {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("build", "run", "report"))
    ap.add_argument("--work", default="/tmp/scaling")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--points", nargs="*", default=["0:128", "1000:128", "3000:128", "10000:128", "30000:128",
                                                    "all:128", "0:64", "10000:64", "0:256", "10000:256"],
                    help="N:HIDDEN (N = 0: no pretraining; all: the whole pool)")
    ap.add_argument("--ft-epochs", type=int, default=20)
    args = ap.parse_args()
    work = Path(args.work)
    if args.what == "build":
        build(work, args.workers)
    elif args.what == "report":
        report()
    else:
        done = {(r["n_label"], r["hidden"]) for r in _rows()}
        for p in args.points:
            n_label, hidden = p.split(":")
            if (n_label, int(hidden)) in done:
                continue
            row = run_point(work, n_label, int(hidden), args.ft_epochs)
            row.update(ft_epochs=args.ft_epochs, load=_load(), time=time.strftime("%H:%M:%SZ", time.gmtime()))
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            with open(RESULTS, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
