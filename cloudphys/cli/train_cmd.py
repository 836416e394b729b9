"""``cloudphys train | pretrain | evaluate`` (``predict`` is :mod:`cloudphys.cli.predict_cmd`)."""

from __future__ import annotations

import argparse
from typing import Any

from .checks import check_device, check_output_path, dumps_json


def _train(args: argparse.Namespace) -> int:
    from ..training.ensemble import train

    check_output_path(args.out, what="--out", folder=True, overwrite=True)  # existing runs: see train
    res = train(args.config, args.out, overrides=args.set, resume=args.resume, overwrite=args.overwrite,
                accept_config_changes=args.accept_config_changes)
    print(dumps_json({"run_dir": str(res.out_dir), "best_epoch": res.best_epoch,
                      "best_val_loss": res.best_val_loss, "epochs_run": res.epochs_run}))
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from ..training.pretrain import pretrain

    check_output_path(args.out, what="--out", folder=True, overwrite=True)  # existing runs: see pretrain
    summary = pretrain(args.config, args.out, overrides=args.set, resume=args.resume, overwrite=args.overwrite,
                       accept_config_changes=args.accept_config_changes)
    print(dumps_json(summary))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ..training.evaluation import evaluate

    check_output_path(args.output, what="-o/--output", overwrite=True)
    check_device(args.device)
    metrics = evaluate(args.run_dir, args.split, overrides=args.set, device=args.device)
    text = dumps_json(metrics, indent=2)
    if args.output:
        from ..outputs import write_text

        write_text(args.output, text + "\n")
    print(text)
    return 0


def _set(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("-s", "--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help=help)


def _run_dir_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (same config)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over even if --out already holds a run (only files cloudphys wrote are replaced)")
    p.add_argument("--accept-config-changes", action="store_true",
                   help="with --resume: continue although the config differs from the run's (listed otherwise)")


def add_commands(subparsers: Any) -> None:
    """Add this module's core commands to ``subparsers`` (an argparse sub-parsers object)."""
    p = subparsers.add_parser("train", help="train encoder + head from a config (YAML/TOML)")
    p.add_argument("config", help="config file (.yaml, .yml, .toml, .json)")
    p.add_argument("--out", required=True, help="run directory (model/, last/, metrics.jsonl)")
    _run_dir_options(p)
    _set(p, "overrides such as train.lr=3e-4 train.epochs=5")
    p.set_defaults(func=_train)

    p = subparsers.add_parser("pretrain", help="MLM-pretrain the encoder on unlabelled SCOPE strings")
    p.add_argument("config", help="config with encoder and pretrain sections")
    p.add_argument("--out", required=True,
                   help="run directory (model/ = the pretrained encoder, last/, metrics.jsonl, pretrain.json)")
    _run_dir_options(p)
    _set(p, "overrides such as pretrain.epochs=2")
    p.set_defaults(func=_pretrain)

    p = subparsers.add_parser("evaluate", help="metrics (JSON) of a trained run on a split of its data")
    p.add_argument("run_dir", help="run directory (or model directory)")
    p.add_argument("--split", default="test", help="split of the run's data set (default: test)")
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--output", help="also write the JSON here")
    _set(p, "data overrides, e.g. data.temperature_range=[20,1000]")
    p.set_defaults(func=_evaluate)
