"""``cloudphys train | pretrain | evaluate | predict``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _train(args: argparse.Namespace) -> int:
    from ..training import fit

    res = fit(args.config, args.out, overrides=args.set, resume=args.resume, overwrite=args.overwrite)
    print(json.dumps({"run_dir": str(res.out_dir), "best_epoch": res.best_epoch,
                      "best_val_loss": res.best_val_loss, "epochs_run": res.epochs_run}))
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from ..training.pretrain import pretrain

    summary = pretrain(args.config, args.out, overrides=args.set)
    print(json.dumps(summary))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ..training import evaluate

    metrics = evaluate(args.run_dir, args.split, overrides=args.set, device=args.device)
    text = json.dumps(metrics, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    print(text)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ..training.predict import predict_files

    rows = predict_files(args.run_dir, args.input, args.temperatures, out_csv=args.output, plot=args.plot,
                         dialect=args.dialect, device=args.device, workers=args.workers)
    failed = sorted({r["id"] for r in rows if r["error"]})
    done = len({r["id"] for r in rows}) - len(failed)
    print(f"predicted {done} input(s), {len(failed)} failed; wrote {args.output}"
          + (f" and {args.plot}" if args.plot else ""), file=sys.stderr)
    for rid in failed[:20]:
        err = next(r["error"] for r in rows if r["id"] == rid)
        print(f"  {rid}: {err}", file=sys.stderr)
    return 0


def _set(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("-s", "--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help=help)


def add_commands(subparsers: Any) -> None:
    """Add this module's core commands to ``subparsers`` (an argparse sub-parsers object)."""
    p = subparsers.add_parser("train", help="train encoder + head from a config (YAML/TOML)")
    p.add_argument("config", help="config file (.yaml, .yml, .toml, .json)")
    p.add_argument("--out", required=True, help="run directory (model/, last/, metrics.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--overwrite", action="store_true", help="start over even if --out already holds a run")
    _set(p, "overrides such as train.lr=3e-4 train.epochs=5")
    p.set_defaults(func=_train)

    p = subparsers.add_parser("pretrain", help="MLM-pretrain the encoder on unlabelled SCOPE strings")
    p.add_argument("config", help="config with encoder and pretrain sections")
    p.add_argument("--out", required=True, help="output directory of the pretrained encoder")
    _set(p, "overrides such as pretrain.epochs=2")
    p.set_defaults(func=_pretrain)

    p = subparsers.add_parser("evaluate", help="metrics (JSON) of a trained run on a split of its data")
    p.add_argument("run_dir", help="run directory (or model directory)")
    p.add_argument("--split", default="test", help="split of the run's data set (default: test)")
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--output", help="also write the JSON here")
    _set(p, "data overrides, e.g. data.temperature_range=[20,1000]")
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser("predict", help="predict observables and latents for structures or SCOPE strings")
    p.add_argument("run_dir", help="run directory (or model directory)")
    p.add_argument("--input", "-i", nargs="+", required=True,
                   help="CIF/POSCAR files, a CSV with scope + n_atoms, or JSON-lines with id + structure")
    p.add_argument("--temperatures", "-T", default="300", help="K: start:stop:step (stop included), a,b,c or one value")
    p.add_argument("-o", "--output", required=True, help="output CSV (one row per input and temperature)")
    p.add_argument("--plot", help="also plot the curves (PNG)")
    p.add_argument("--dialect", help="SCOPE dialect for structure inputs (default: the training data's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=1, help="processes for structure conversion")
    p.set_defaults(func=_predict)
